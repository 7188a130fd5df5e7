"""scripts/device-grid.sh: the stash -> grid path of an offline GPU machine, run here on the tiny models.

`pack` needs a packaged GGUF (a download where none is installed), so these tests build the stash it would
leave: model chunks, their manifest and the data as a tarball."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "device-grid.sh"


def _stash(tmp: Path, data_dir: Path, chunks: list[bytes], sha: str | None = None) -> Path:
    stash = tmp / "stash"
    stash.mkdir()
    for i, c in enumerate(chunks):
        (stash / f"model.part-{i:02d}").write_bytes(c)
    sha = sha or hashlib.sha256(b"".join(chunks)).hexdigest()
    (stash / "manifest").write_text(f"model=tiny-t5\nfile=fake.gguf\nsha256={sha}\ndata=data\n")
    with tarfile.open(stash / "data.tgz", "w:gz") as t:  # RTE only: what the cell below reads
        t.add(data_dir / "RTE", "data/RTE")
        t.add(data_dir / "k-shot" / "RTE", "data/k-shot/RTE")
    return stash


def _grid(tmp: Path, stash: Path, cells: str, *args: str) -> subprocess.CompletedProcess:
    (tmp / "cells.txt").write_text(cells)
    env = {**os.environ, "SYNTHPT_STASH": str(stash), "SYNTHPT_CACHE": str(tmp / "cache"), "OUT": str(tmp / "out"),
           "PYTHON": sys.executable}
    return subprocess.run(["bash", str(SCRIPT), "grid", str(tmp / "cells.txt"), *args], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=600)


def test_grid_joins_the_model_runs_each_line_and_copies_results_back(tmp_path, data_dir):
    chunks = [b"gguf-" * 1000, b"tail" * 10]
    stash = _stash(tmp_path, data_dir, chunks)
    run = tmp_path / "runs" / "zs"
    cells = (f"# comment\n--config {ROOT}/configs/smoke.yaml --out {run} --tasks rte --set seeds=[13] "
             "--methods zero-shot --set max_eval=16\n\n")
    r = _grid(tmp_path, stash, cells, "1", "300")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "cache" / "gguf" / "fake.gguf").read_bytes() == b"".join(chunks)
    out = tmp_path / "out"
    assert "torch" in (out / "versions.txt").read_text()
    log = (out / "logs" / "line-1.log").read_text()
    assert log.splitlines()[-1] == "rc 0", log[-2000:]
    back = out / str(run).lstrip("/")
    cell = json.loads((back / "cells" / "rte" / "zero-shot" / "seed-13.json").read_text())
    assert "accuracy" in json.dumps(cell) and (back / "table.md").is_file()
    assert not (back / "cache").exists()  # the stage cache stays on the machine


def test_grid_refuses_chunks_that_do_not_match_the_manifest(tmp_path, data_dir):
    stash = _stash(tmp_path, data_dir, [b"a" * 100], sha="0" * 64)
    r = _grid(tmp_path, stash, "--config configs/smoke.yaml --out x --methods zero-shot\n")
    assert r.returncode == 2 and "sha256 differs from the manifest" in r.stderr
    assert not (tmp_path / "cache" / "gguf" / "fake.gguf").exists() and not (tmp_path / "out" / "logs" / "line-1.log").exists()


@pytest.mark.parametrize("args,message", [(["grid", "nope.txt"], "no such cells file"),
                                          (["pack", "tiny-t5", "."], "not a packaged model")])
def test_bad_input_is_one_clear_line(tmp_path, args, message):
    env = {**os.environ, "SYNTHPT_STASH": str(tmp_path / "none"), "PYTHON": sys.executable,
           "PYTHONPATH": str(ROOT / "src")}
    r = subprocess.run(["bash", str(SCRIPT), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and message in r.stderr and "Traceback" not in r.stderr
