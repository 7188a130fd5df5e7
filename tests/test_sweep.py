"""Sweeps of `synthpt experiment`, gain capture in tables, and Stage 3's steps following the data."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from test_experiments import TINY_PT, fake_gen  # noqa: F401  (the fixture: a fake generator stage)

from synthpt.core.errors import SynthptError
from synthpt.experiments.config import parse_settings
from synthpt.experiments.tables import (
    build_table,
    gain_capture,
    gain_capture_row,
    to_csv,
    to_latex,
    to_markdown,
)


def _sweep_settings(**extra):
    raw = {"name": "S", "model": "tiny-t5", "generator_model": "tiny-gpt2", "max_eval": 24, "tasks": ["rte"],
           "seeds": [13], "generator": {"max_steps": 2}, "generation": {"n_per_label": 8},
           "prompt_tuning": dict(TINY_PT), "methods": ["zero-shot", "pt", "ours", "pt+gold"], "judge_rows": 8,
           "sweep": {"generation.n_per_label": [4, 8]}, **extra}
    return parse_settings(raw, "<test>")


# ---- sweeps ------------------------------------------------------------------------------------
def _files(root):
    """path -> mtime of every file under ``root``: a timing-free "did any work" signal."""
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def test_sweep_points_share_stages_cache_and_resume(tmp_path, data_dir, fake_gen, monkeypatch):  # noqa: F811
    from synthpt.experiments import grid
    from synthpt.methods.base import PromptTuningMethod

    out = tmp_path / "sweep"
    res = grid.run_experiment(_sweep_settings(), data_dir, out, progress=False)
    assert res["cells"] == 8
    # the generator is tuned once for both N; generation and the N-dependent prompts run per point;
    # PT's prompt and the zero-shot scores do not depend on N: one stage each for both points
    assert fake_gen == ["tune", "generate", "generate"]
    kinds = {d.name: sorted(p.name.rsplit("-", 1)[0] for p in d.iterdir()) for d in (out / "cache").iterdir()}
    assert kinds["prompt"] == ["rte-paired-gs-s13"] * 4 + ["rte-real-s13"]
    assert len(kinds["generator"]) == 1 and len(kinds["zero-shot"]) == 1
    for name in ("table-n_per_label=4.md", "table-n_per_label=8.csv", "table-n_per_label=8.tex", "sweep.md",
                 "sweep.csv", "sweep.png", "methods-n_per_label=4.png"):
        assert (out / name).is_file(), name
    assert not (out / "table.md").exists()
    assert (out / "cells" / "n_per_label=4" / "rte" / "pt" / "seed-13.json").is_file()
    md = (out / "sweep.md").read_text()
    assert "| Prompt Tuning | 4 |" in md and "|  | 8 |" in md and "Gain capture" in md
    assert "**S (n_per_label=8)**" in (out / "table-n_per_label=8.md").read_text()
    # each point's cells hold that point's rows: the oracle's gold rows follow N
    recs = {(r["point"], r["method"]): r for r in res["records"]}
    assert recs[("n_per_label=4", "pt+gold")]["metrics"]["n_synthetic"] == 8
    assert recs[("n_per_label=8", "pt+gold")]["metrics"]["n_synthetic"] == 16
    assert recs[("n_per_label=4", "pt")]["metrics"] == recs[("n_per_label=8", "pt")]["metrics"]
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    pt = [r for r in rows if r["method"] == "pt"]
    assert [r["generation.n_per_label"] for r in pt] == ["4", "8"]
    assert float(pt[0]["rte"]) == pytest.approx(recs[("n_per_label=4", "pt")]["metrics"]["test"]["accuracy"] * 100,
                                                abs=0.006)

    # a rerun does no work: no stage, no cell, no file of the cache or the cells is touched
    before = {**_files(out / "cache"), **_files(out / "cells")}
    grid.run_experiment(_sweep_settings(), data_dir, out, progress=False)
    assert {**_files(out / "cache"), **_files(out / "cells")} == before
    assert fake_gen == ["tune", "generate", "generate"] and (out / "sweep.md").read_text() == md

    # a sweep killed in its second point resumes with only the missing cells
    out2 = tmp_path / "killed"
    real_run = PromptTuningMethod.run

    def dying(self, ctx):
        if self.name == "ours" and ctx.generation_knobs.get("n_per_label") == 8:
            raise KeyboardInterrupt("killed")
        return real_run(self, ctx)

    monkeypatch.setattr(PromptTuningMethod, "run", dying)
    with pytest.raises(KeyboardInterrupt):
        grid.run_experiment(_sweep_settings(), data_dir, out2, progress=False)
    monkeypatch.setattr(PromptTuningMethod, "run", real_run)
    done = _files(out2 / "cells")
    grid.run_experiment(_sweep_settings(), data_dir, out2, progress=False)
    after = _files(out2 / "cells")
    assert all(after[p] == t for p, t in done.items())  # finished cells are read back, not redone
    assert {str(p.relative_to(out2 / "cells")) for p in set(after) - set(done)} == {
        f"n_per_label=8/rte/{grid.slug(m)}/seed-13.json" for m in ("ours", "pt+gold")}
    assert (out2 / "sweep.md").read_text() == md


def test_every_synthetic_set_gets_a_report(tmp_path, data_dir, fake_gen):  # noqa: F811
    """The dawgen set is judged by the backbone zero-shot and by the oracle's prompt; the gold rows
    only by the backbone (the oracle trained on them)."""
    from synthpt.experiments import grid

    out = tmp_path / "exp"
    st = _sweep_settings(sweep={"generation.n_per_label": [4]}, tables=[{"name": "main", "methods": ["pt", "ours"]}])
    res = grid.run_experiment(st, data_dir, out, progress=False)
    assert "synthetic.md" in res["files"] and "table-main-n_per_label=4.md" in res["files"]
    summary = (out / "synthetic.md").read_text()
    assert "| n_per_label=4 | rte | 13 | ours |" in summary and "| n_per_label=4 | rte | 13 | pt+gold |" in summary
    reports = {p.parent.name.split("-")[1]: p for p in (out / "cache" / "synthetic").glob("*/synthetic.report.md")}
    assert set(reports) == {"dawgen", "heldout"}
    assert all(p.with_suffix(".png").is_file() for p in reports.values())
    assert "oracle's prompt (`pt+gold`)" in reports["dawgen"].read_text()
    assert "oracle's prompt" not in reports["heldout"].read_text().split("## Diversity")[0]
    assert "backbone zero-shot" in reports["heldout"].read_text()
    stamps = {p: p.stat().st_mtime_ns for p in reports.values()}
    grid.run_experiment(st, data_dir, out, progress=False)
    assert {p: p.stat().st_mtime_ns for p in reports.values()} == stamps  # judged once


def test_a_run_over_a_shared_cache_links_its_reports_through_the_link(tmp_path, data_dir, fake_gen):  # noqa: F811
    """Several out folders over one stage cache (``out/cache`` a symlink): the run ends (no crash when the
    cache resolves outside ``out``) and every link of ``synthetic.md`` opens its report from ``out``."""
    import re

    from synthpt.experiments import grid

    shared = tmp_path / "shared-cache"
    shared.mkdir()
    out = tmp_path / "runs" / "b"
    out.mkdir(parents=True)
    (out / "cache").symlink_to(shared, target_is_directory=True)
    st = _sweep_settings(sweep={"generation.n_per_label": [4]}, tables=[{"name": "main", "methods": ["pt", "ours"]}])
    res = grid.run_experiment(st, data_dir, out, progress=False)
    assert "synthetic.md" in res["files"]
    links = re.findall(r"\[md\]\(([^)]+)\)", (out / "synthetic.md").read_text())
    assert len(links) == 2 and all(not Path(x).is_absolute() and (out / x).is_file() for x in links), links
    assert {x.split("/")[0] for x in links} == {"cache"}  # through the link, as a reader of out sees it
    cells = [r for r in res["records"] if r["method"] in ("ours", "pt+gold")]
    assert cells and all(run["synthetic"].startswith("cache/") for r in cells for run in r["runs"])  # can move


def test_published_rows_follow_n_per_label(tmp_path, data_dir, fake_gen):  # noqa: F811
    from synthpt.core.io import read_jsonl
    from synthpt.methods import get_method
    from synthpt.methods.base import Context
    from synthpt.tasks import get_task

    def ctx(options):
        return Context(task=get_task("rte"), seed=13, k=16, data_dir=data_dir, model="tiny-t5",
                       generator_model="tiny-gpt2", cache_dir=tmp_path / "cache", generation_knobs={"n_per_label": 6},
                       options=options)

    m = get_method("pt+fewgen-published")
    assert m.synthetic_path(ctx({})).name == "gen-train.json"  # unset: the whole published set, as before
    rows = read_jsonl(m.synthetic_path(ctx({"published_per_label": "generation"})))
    assert len(rows) == 12 and sum(r["label"] == "entailment" for r in rows) == 6
    assert len(read_jsonl(m.synthetic_path(ctx({"published_per_label": 3})))) == 6
    with pytest.raises(SynthptError, match="published_per_label: expected a positive integer"):
        m.synthetic_path(ctx({"published_per_label": "all"}))


def test_sweep_config_and_cli_errors(fake_gen):  # noqa: F811
    from synthpt.cli.experiment import _apply_sweeps
    from synthpt.experiments.sweep import point_label, point_settings, sweep_points

    with pytest.raises(SynthptError, match=r"sweep\.seeds: cannot sweep this key \(tasks and seeds"):
        _sweep_settings(sweep={"seeds": [1, 2]})
    with pytest.raises(SynthptError, match=r"sweep\.prompt_tuning\.lr: expected float, got 'fast'"):
        _sweep_settings(sweep={"prompt_tuning.lr": [0.1, "fast"]})
    with pytest.raises(SynthptError, match=r"sweep\.generation\.n_per_label: expected a non-empty list"):
        _sweep_settings(sweep={"generation.n_per_label": 64})
    with pytest.raises(SynthptError, match="listed twice"):
        _sweep_settings(sweep={"k": [8, 8]})
    st = _sweep_settings()
    _apply_sweeps(st, ["generation.n_per_label=[64,256]", "prompt_tuning.lr=0.1"])
    assert st.sweep == {"generation.n_per_label": [64, 256], "prompt_tuning.lr": [0.1]}
    pts = sweep_points(st.sweep)
    assert [p.label for p in pts] == ["n_per_label=64,lr=0.1", "n_per_label=256,lr=0.1"]
    one = point_settings(st, pts[1])
    assert one.sections["generation"]["n_per_label"] == 256 and one.forced["prompt_tuning"] == {"lr": 0.1}
    assert st.sections["generation"]["n_per_label"] == 8  # the base settings are untouched
    assert point_label({"model": "runs/my model"}).startswith("model=runs_my_model-")
    with pytest.raises(SynthptError, match="expected KEY=\\[VALUES\\]"):
        _apply_sweeps(st, ["generation.n_per_label"])


# ---- gain capture ---------------------------------------------------------------------------------
def _rec(task, seed, method, acc):
    return {"task": task, "seed": seed, "method": method, "trainable_parameters": 10, "metrics": {"test": {"accuracy": acc}}}


GAIN_RECORDS = [
    _rec("sst-2", 13, "pt", 0.80), _rec("sst-2", 42, "pt", 0.82),        # PT 81.0
    _rec("sst-2", 13, "pt+gold", 0.88), _rec("sst-2", 42, "pt+gold", 0.86),  # oracle 87.0: gap 6
    _rec("sst-2", 13, "ours", 0.84), _rec("sst-2", 42, "ours", 0.86),    # Ours 85.0: (85-81)/6 = 0.667
    _rec("rte", 13, "pt", 0.55), _rec("rte", 42, "pt", 0.55),            # PT 55.0
    _rec("rte", 13, "pt+gold", 0.555), _rec("rte", 42, "pt+gold", 0.555),  # oracle 55.5: gap 0.5 < 1: n/a
    _rec("rte", 13, "ours", 0.60), _rec("rte", 42, "ours", 0.50),        # Ours 55.0
]


def test_gain_capture_against_hand_computation():
    assert gain_capture(0.85, 0.81, 0.87) == pytest.approx(4 / 6)
    assert gain_capture(0.79, 0.81, 0.87) == pytest.approx(-2 / 6)
    assert gain_capture(0.85, 0.81, 0.81) is None and gain_capture(0.85, 0.81, 0.80) is None
    assert gain_capture(0.85, 0.81, 0.815) is None  # a half-point gap: noise, n/a
    rows = [("pt", "Prompt Tuning"), ("pt+gold", "Oracle"), ("ours", "Ours")]
    table = build_table(GAIN_RECORDS, rows, ["sst-2", "rte"])
    gc = gain_capture_row(table)
    assert gc["sst-2"][0] == pytest.approx(4 / 6) and gc["sst-2"][1] == pytest.approx(0.06)
    assert gc["rte"][0] is None and gc["rte"][1] == pytest.approx(0.005)
    # AVG: PT 68.0, oracle 71.25, Ours 70.0 -> (70 - 68) / (71.25 - 68) = 2 / 3.25
    assert gc["AVG"][0] == pytest.approx(2 / 3.25)
    md = to_markdown(table)
    assert md.splitlines()[-1] == "| Gain capture (Ours − PT) / (oracle − PT) |  | 0.67 | n/a (gap +0.5) | 0.62 |"
    last = to_csv(table).splitlines()[-1].split(",")
    assert last[0] == "gain_capture" and float(last[3]) == pytest.approx(4 / 6, abs=1e-4) and last[5] == ""
    assert float(last[7]) == pytest.approx(2 / 3.25, abs=1e-4)
    assert r"Gain capture (Ours - PT) / (oracle - PT) &  & 0.67 & n/a (gap +0.5) & 0.62 \\" in to_latex(table)
    # without the oracle row there is nothing to capture
    assert gain_capture_row(build_table(GAIN_RECORDS, rows[::2], ["sst-2", "rte"])) is None
    assert "Gain capture" not in to_markdown(build_table(GAIN_RECORDS, rows[::2], ["sst-2", "rte"]))


# ---- Stage 3's steps follow the data -----------------------------------------------------------------
def test_data_steps_against_hand_computation():
    from synthpt.prompt_tuning.steps import config_key, data_steps, data_steps_config
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig

    assert data_steps("paired", 32, 128, 8, 4, 1.0) == 32            # 128 rows / 4 per step
    assert data_steps("paired", 32, 2048, 8, 4, 2.0) == 1024
    assert data_steps("paired", 32, 2048, 8, 4, 2.0, cap=300) == 300
    assert data_steps("paired", 32, 130, 8, None, 1.0) == 17         # ceil(130 / 8): syn_batch_size defaults to batch_size
    assert data_steps("paired", 32, 40, 8, 4, 0.1) == 1              # 0.1 * 40 / 4 = 1 exactly, not 2 from rounding
    assert data_steps("syn", 32, 100, 8, 4, 1.0) == 13               # ceil(100 / 8)
    assert data_steps("mixed", 32, 128, 8, 4, 1.0) == 20             # (32 + 128) / 8
    assert data_steps("real-then-syn", 32, 128, 8, 4, 1.0, phase_split=0.75) == 64  # 16 syn steps are a quarter
    assert data_steps("syn-then-real", 32, 128, 8, 4, 1.0, phase_split=0.25) == 64
    assert data_steps("real", 32, 128, 8, 4, 1.0) is None and data_steps("paired", 32, 0, 8, 4, 1.0) is None
    cfg = PromptTrainerConfig(strategy="paired", batch_size=8, syn_batch_size=4, max_steps=30, syn_epochs=2.0,
                             max_steps_cap=100)
    assert data_steps_config(cfg, 32, 128).max_steps == 64
    assert data_steps_config(cfg, 32, 1000).max_steps == 100
    assert data_steps_config(PromptTrainerConfig(max_steps=30, syn_epochs=2.0), 32, 0).max_steps == 30  # PT keeps its budget
    assert data_steps_config(PromptTrainerConfig(max_steps=30), 32, 128).max_steps == 30
    # unset, the new knobs stay out of cache keys (older caches stay valid); set, they are in
    assert "syn_epochs" not in config_key(PromptTrainerConfig()) and config_key(cfg)["syn_epochs"] == 2.0
    for bad, msg in (({"syn_epochs": 0.0}, "--syn-epochs must be"), ({"syn_epochs": math.inf}, "--syn-epochs must be"),
                     ({"max_steps_cap": 0}, "--max-steps-cap must be")):
        with pytest.raises(SynthptError, match=msg):
            PromptTrainerConfig(**bad).validate()


def test_trainer_steps_follow_the_synthetic_rows(tmp_path, rte_split, tiny_t5):
    """The oracle and Ours get n_per_label rows per label, so the same rule gives them the same steps."""
    from synthpt.data import load_split
    from synthpt.prompt_tuning.recipe import run_prompt_tuning
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig
    from synthpt.tasks import get_task

    syn = load_split(rte_split, "rte")["train"][:12]
    cfg = PromptTrainerConfig(strategy="paired", batch_size=4, syn_batch_size=2, max_steps=50, syn_epochs=0.5,
                             prompt_length=4, eval_every=2, checkpoint_every=2, max_length=64, eval_batch_size=16)
    m = run_prompt_tuning(get_task("rte"), rte_split,
                          tiny_t5, tmp_path / "p", cfg, synthetic=syn, max_eval=8, progress=False)
    assert m["steps"] == 3 and m["n_synthetic"] == 12  # ceil(0.5 * 12 / 2)
    lines = (tmp_path / "p" / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3


def _scale_cpu(fake: bool = False):
    """configs/scale-cpu.yaml without `lora` where this branch does not register it (and, for the fake
    generator stage, without the generator knobs the fake lacks)."""
    import yaml

    from synthpt.methods import list_methods

    path = Path(__file__).resolve().parents[1] / "configs" / "scale-cpu.yaml"
    raw = yaml.safe_load(path.read_text())
    assert "lora" in raw["methods"]  # the config lists it whether or not this branch registers it
    if "lora" not in {m.name for m in list_methods()}:
        raw["methods"] = [m for m in raw["methods"] if m != "lora"]
    if fake:
        from test_experiments import FakeGenerationConfig, FakeGeneratorConfig

        for section, cls in (("generator", FakeGeneratorConfig), ("generation", FakeGenerationConfig)):
            raw[section] = {k: v for k, v in raw[section].items() if k in cls.__dataclass_fields__}
    return parse_settings(raw, str(path))


def test_scale_cpu_config_parses():
    st = _scale_cpu()
    assert st.sweep == {"generation.n_per_label": [64, 256, 1024]} and st.seeds == [42]
    assert st.tasks == ["sst-2", "mrpc", "rte", "qnli"] and st.model == st.generator_model == "gemma3-270m"
    assert st.sections["prompt_tuning"]["syn_epochs"] == 1.0 and st.options["published_per_label"] == "generation"
    assert {"zero-shot", "pt", "pt+gold", "pt+fewgen-published", "ours"} <= {r.name for r in st.rows}


def test_scale_cpu_config_runs_on_tiny_models(tmp_path, data_dir, fake_gen):  # noqa: F811
    from synthpt.experiments import grid

    st = _scale_cpu(fake=True)
    # the tiny variant: the same file with --set model=tiny-gpt2 ... and a smaller sweep
    for key, value in [("model", "tiny-gpt2"), ("generator_model", "tiny-gpt2"), ("max_eval", 24), ("judge_rows", 8),
                       ("tasks", ["sst-2"]), ("prompt_tuning.prompt_length", 4), ("prompt_tuning.max_steps", 4),
                       ("prompt_tuning.max_steps_cap", 3), ("prompt_tuning.eval_every", 2),
                       ("prompt_tuning.max_length", 64), ("prompt_tuning.eval_batch_size", 16)]:
        st.set(key, value)
    st.sweep = {"generation.n_per_label": [4, 8]}
    res = grid.run_experiment(st, data_dir, tmp_path / "scale", progress=False)
    steps = {(r["point"], r["method"]): r["metrics"].get("steps") for r in res["records"]}
    # one pass over 2N rows at 4 per step: 2 steps at N = 4, ceil(16 / 4) = 4 capped to 3 at N = 8; PT keeps 4
    for m in ("ours", "pt+gold", "pt+fewgen-published"):
        assert steps[("n_per_label=4", m)] == 2 and steps[("n_per_label=8", m)] == 3, m
    assert steps[("n_per_label=4", "pt")] == steps[("n_per_label=8", "pt")] == 4
    if ("n_per_label=4", "lora") in steps:  # registered: LoRA shares PT's step budget at every N
        assert steps[("n_per_label=4", "lora")] == steps[("n_per_label=8", "lora")] == 4
    for name in ("sweep.md", "sweep.png", "table-n_per_label=8.md", "synthetic.md"):
        assert (tmp_path / "scale" / name).is_file(), name
    assert "Gain capture" in (tmp_path / "scale" / "table-n_per_label=4.md").read_text()


def test_table_and_sweep_captions_share_the_seed_phrase_and_gain_capture_definition():
    from synthpt.experiments.tables import MIN_GAP, gain_capture_note, seed_phrase

    assert seed_phrase([42]) == "one seed (42), so every std is 0"
    assert seed_phrase([13, 42]) == "mean ± std over seeds 13, 42"
    assert seed_phrase([]) == "mean ± std over seeds none yet" and seed_phrase([], empty="").endswith("seeds ")
    for note in (gain_capture_note(), gain_capture_note(sweep=True)):
        assert "(Ours − PT) / (oracle − PT)" in note and "oracle = PT + held-out gold rows" in note
        assert f"n/a where the oracle gains less than {MIN_GAP * 100:.0f} point" in note
    assert "AVG from the AVG column" in gain_capture_note() and "as in the tables" in gain_capture_note(sweep=True)


def test_sweep_marks_a_cell_over_fewer_seeds():
    from synthpt.experiments.sweep import Point, sweep_cells, sweep_markdown

    p = Point((("generation.n_per_label", 256),), "n_per_label=256")
    recs = [{"task": "rte", "seed": s, "method": m, "point": p.label, "metrics": {"test": {"accuracy": a}}}
            for s, m, a in [(13, "pt", 0.5), (42, "pt", 0.6), (42, "ours", 0.7)]]
    rows = [("pt", "PT"), ("ours", "Ours")]
    cells, gains = sweep_cells([p], recs, ["rte"], rows)
    md = sweep_markdown("T", [p], cells, ["rte"], rows, gains, [13, 42])
    assert "| PT | 256 | 55.0 ± 5.0 | 55.0 ± 5.0 |" in md
    assert "| Ours | 256 | 70.0 ± 0.0 (n=1) | 70.0 ± 0.0 (n=1) |" in md
    assert md.rstrip().endswith("(n=K): over K of the seeds only.")
