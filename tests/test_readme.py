"""The README's Python example runs as written, and the README stays short enough to read in five minutes."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_example() -> str:
    """The ```python block right after the ``<!-- readme-example -->`` marker."""
    text = README.read_text(encoding="utf-8")
    m = re.search(r"<!-- readme-example -->\s*```python\n(.*?)\n```", text, re.S)
    assert m, "README.md lost its marked Python example"
    return m.group(1)


def test_the_readme_python_example_runs_as_written(data_dir, tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"  # a project root with the data beside it, as in a fresh clone
    project.mkdir()
    (tmp_path / "shared").symlink_to(data_dir.parent, target_is_directory=True)
    monkeypatch.chdir(project)
    exec(compile(readme_example(), str(README), "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out.splitlines()
    assert "'accuracy'" in printed[0] and printed[0].endswith("runs/api-sst2/prompt")
    assert len(printed) == 3 and all(line.split()[0] in ("0", "1") for line in printed[1:])  # two SST-2 labels
    adapter = project / "runs" / "api-sst2" / "prompt"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "README.md").is_file()


def test_the_readme_is_short():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 260


def test_import_synthpt_stays_light():
    """``synthpt.load`` / ``synthpt.run`` are thin wrappers: importing the package loads no torch stack."""
    import subprocess
    import sys

    code = ("import sys, synthpt, synthpt.core.errors; assert callable(synthpt.load) and callable(synthpt.run); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
