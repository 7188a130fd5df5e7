#!/usr/bin/env bash
# Run many `synthpt experiment` processes side by side on a lent GPU machine (the `device` tool of the
# developers' guide). That machine reaches nothing outside it and one call carries at most 64 MiB, so the
# model (a packaged GGUF) and the data travel first, one load per call, to a machine kept warm between calls.
#
# 1. Here:   bash scripts/device-grid.sh pack gemma3-270m ../shared/data
#            -> xfer/load-1 ... xfer/load-K (<= 60 MiB each) and the device calls to make, printed
# 2. Device, one call per load, back to back (carry ["xfer/load-I"]):
#            bash scripts/device-grid.sh stash
# 3. Device, last call:   bash scripts/device-grid.sh grid CELLS [JOBS] [SECONDS]
#    CELLS: a file, one `synthpt experiment` argument list per line, --data-dir left out, e.g.
#      --config configs/scale-cpu.yaml --out runs/g-mrpc-13 --tasks mrpc --set seeds=[13] --methods pt,pt+gold,ours
#    JOBS lines run at once (default 12), one thread each; after SECONDS (default 420) the rest are stopped, and
#    every out folder (its cache left out: cells/, tables, sweep.png, synthetic.md), a log per line and the
#    software versions are copied under $OUT. Cells that finished are whole; `synthpt experiment ... --tables-only`
#    here tables them. Then hand the machine back (`give_back`).
# The stash lies in $SYNTHPT_STASH (default /tmp/synthpt-stash), the model cache in $SYNTHPT_CACHE (default
# /tmp/synthpt-cache on the device): both survive between calls while the machine is warm.
set -euo pipefail
cd "$(dirname "$0")/.."
STASH=${SYNTHPT_STASH:-/tmp/synthpt-stash}
PY=${PYTHON:-python3}
LOAD_MIB=60

die() { echo "device-grid: $*" >&2; exit 2; }

