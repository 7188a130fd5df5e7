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


def _sub(name: str, *path: str):
    from synthpt.cli import build_parser

    parser = build_parser()
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public API for this
        p = action.choices[name]
    for step in path:
        p = next(a for a in p._actions if a.__class__.__name__ == "_SubParsersAction").choices[step]
    return p


def _config_classes():
    from synthpt.generator.generation import GenerationConfig
    from synthpt.generator.tuning import GeneratorConfig
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    return [(("prompt-tune",), "", PromptTrainerConfig), (("generator", "tune"), "", GeneratorConfig),
            (("generate",), "", GenerationConfig), (("run",), "pt-", PromptTrainerConfig),
            (("run",), "generator-", GeneratorConfig), (("run",), "generation-", GenerationConfig)]


@pytest.mark.parametrize("where", _config_classes(), ids=lambda w: " ".join(w[0]) + " " + w[2].__name__)
def test_one_builder_every_command_same_flags(where):
    """Every knob of every config is a flag of each command that takes it; booleans are --x / --no-x
    everywhere; Enum knobs show exactly their values."""
    import dataclasses
    import enum
    import typing

    from synthpt.core.knobs import values_of

    path, prefix, cls = where
    parser = _sub(*path)
    by_flag = {s: a for a in parser._actions for s in a.option_strings}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = f"--{prefix}{f.name.replace('_', '-')}"
        assert flag in by_flag, flag
        assert by_flag[flag].help and "default:" in by_flag[flag].help
        if hints[f.name] is bool:
            assert f"--no-{prefix}{f.name.replace('_', '-')}" in by_flag, flag
        typ = hints[f.name]
        if isinstance(typ, type) and issubclass(typ, enum.Enum):
            assert by_flag[flag].metavar == "{" + ",".join(values_of(typ)) + "}"


def test_enum_choices_in_help_and_refused_values(capsys):
    with pytest.raises(SystemExit):
        main(["prompt-tune", "--help"])
    assert "{real,syn,mixed,real-then-syn,syn-then-real,paired}" in capsys.readouterr().out
    assert main(["prompt-tune", "--task", "rte", "--data", "x", "--model", "m", "--out", "o", "--strategy", "bogus"]) == 2
    assert "unknown strategy 'bogus'; choose one of real, syn, mixed" in capsys.readouterr().err


def test_booleans_parse_both_ways():
    from synthpt.cli.main import dataclass_from_args
    from synthpt.generator.tuning import GeneratorConfig
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    tune = _sub("generator", "tune")
    base = ["--task", "rte", "--data", "d", "--model", "m", "--out", "o"]
    assert dataclass_from_args(GeneratorConfig, tune.parse_args(base)).init_from_label_words is True
    cfg = dataclass_from_args(GeneratorConfig, tune.parse_args([*base, "--no-init-from-label-words"]))
    assert cfg.init_from_label_words is False
    pt = _sub("prompt-tune")
    cfg = dataclass_from_args(PromptTrainerConfig, pt.parse_args([*base, "--strategy", "paired", "--gradient-surgery"]))
    assert cfg.gradient_surgery is True and cfg.strategy == "paired" and type(cfg.strategy) is str
    run = _sub("run")
    ns = run.parse_args(["--task", "rte", "--out", "o", "--no-pt-gradient-surgery", "--pt-strategy", "mixed"])
    assert ns.sec__prompt_tuning__gradient_surgery is False and ns.sec__prompt_tuning__strategy == "mixed"
    assert run.parse_args(["--task", "rte", "--out", "o"]).sec__prompt_tuning__gradient_surgery is None


def test_enum_knob_values_stay_plain_strings():
    from synthpt.generator.tuning import GeneratorConfig, GeneratorMode
    from synthpt.prompt_tuning.strategies import Strategy
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    cfg = PromptTrainerConfig(strategy=Strategy.PAIRED)
    cfg.validate()
    assert type(cfg.strategy) is str and cfg.strategy == "paired"  # checkpoints store plain strings
    g = GeneratorConfig(mode=GeneratorMode.FEWGEN)
    g.validate()
    assert type(g.mode) is str and g.mode == "fewgen"
