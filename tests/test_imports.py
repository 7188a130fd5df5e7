"""Every ``from synthpt... import name`` in the package resolves, the ones inside functions too.

Imports inside functions run only when their branch does (a real-model benchmark, say), so a name
that moved in a refactor can hide there until a user reaches it; this walks them all statically."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "synthpt"


def test_every_synthpt_import_resolves():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not (isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("synthpt")):
                continue
            module = importlib.import_module(node.module)
            for alias in node.names:
                if hasattr(module, alias.name):
                    continue
                try:
                    importlib.import_module(f"{node.module}.{alias.name}")
                except ImportError:
                    bad.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.module}.{alias.name}")
    assert not bad, bad
