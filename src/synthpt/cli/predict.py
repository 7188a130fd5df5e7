"""``synthpt predict``: classify new, unlabelled text with a trained prompt."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def cmd_predict(ns: argparse.Namespace) -> None:
    from synthpt.evaluate import Classifier, predict_file, read_adapter

    ad = read_adapter(ns.prompt, ns.task, ns.task_spec)

    def load() -> Classifier:
        return Classifier.from_adapter(ad, model=ns.model, dtype=ns.dtype, trust_remote_code=ns.trust_remote_code,
                                       max_length=ns.max_length, batch_size=ns.batch_size)

    r = predict_file(load, ad.task, ns.input, ns.out, fmt=ns.format, skip_bad=ns.skip_bad,
                     chunk_size=ns.chunk_size, progress=not ns.quiet)
    skipped = f"; skipped {r['skipped']} bad row(s), first: {r['first_bad']}" if r["skipped"] else ""
    where = f"; wrote {r['out']}" if r["out"] else ""
    print(f"synthpt: {ad.task.name}: classified {r['rows']} row(s) in {r['seconds']:.1f} s{skipped}{where}",
          file=sys.stderr)


def register(sub: Any) -> None:
    from synthpt.cli.main import add_dtype_arg, add_task_args
    from synthpt.data.rows import FORMATS

    p = sub.add_parser(
        "predict", help="classify new text with a trained prompt (JSON lines out)",
        description="Classify unlabelled rows with a prompt adapter: one JSON line per row with the row number, "
        "its fields, the predicted label and the probability of every label. Input: JSONL / JSON / CSV / TSV with "
        "the task's fields (a label column is ignored), or plain lines for one-field tasks; `--input -` reads "
        "stdin (typed lines are answered one by one). Every row is checked before any is classified: a bad row "
        "is one line naming it, exit 2, nothing written (--skip-bad skips and counts them instead).",
        epilog="The task comes from the adapter (synthpt writes it there); a PEFT adapter trained elsewhere "
        "needs --task or --task-spec. Example: echo 'a gripping film' | synthpt predict --prompt runs/x/prompt --input -")
    p.add_argument("--prompt", required=True, help="prompt adapter folder (or a `synthpt run` folder with prompt/)")
    p.add_argument("--input", required=True, metavar="FILE|-", help="rows to classify; - reads stdin")
    p.add_argument("--out", help="write the JSON lines here (atomically) instead of stdout")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="input format (default: from the file's suffix, else its first line)")
    p.add_argument("--skip-bad", action="store_true", help="skip rows that cannot be read, and count them")
    add_task_args(p)
    p.add_argument("--model", help="backbone (default: the adapter's base model)")
    add_dtype_arg(p)
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    p.add_argument("--batch-size", type=int, default=32, help="rows per forward pass (default 32)")
    p.add_argument("--chunk-size", type=int, default=256,
                   help="rows read, scored and written at a time, so any input size fits in memory (default 256)")
    p.add_argument("--max-length", type=int, help="truncate inputs to N tokens (default: as trained)")
    p.add_argument("--quiet", action="store_true", help="no progress")
    p.set_defaults(func=cmd_predict)