pack() {  # MODEL DATA_DIR
  local model=${1:?usage: pack MODEL DATA_DIR} data=${2:?usage: pack MODEL DATA_DIR}
  [ -d "$data" ] || die "$data: no such data folder"
  local gguf
  gguf=$("$PY" -c "import sys
from synthpt.core.gguf import PACKAGED, find_gguf
from synthpt.core.models import cache_dir
if sys.argv[1] not in PACKAGED: sys.exit(f'{sys.argv[1]}: not a packaged model (known: {\", \".join(PACKAGED)})')
print(find_gguf(PACKAGED[sys.argv[1]], cache_dir()))" "$model")
  rm -rf xfer && mkdir -p xfer/parts
  tar -czf xfer/parts/data.tgz -C "$(dirname "$data")" "$(basename "$data")"
  split -b "$((LOAD_MIB - 4))M" -d -a 2 "$gguf" xfer/parts/model.part-
  printf 'model=%s\nfile=%s\nsha256=%s\ndata=%s\n' "$model" "$(basename "$gguf")" \
    "$(sha256sum "$gguf" | cut -d' ' -f1)" "$(basename "$data")" > xfer/parts/manifest
  # the data and the manifest ride with the last chunk while they fit, else alone
  local i=1 used=0 f size
  for f in xfer/parts/model.part-* xfer/parts/data.tgz xfer/parts/manifest; do
    size=$(stat -c %s "$f")
    if [ $((used + size)) -gt $((LOAD_MIB * 1048576)) ]; then i=$((i + 1)); used=0; fi
    mkdir -p "xfer/load-$i" && mv "$f" "xfer/load-$i/" && used=$((used + size))
  done
  rmdir xfer/parts
  echo "packed $gguf and $data into $i loads:"
  for d in xfer/load-*; do echo "  run(carry=[\"$d\"], command=\"bash scripts/device-grid.sh stash\")  # $(du -sh "$d" | cut -f1)"; done
  echo "  run(command=\"bash scripts/device-grid.sh grid CELLS\")  # CELLS: a tracked or untracked file here"
}

stash() {
  mkdir -p "$STASH"
  local n=0 f
  for f in xfer/load-*/*; do [ -e "$f" ] || continue; mv -f "$f" "$STASH/"; n=$((n + 1)); done
  echo "stashed $n files; $STASH holds: $(cd "$STASH" && ls | tr '\n' ' ')"
}

grid() {  # CELLS [JOBS] [SECONDS]
  local cells=${1:?usage: grid CELLS [JOBS] [SECONDS]} jobs=${2:-12} secs=${3:-420}
  [ -f "$cells" ] || die "$cells: no such cells file"
  [ -f "$STASH/manifest" ] || die "$STASH/manifest missing: run the stash calls first (pack prints them)"
  local out=${OUT:-device-out}; mkdir -p "$out/logs"
  export SYNTHPT_CACHE=${SYNTHPT_CACHE:-/tmp/synthpt-cache} PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
  export OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
  local model file sha data
  model=$(sed -n 's/^model=//p' "$STASH/manifest"); file=$(sed -n 's/^file=//p' "$STASH/manifest")
  sha=$(sed -n 's/^sha256=//p' "$STASH/manifest"); data=$(sed -n 's/^data=//p' "$STASH/manifest")
  if [ ! -f "$SYNTHPT_CACHE/gguf/$file" ]; then
    ls "$STASH"/model.part-* > /dev/null 2>&1 || die "no model chunks in $STASH"
    mkdir -p "$SYNTHPT_CACHE/gguf"
    cat "$STASH"/model.part-* > "$SYNTHPT_CACHE/gguf/.$file.part"
    [ "$(sha256sum "$SYNTHPT_CACHE/gguf/.$file.part" | cut -d' ' -f1)" = "$sha" ] \
      || die "$file: sha256 differs from the manifest's (a chunk missing or cut?)"
    mv "$SYNTHPT_CACHE/gguf/.$file.part" "$SYNTHPT_CACHE/gguf/$file"
  fi
  [ -d "$STASH/$data" ] || tar -xzf "$STASH/data.tgz" -C "$STASH"
  "$PY" - > "$out/versions.txt" <<'EOF'
import platform, torch, transformers, peft
print("python", platform.python_version(), "torch", torch.__version__, "transformers", transformers.__version__,
      "peft", peft.__version__, "cuda", torch.cuda.is_available() and torch.cuda.get_device_name(0))
EOF
  cat "$out/versions.txt"
  # de-quantise once, before the processes that all need it start
  "$PY" -c "import sys; from synthpt.core.models import resolve_model; print(resolve_model(sys.argv[1]))" "$model"
  local t0 i=0 line
  t0=$(date +%s)
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    i=$((i + 1))
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 2; done
    local left=$((secs - ($(date +%s) - t0)))
    [ "$left" -gt 10 ] || { echo "line $i and later not started: time is up" | tee -a "$out/logs/not-started.txt"; continue; }
    # shellcheck disable=SC2086  # a line is an argument list (set -f: its [13] is a value, not a glob)
    (set -f; echo "$line"; rc=0; timeout -s INT -k 20 "$left" "$PY" -m synthpt experiment $line --data-dir "$STASH/$data" \
       || rc=$?; echo "rc $rc$( [ "$rc" = 124 ] && echo ' (stopped: time is up)')") > "$out/logs/line-$i.log" 2>&1 &
  done < "$cells"
  wait
  local dir
  for dir in $(grep -v '^#' "$cells" | grep -o -- '--out [^ ]*' | cut -d' ' -f2 | sort -u); do
    [ -d "$dir" ] || continue
    mkdir -p "$out/$dir" && tar -C "$dir" --exclude=./cache -cf - . | tar -C "$out/$dir" -xf -
  done
  echo "grid: $i lines in $(( $(date +%s) - t0 )) s; results under $out:"; grep -h '^rc ' "$out"/logs/line-*.log | sort | uniq -c
}

case "${1:-}" in
  pack) shift; pack "$@" ;;
  stash) stash ;;
  grid) shift; grid "$@" ;;
  *) sed -n '2,19p' "$0"; exit 2 ;;
esac
