"""Flags: one builder for every command (booleans, Enum choices), renamed flags that keep their old name."""

from __future__ import annotations

from typing import Any

import pytest

from synthpt.cli import main


def _capture_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Replace the pipeline with a recorder of the settings `synthpt run` resolved."""
    import synthpt.experiments.pipeline as pipeline

    seen: dict[str, Any] = {}

    def fake(task, seed, data_dir, out, st, method=None, progress=True):
        seen["st"] = st
        return {"test": {"n": 0}, "stages": [], "display": "x", "seconds_this_invocation": 0.0,
                "prompt_adapter": "p"}

    monkeypatch.setattr(pipeline, "run_pipeline", fake)
    return seen


def test_run_generator_model_and_its_deprecated_alias(monkeypatch, tmp_path, capsys):
    seen = _capture_run(monkeypatch)
    assert main(["run", "--task", "rte", "--out", str(tmp_path), "--generator-model", "tiny-t5"]) == 0
    assert seen["st"].generator_model == "tiny-t5"
    assert "deprecated" not in capsys.readouterr().err
    assert main(["run", "--task", "rte", "--out", str(tmp_path), "--generator", "smollm2-135m"]) == 0
    assert seen["st"].generator_model == "smollm2-135m"
    assert "deprecated" in capsys.readouterr().err
