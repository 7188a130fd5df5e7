"""``synthpt bench``'s plumbing (the figures themselves are measurements, never tests): the registry,
a clear error for an unknown figure, and the real-model lines where SmolLM2 is not installed."""

from __future__ import annotations

import io
import json

import pytest

from synthpt.bench import common, evaluation, figures, generator, peft
from synthpt.core.errors import SynthptError


def test_every_registered_figure_is_listed_in_order():
    assert figures.FIGURES == tuple(figures.REGISTRY)
    assert {"pt_step_time_vs_peft", "dawgen_step_vs_plain_step", "eval_speedup_vs_generate"} <= set(figures.FIGURES)


def test_an_unknown_figure_is_one_clear_error():
    with pytest.raises(SynthptError, match="unknown figure"):
        figures.run(["no_such_figure"], quick=True, out=io.StringIO())


def test_real_model_figures_say_why_they_are_skipped(monkeypatch):
    why = "smollm2-135m is not installed (test)"
    for mod in (common, evaluation, peft):
        monkeypatch.setattr(mod, "real_model_missing", lambda *a: why)
    lines = [generator.dawgen_step_ratio_real(), evaluation.eval_speedup_vs_generate_real(),
             *peft.pt_step_vs_peft_real()]
    assert [r["name"] for r in lines] == ["dawgen_step_vs_plain_step", "eval_speedup_vs_generate",
                                          "pt_step_time_vs_peft", "pt_step_memory_vs_peft"]
    for r in lines:
        assert r["value"] is None and r["holds"] is None and r["skipped"] == why and r["model"] == "smollm2-135m"
        json.dumps(r)  # printable as a JSON line


def test_real_model_missing_is_none_when_the_converted_model_is_cached(monkeypatch, tmp_path):
    from synthpt.core import gguf, models

    monkeypatch.setattr(models, "cache_dir", lambda: tmp_path)
    monkeypatch.setattr(gguf, "package_dir", lambda name: None)
    assert "not installed" in common.real_model_missing()
    (tmp_path / "models" / "smollm2-135m").mkdir(parents=True)
    (tmp_path / "models" / "smollm2-135m" / "config.json").write_text("{}")
    assert common.real_model_missing() is None


def test_time_and_memory_of_figure_1_come_from_one_measurement_per_run(monkeypatch):
    calls = []

    def fake(model):
        def measure(**kw):
            calls.append(model)
            return [{"name": "pt_step_time_vs_peft", "model": model}, {"name": "pt_step_memory_vs_peft", "model": model}]
        return measure

    monkeypatch.setattr(peft, "pt_step_vs_peft", fake("tiny"))
    monkeypatch.setattr(peft, "pt_step_vs_peft_real", fake("real"))
    for _ in range(2):  # a second run measures again
        out = io.StringIO()
        figures.run(["pt_step_time_vs_peft", "pt_step_memory_vs_peft"], quick=True, threads=1, out=out)
        lines = [json.loads(x) for x in out.getvalue().splitlines()]
        assert [(r["name"], r["model"]) for r in lines] == [
            ("pt_step_time_vs_peft", "tiny"), ("pt_step_time_vs_peft", "real"),
            ("pt_step_memory_vs_peft", "tiny"), ("pt_step_memory_vs_peft", "real")]
    assert calls == ["tiny", "real", "tiny", "real"]


def test_real_model_generation_figures_skip_in_one_line(monkeypatch):
    """Without the model, the Stage 2 figures are one skipped line (and the function's imports resolve:
    a merge once left it importing a helper that had moved)."""
    from synthpt.bench import generation

    monkeypatch.setattr(generation, "smollm2_available", lambda: "smollm2-135m is not installed (test)")
    (line,) = generation.real_model_figures(quick=True)
    assert line["skipped"].startswith("smollm2-135m is not installed") and line["value"] is None


def test_smollm2_availability_check_runs():
    """The check itself runs here (installed or not), returning None or one line of why."""
    from synthpt.bench.generation import smollm2_available

    why = smollm2_available()
    assert why is None or (isinstance(why, str) and "\n" not in why)


def test_eval_speedup_reads_the_configs_and_the_default_prompt_length(monkeypatch):
    """On a causal LM the soft prompt's length decides what scoring saves: both lengths are printed
    (one skipped line when SmolLM2 is missing)."""
    asked = []

    def fake_real(n, reps, prompt_tokens):
        asked.append(prompt_tokens)
        return {"name": "eval_speedup_vs_generate", "prompt_tokens": prompt_tokens}

    monkeypatch.setattr(evaluation, "eval_speedup_vs_generate", lambda **kw: {"name": "t5"})
    monkeypatch.setattr(evaluation, "eval_speedup_vs_generate_real", fake_real)
    lines = figures.REGISTRY["eval_speedup_vs_generate"](figures.Settings(quick=True))
    assert asked == [20, 100] and [r.get("prompt_tokens") for r in lines] == [None, 20, 100]
    monkeypatch.setattr(evaluation, "eval_speedup_vs_generate_real", lambda **kw: {"skipped": "missing"})
    assert len(figures.REGISTRY["eval_speedup_vs_generate"](figures.Settings(quick=True))) == 2
