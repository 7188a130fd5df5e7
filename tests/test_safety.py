"""Nothing from a file or the hub runs as code unless the user says so.

- weights load from safetensors, or ``torch.load(..., weights_only=True)`` (no pickled code);
- YAML loads with ``yaml.safe_load`` only; no ``eval``/``exec``/``pickle`` anywhere;
- ``trust_remote_code`` is never hard-wired on, defaults to False, and only the CLI flag
  ``--trust-remote-code`` (default off) turns it on.
"""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "synthpt"


def _sources() -> list[tuple[Path, str]]:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 10
    return [(p, p.read_text(encoding="utf-8")) for p in files]


def _calls(text: str, name: str) -> list[str]:
    """The argument text of every ``name(`` call (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 1, m.end()
        while depth and i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        out.append(text[m.end():i - 1])
    return out


def test_torch_load_is_weights_only():
    found = 0
    for p, text in _sources():
        for args in _calls(text, "torch.load"):
            found += 1
            assert re.search(r"weights_only\s*=\s*True", args), f"{p}: torch.load({args}) without weights_only=True"
    assert found >= 1  # the shared checkpoint reader (synthpt.core.checkpointing) is scanned


def test_no_unsafe_deserialisation_or_code_execution():
    banned = {
        r"\byaml\.(load|unsafe_load|full_load|load_all)\(": "yaml.safe_load only",
        r"(?<![\w.])(eval|exec|compile)\(": "no eval/exec of text",
        r"\bpickle\b|\bdill\b|\bmarshal\b": "no pickle",
        r"shell\s*=\s*True": "no shell commands",
        r"__import__\(": "no dynamic imports from config",
    }
    for p, text in _sources():
        for pattern, why in banned.items():
            m = re.search(pattern, text)
            assert m is None, f"{p}: {m.group(0)!r} ({why})"


def test_trust_remote_code_is_off_unless_the_user_asks():
    for p, text in _sources():
        assert not re.search(r"trust_remote_code\s*=\s*True", text), f"{p}: trust_remote_code hard-wired on"
        for m in re.finditer(r"trust_remote_code\s*:\s*bool\s*=\s*(\w+)", text):
            assert m.group(1) == "False", f"{p}: trust_remote_code defaults to {m.group(1)}"
        for name in ("from_pretrained",):
            for args in _calls(text, name):
                if "trust_remote_code" in args:
                    assert re.search(r"trust_remote_code\s*=\s*trust_remote_code", args), f"{p}: {name}({args})"


def test_cli_flag_defaults_off():
    from synthpt.cli import build_parser

    parser = build_parser()
    seen = 0

    def walk(pr):
        nonlocal seen
        for a in pr._actions:  # noqa: SLF001 - argparse has no public API for this
            if "--trust-remote-code" in getattr(a, "option_strings", ()):
                seen += 1
                assert a.default is False, pr.prog
            for sub in (getattr(a, "choices", None) or {}).values() if a.__class__.__name__ == "_SubParsersAction" else ():
                walk(sub)

    walk(parser)
    assert seen >= 4  # prompt-tune, evaluate, generator tune, generate
