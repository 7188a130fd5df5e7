"""The package's floors read in the pipeline's order: no module imports from a floor above its own.

Walks every module of ``src/synthpt`` with ``ast`` (imports inside functions too; imports under
``if TYPE_CHECKING:`` are annotations only and never run, so they are not arrows). A module may
import from its own floor or any floor below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "synthpt"

# Bottom to top. A name is a top-level module or package of synthpt.
LAYERS: list[str] = [
    "core",  # errors, io, distributed, runinfo, models, scoring, classify, batches, cache, ...
    "tasks",
    "data",
    "generator",
    "prompt_tuning",
    "evaluate",
    "methods",
    "experiments",
    "bench",
    "api",
    "cli",
]
ROOT_MODULES = {"__init__", "__main__"}  # the package's front door may import anything


def floor(module: str) -> int | None:
    """Index in LAYERS of ``synthpt.X...`` (None for the package root)."""
    parts = module.split(".")
    if parts[0] != "synthpt" or len(parts) < 2:
        return None
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else -1


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return skip


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = _type_checking_nodes(tree)
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "synthpt":  # from synthpt import tasks, core ...
                out += [(node.lineno, f"synthpt.{a.name}") for a in node.names]
            else:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(ln, m) for ln, m in out if m.startswith("synthpt")]


def modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_sits_on_a_declared_floor():
    unknown = [str(p.relative_to(SRC)) for p in modules()
               if p.relative_to(SRC).parts[0].removesuffix(".py") not in set(LAYERS) | ROOT_MODULES]
    assert not unknown, f"modules on no floor (add them to LAYERS in the right place): {unknown}"


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_runs_upward(path: Path):
    rel = path.relative_to(SRC)
    if rel.parts[0].removesuffix(".py") in ROOT_MODULES:
        return
    own = LAYERS.index(rel.parts[0].removesuffix(".py"))
    upward = [f"line {ln}: {m} (floor {LAYERS[floor(m)]})" for ln, m in imports_of(path)
              if (f := floor(m)) is not None and f > own]
    assert not upward, f"{rel} (floor {LAYERS[own]}) imports from above: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path):
    """The walker is not vacuous: it finds an import inside a function and ignores TYPE_CHECKING."""
    f = tmp_path / "m.py"
    f.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from synthpt.cli import main\n"
                 "def g():\n    from synthpt.experiments.grid import run_experiment\n")
    assert imports_of(f) == [(5, "synthpt.experiments.grid")]
    assert floor("synthpt.experiments.grid") > floor("synthpt.core.io")
