"""`synthpt run`, the method registry and `synthpt experiment` on tiny models.

The generator stage is replaced by a small fake (same API as ``synthpt.generator``) so these
tests check the pipeline's machinery - caching, resume, tables - fast and independent of
the generator's own tests.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
from pathlib import Path

import pytest

from synthpt.core.errors import SynthptError
from synthpt.experiments.config import Settings, load_settings, parse_settings
from synthpt.experiments.tables import build_table, caption, to_csv, to_latex, to_markdown

TINY_PT = {"max_steps": 4, "prompt_length": 4, "eval_every": 4, "checkpoint_every": 2, "max_length": 96,
           "batch_size": 4, "eval_batch_size": 16}


# ---- a fake generator stage with the real API -------------------------------------------------
@dataclasses.dataclass
class FakeGeneratorConfig:
    mode: str = "dawgen"
    prompt_length: int = 20
    max_steps: int = 200
    batch_size: int = 8
    seed: int = 42


@dataclasses.dataclass
class FakeGenerationConfig:
    n_per_label: int = 5000
    batch_size: int = 32
    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 0.9
    seed: int = 42


def _fake_module(calls: list[str]) -> types.ModuleType:
    from synthpt.core.io import write_json, write_jsonl
    from synthpt.data import load_split
    from synthpt.tasks import get_task

    def run_generator_tuning(task, data, model, out, cfg, restart=False, progress=True):
        calls.append("tune")
        Path(out).mkdir(parents=True, exist_ok=True)
        write_json(Path(out) / "generator.json", {"task": task.name, "data": str(data), "mode": cfg.mode})
        return {"mode": cfg.mode, "steps": cfg.max_steps}

    def run_generation(generator_dir, out_jsonl, cfg, data=None, restart=False, progress=True):
        calls.append("generate")
        meta = json.loads((Path(generator_dir) / "generator.json").read_text())
        task = get_task(meta["task"])
        train = load_split(data, task)["train"]
        rows = [dict(ex) for lab in task.labels for ex in [e for e in train if e["label"] == lab]][: cfg.n_per_label * 2]
        write_jsonl(out_jsonl, rows)
        report = {"kept": len(rows), "generated": len(rows) + 3, "dropped_duplicates": 3}
        write_json(str(out_jsonl) + ".report.json", report)
        return report

    mod = types.ModuleType("synthpt.generator")
    mod.GeneratorConfig, mod.GenerationConfig = FakeGeneratorConfig, FakeGenerationConfig
    mod.run_generator_tuning, mod.run_generation = run_generator_tuning, run_generation
    return mod


@pytest.fixture
def fake_gen(monkeypatch):
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "synthpt.generator", _fake_module(calls))
    return calls


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SYNTHPT_CACHE", str(tmp_path_factory.getbasetemp() / "synthpt-cache"))


def _settings(**extra) -> Settings:
    raw = {"model": "tiny-t5", "generator_model": "tiny-gpt2", "max_eval": 24, "tasks": ["rte"], "seeds": [13],
           "generator": {"max_steps": 2}, "generation": {"n_per_label": 8}, "prompt_tuning": dict(TINY_PT),
           "methods": ["pt", "ours"], **extra}
    return parse_settings(raw, "<test>")


# ---- synthpt run ---------------------------------------------------------------------------------
def test_run_pipeline_caches_each_stage(tmp_path, data_dir, fake_gen):
    from synthpt.experiments.pipeline import run_pipeline
    from synthpt.tasks import get_task

    out = tmp_path / "run"
    st = _settings()
    r1 = run_pipeline(get_task("mrpc"), 42, data_dir, out, st, method="ours", progress=False)
    for name in ("split/train.jsonl", "generator/generator.json", "synthetic.jsonl", "synthetic.jsonl.report.json",
                 "prompt/adapter_config.json", "prompt/adapter_model.safetensors", "metrics.json", "report.md"):
        assert (out / name).is_file(), name
    assert {"accuracy", "f1"} <= set(r1["test"]) and r1["trainable_parameters"] == 4 * 64
    report = (out / "report.md").read_text()
    assert "conflict rate" in report and "dropped_duplicates" in report and "| prompt | ran |" in report
    # the synthetic set's own report beside it, and its summary row here
    assert "## Synthetic data (quality report)" in report and "(synthetic.report.md) |" in report
    assert (out / "synthetic.report.md").is_file() and (out / "synthetic.report.png").is_file()
    assert fake_gen == ["tune", "generate"]

    r2 = run_pipeline(get_task("mrpc"), 42, data_dir, out, _settings(), method="ours", progress=False)
    assert fake_gen == ["tune", "generate"]  # nothing redone
    assert r2["test"] == r1["test"] and all(s["status"] == "cached" for s in r2["stages"])

    st = _settings()
    st.set("generation.n_per_label", 6)  # Stage 2 and Stage 3 rerun, Stage 1 does not
    r3 = run_pipeline(get_task("mrpc"), 42, data_dir, out, st, method="ours", progress=False)
    assert fake_gen == ["tune", "generate", "generate"]
    assert [s["status"] for s in r3["stages"]] == ["cached", "cached", "ran", "ran"]


def test_gold_oracle_trains_on_heldout_rows(tmp_path, data_dir):
    """`pt+gold`: Stage 3 on gold rows outside the split, as many per label as generation keeps."""
    from synthpt.core.io import read_jsonl
    from synthpt.data import load_split
    from synthpt.experiments.pipeline import run_pipeline
    from synthpt.tasks import get_task

    out = tmp_path / "run"
    r = run_pipeline(get_task("rte"), 42, data_dir, out, _settings(), method="pt+gold", progress=False)
    rows = read_jsonl(out / "heldout.jsonl")
    split = load_split(out / "split", "rte")
    key = lambda ex: (ex["text1"], ex["text2"])  # noqa: E731
    used = split["train"] + split["dev"] + split["test"]
    assert len(rows) == 16 and not {key(x) for x in rows} & {key(x) for x in used}
    metrics = json.loads((out / "prompt" / "metrics.json").read_text())
    assert metrics["n_synthetic"] == 16 and metrics["strategy"] == "paired" and metrics["gradient_surgery"]
    assert {"accuracy"} <= set(r["test"])


def test_gold_control_trains_on_the_oracles_rows_with_shuffled_labels(tmp_path, data_dir):
    """`pt+gold-shuffled`: the oracle's rows, texts and label counts as they were, labels permuted,
    in a file of its own beside the oracle's."""
    from collections import Counter

    from synthpt.core.io import read_jsonl
    from synthpt.experiments.pipeline import run_pipeline
    from synthpt.tasks import get_task

    gold = run_pipeline(get_task("rte"), 42, data_dir, tmp_path / "gold", _settings(), method="pt+gold", progress=False)
    ctrl = run_pipeline(get_task("rte"), 42, data_dir, tmp_path / "ctrl", _settings(), method="pt+gold-shuffled",
                        progress=False)
    g, c = read_jsonl(tmp_path / "gold" / "heldout.jsonl"), read_jsonl(tmp_path / "ctrl" / "heldout-shuffled.jsonl")
    assert [(x["text1"], x["text2"]) for x in c] == [(x["text1"], x["text2"]) for x in g]
    assert Counter(x["label"] for x in c) == Counter(x["label"] for x in g)
    assert [x["label"] for x in c] != [x["label"] for x in g]
    metrics = json.loads((tmp_path / "ctrl" / "prompt" / "metrics.json").read_text())
    assert metrics["n_synthetic"] == 16 and metrics["strategy"] == "paired" and metrics["gradient_surgery"]
    assert {"accuracy"} <= set(ctrl["test"]) and {"accuracy"} <= set(gold["test"])


def test_judge_keeps_the_rows_the_few_shot_prompt_labels_as_their_own(tmp_path, data_dir, fake_gen):
    """`ours+judge`: Stage 3 trains on the generated rows the few-shot PT prompt agrees with,
    balanced; the judge is method pt's own stage (trained once), and a rerun does no work."""
    from synthpt.core.classify import predict
    from synthpt.core.io import read_jsonl
    from synthpt.core.saving import load_peft_prompt
    from synthpt.core.scoring import Encoder
    from synthpt.data import keep_agreeing
    from synthpt.experiments.pipeline import run_pipeline
    from synthpt.methods import get_method
    from synthpt.methods.base import Context
    from synthpt.methods.baselines.common import frozen_backbone
    from synthpt.tasks import get_task

    task, out = get_task("sst-2"), tmp_path / "run"
    r = run_pipeline(task, 42, data_dir, out, _settings(), method="ours+judge", progress=False)
    rows, kept = read_jsonl(out / "synthetic.jsonl"), read_jsonl(out / "judged.jsonl")
    prompt = load_peft_prompt(out / "judge-prompt")[0]
    enc = Encoder(task, frozen_backbone("tiny-t5"), max_length=TINY_PT["max_length"], prompt_length=prompt.shape[0])
    predicted = [task.labels[i] for i in predict(enc, rows, prompt, 16).argmax(-1).tolist()]
    assert kept == keep_agreeing(rows, predicted, 42) and 0 < len(kept) < len(rows)
    metrics = json.loads((out / "prompt" / "metrics.json").read_text())
    assert metrics["n_synthetic"] == len(kept) and metrics["gradient_surgery"] and {"accuracy"} <= set(r["test"])
    again = run_pipeline(task, 42, data_dir, out, _settings(), method="ours+judge", progress=False)
    assert all(s["status"] == "cached" for s in again["stages"]) and again["test"] == r["test"]
    # in an experiment the judge is the pt row's prompt, not a second training run
    ctx = Context(task=task, seed=42, k=16, data_dir=data_dir, model="tiny-t5", generator_model="tiny-gpt2",
                  cache_dir=tmp_path / "cache", pt_knobs=dict(TINY_PT), progress=False)
    get_method("pt").run(ctx)
    assert ctx.few_shot_prompt() == Path(ctx.runs[-1]["dir"]) and not ctx.stages[-1].ran


def test_ours_control_trains_on_its_generated_rows_with_shuffled_labels(tmp_path, data_dir, fake_gen):
    """`ours-shuffled`: Ours' generated rows, texts and label counts as they were, labels permuted
    (the same permutation as the oracle's control), in a file of its own; a rerun does no work."""
    from collections import Counter

    from synthpt.core.io import read_jsonl
    from synthpt.data import shuffle_labels
    from synthpt.experiments.pipeline import run_pipeline
    from synthpt.tasks import get_task

    task, out, st = get_task("sst-2"), tmp_path / "run", _settings(generation={"n_per_label": 16})  # both labels
    r = run_pipeline(task, 42, data_dir, out, st, method="ours-shuffled", progress=False)
    rows, ctrl = read_jsonl(out / "synthetic.jsonl"), read_jsonl(out / "shuffled.jsonl")
    assert [x["text"] for x in ctrl] == [x["text"] for x in rows]
    assert Counter(x["label"] for x in ctrl) == Counter(x["label"] for x in rows)
    assert [x["label"] for x in ctrl] != [x["label"] for x in rows]
    assert [x["label"] for x in ctrl] == [x["label"] for x in shuffle_labels(rows, 42)]
    metrics = json.loads((out / "prompt" / "metrics.json").read_text())
    assert metrics["n_synthetic"] == len(rows) and metrics["gradient_surgery"] and {"accuracy"} <= set(r["test"])
    again = run_pipeline(task, 42, data_dir, out, st, method="ours-shuffled", progress=False)
    assert all(s["status"] == "cached" for s in again["stages"]) and again["test"] == r["test"]


def test_gold_oracle_never_draws_test_rows(tmp_path):
    """A user task whose test file repeats training rows: the oracle skips them as it skips the split."""
    from synthpt.core.io import read_jsonl, write_json, write_jsonl
    from synthpt.methods.base import Context
    from synthpt.tasks import load_task_spec

    rows = [{"review": f"{lab} {i}", "label": lab} for lab in ("bad", "good") for i in range(10)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", [rows[i] for i in (0, 1, 10, 11)])
    write_json(tmp_path / "task.json", {
        "name": "reviews", "fields": ["review"], "labels": ["bad", "good"],
        "label_words": {"bad": "bad", "good": "good"}, "template": "{review} It was{mask}",
        "files": {"train": "train.jsonl", "test": "test.jsonl"}})
    task = load_task_spec(tmp_path / "task.json")
    ctx = Context(task=task, seed=13, k=2, data_dir=None, model="tiny-gpt2", generator_model="tiny-gpt2",
                  cache_dir=tmp_path / "cache")
    # 10 per label - 2 train - 2 dev - 2 test = 4 left per label: all of them, and never a test row
    drawn = {r["review"] for r in read_jsonl(ctx.heldout(4))}
    assert len(drawn) == 8 and not drawn & {"bad 0", "bad 1", "good 0", "good 1"}
    with pytest.raises(SynthptError, match="has 4 rows outside the split, need 5"):
        Context(task=task, seed=13, k=2, data_dir=None, model="tiny-gpt2", generator_model="tiny-gpt2",
                cache_dir=tmp_path / "cache2").heldout(5)


# ---- the method registry -------------------------------------------------------------------------
def test_registry_names_and_adding_a_method(tmp_path, data_dir):
    from synthpt.experiments.grid import run_experiment
    from synthpt.methods import Method, get_method, list_methods, register

    names = {m.name for m in list_methods()}
    for gen in ("fewgen", "dawgen"):
        for s in ("real+syn", "real+syn+ls", "real->syn", "syn->real", "(real,syn)", "syn"):
            assert f"{s}@{gen}" in names
    assert {"pt", "ours", "ours@fewgen", "ours-no-gs", "ours-no-real", "pt+fewgen-published"} <= names
    assert get_method("ours").display == "Ours" and get_method("pt").display == "Prompt Tuning"
    with pytest.raises(SynthptError, match="unknown method"):
        get_method("nope")

    @dataclasses.dataclass
    class Constant(Method):  # a new method is a small class + register()
        def run(self, ctx):
            return {"test": {"accuracy": 0.6 if ctx.seed == 42 else 0.5, "n": 1}, "trainable_parameters": 0}

    register(Constant("const-test", "Constant"), replace=True)
    st = parse_settings({"tasks": ["rte"], "seeds": [13, 42], "methods": ["const-test"]}, "<test>")
    run_experiment(st, data_dir, tmp_path / "exp", progress=False)
    assert "| Constant | 0 | 55.0 ± 5.0 | 55.0 |" in (tmp_path / "exp" / "table.md").read_text()


# ---- synthpt experiment: grid, caching, resume ----------------------------------------------------
def test_grid_caching_and_resume(tmp_path, data_dir, fake_gen, monkeypatch):
    from synthpt.experiments import grid
    from synthpt.methods.base import PromptTuningMethod

    out = tmp_path / "full"
    res = grid.run_experiment(_settings(), data_dir, out, progress=False)
    assert res["cells"] == 2
    for name in ("table.md", "table.csv", "table.tex", "methods.png", "conflicts.png"):
        assert (out / name).is_file(), name
    md = (out / "table.md").read_text()
    assert "| Prompt Tuning |" in md and "| Ours |" in md and "RTE" in md
    files = {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*") if p.is_file()}

    # a rerun does no work: no cell, no stage, no file of the cache is touched
    assert res["computed"] == [("rte", 13, "pt"), ("rte", 13, "ours")]
    again = grid.run_experiment(_settings(), data_dir, out, progress=False)
    assert again["computed"] == []  # stages run only inside a computed cell
    assert {p: p.stat().st_mtime_ns for p in (out / "cache").rglob("*") if p.is_file()} == files
    assert (out / "table.md").read_text() == md

    # resume: the grid dies in its second cell, the rerun computes only that cell
    out2 = tmp_path / "killed"
    real_run = PromptTuningMethod.run

    def dying(self, ctx):
        if self.name == "ours":
            raise KeyboardInterrupt("killed")
        return real_run(self, ctx)

    monkeypatch.setattr(PromptTuningMethod, "run", dying)
    with pytest.raises(KeyboardInterrupt):
        grid.run_experiment(_settings(), data_dir, out2, progress=False)
    assert not (out2 / "table.md").exists()
    monkeypatch.setattr(PromptTuningMethod, "run", real_run)

    # --tables-only: the table so far from the cached cell, the missing one named, nothing run or rewritten
    described = (out2 / "experiment.json").read_text()
    cache = {p: p.stat().st_mtime_ns for p in (out2 / "cache").rglob("*") if p.is_file()}
    (out2 / "experiment.json").write_text(described + " ")  # a running grid's own description stays as it is
    res = grid.run_experiment(_settings(), data_dir, out2, progress=False, tables_only=True)
    assert res["computed"] == [] and res["missing"] == [("rte", 13, "ours")]
    assert [r["method"] for r in res["records"]] == ["pt"]
    assert {p: p.stat().st_mtime_ns for p in (out2 / "cache").rglob("*") if p.is_file()} == cache
    assert (out2 / "experiment.json").read_text() == described + " "
    partial = (out2 / "table.md").read_text()
    pt_line = next(line for line in md.splitlines() if line.startswith("| Prompt Tuning |"))
    assert pt_line in partial and "| Ours | – | – | – |" in partial
    res = grid.run_experiment(_settings(), data_dir, out2, progress=False)
    assert res["computed"] == [("rte", 13, "ours")]
    assert [s["status"] for s in res["records"][1]["stages"]][-1] == "ran"
    assert (out2 / "table.md").read_text() == md
    assert (out2 / "table.csv").read_text() == (out / "table.csv").read_text()

    # narrowing the grid on the command line
    with pytest.raises(SynthptError, match="not in the config's seeds"):
        grid.run_experiment(_settings(), data_dir, out2, seeds=[99], progress=False)

    # --methods may add a registered method that the config does not list: only its cell runs
    res = grid.run_experiment(_settings(), data_dir, out2, methods=["pt+gold", "pt"], progress=False)
    assert res["computed"] == [("rte", 13, "pt+gold")]
    assert [r["method"] for r in res["records"]] == ["pt", "pt+gold"]
    assert "| PT + held-out gold rows (oracle) |" in (out2 / "table.md").read_text()
    with pytest.raises(SynthptError, match="neither rows of the config .* nor registered methods"):
        grid.run_experiment(_settings(), data_dir, out2, methods=["pt", "nonesuch"], progress=False)


# ---- tables on known numbers ---------------------------------------------------------------------
RECORDS = [
    {"task": t, "seed": s, "method": m, "trainable_parameters": p, "metrics": {"test": test}}
    for (t, s, m, p, test) in [
        ("rte", 13, "pt", 102400, {"accuracy": 0.50, "n": 10}),
        ("rte", 42, "pt", 102400, {"accuracy": 0.60, "n": 10}),
        ("mrpc", 13, "pt", 102400, {"accuracy": 0.70, "f1": 0.80, "n": 10}),
        ("mrpc", 42, "pt", 102400, {"accuracy": 0.70, "f1": 0.60, "n": 10}),
        ("rte", 13, "ours", 102400, {"accuracy": 0.625, "n": 10}),
        ("rte", 42, "ours", 102400, {"accuracy": 0.675, "n": 10}),
    ]
]


def test_caption_says_how_many_seeds():
    two = build_table(RECORDS, [("pt", "Prompt Tuning")], ["rte", "mrpc"])
    assert "mean ± std over seeds 13, 42;" in caption(two)
    one = build_table([r for r in RECORDS if r["seed"] == 42], [("pt", "Prompt Tuning")], ["rte", "mrpc"])
    assert "one seed (42), so every std is 0;" in caption(one)


def test_table_writers_on_known_numbers():
    table = build_table(RECORDS, [("pt", "Prompt Tuning"), ("ours", "Ours")], ["rte", "mrpc"])
    assert to_markdown(table) == (
        "| Method | Params | RTE | MRPC | AVG |\n"
        "|:---|---:|---:|---:|---:|\n"
        "| Prompt Tuning | 102K | 55.0 ± 5.0 | 70.0 ± 0.0 | 62.5 |\n"
        "| Ours | 102K | 65.0 ± 2.5 | – | – |\n"
    )
    assert to_csv(table) == (
        "method,display,trainable_parameters,rte,rte_std,mrpc,mrpc_std,avg,mrpc_f1,mrpc_f1_std,n_seeds\n"
        "pt,Prompt Tuning,102400,55.00,5.00,70.00,0.00,62.50,70.00,10.00,2\n"
        "ours,Ours,102400,65.00,2.50,,,,,,0\n"
    )
    tex = to_latex(table, "Main")
    assert r"Prompt Tuning & 102K & 55.0$_{\pm 5.0}$ & 70.0$_{\pm 0.0}$ & 62.5 \\" in tex
    assert r"\begin{tabular}{lrccc}" in tex and r"\caption{Main}" in tex


def test_a_cell_over_fewer_seeds_says_so():
    more = RECORDS + [{"task": "mrpc", "seed": 13, "method": "ours", "trainable_parameters": 102400,
                       "metrics": {"test": {"accuracy": 0.80, "n": 10}}}]
    table = build_table(more, [("pt", "Prompt Tuning"), ("ours", "Ours")], ["rte", "mrpc"])
    md = to_markdown(table)
    assert "| Prompt Tuning | 102K | 55.0 ± 5.0 | 70.0 ± 0.0 | 62.5 |" in md  # both seeds: no mark
    assert "| Ours | 102K | 65.0 ± 2.5 | 80.0 ± 0.0 (n=1) | 72.5 |" in md
    assert "80.0$_{\\pm 0.0}$ (n=1)" in to_latex(table)
    assert "(n=K): a cell over K of the seeds only." in caption(table)
    assert "(n=K)" not in caption(build_table(RECORDS, [("pt", "Prompt Tuning")], ["rte", "mrpc"]))


# ---- YAML errors ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("prompt_tuning:\n  lrr: 0.1\n", r"prompt_tuning\.lrr: unknown key"),
    ("prompt_tuning:\n  lr: fast\n", r"prompt_tuning\.lr: expected float, got 'fast'"),
    ("prompt_tuning:\n  max_steps: 1.5\n", r"prompt_tuning\.max_steps: expected int"),
    ("modle: tiny-t5\n", r"unknown key 'modle'"),
    ("seeds: [13, x]\n", r"seeds\[1\]: expected int"),
    ("methods: [pt, bogus]\n", r"unknown method 'bogus'"),
    ("methods:\n  - {method: pt, lr: 1}\n", r"methods\[0\]: unknown key 'lr'"),
    ("k: [1]\n", r"k: expected int"),
])
def test_yaml_errors_name_the_key(tmp_path, text, message):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(SynthptError, match=message) as e:
        load_settings(p)
    assert "\n" not in str(e.value)


def test_shipped_configs_parse(fake_gen):
    root = Path(__file__).resolve().parents[1] / "configs"
    for name in ("smoke.yaml", "paper.yaml"):
        st = load_settings(root / name)
        assert st.rows and st.tasks and st.seeds
    paper = load_settings(root / "paper.yaml")
    assert paper.seeds == [13, 21, 42, 87, 100] and len(paper.tasks) == 7 and len(paper.tables) >= 3


def test_run_flags_win_over_method_knobs_but_config_does_not(tmp_path, fake_gen):
    from synthpt.experiments.config import MethodRow, run_defaults
    from synthpt.experiments.pipeline import make_context
    from synthpt.tasks import get_task

    st = run_defaults()
    assert st.sections["prompt_tuning"]["max_steps"] == 100 and st.max_eval == 500
    st.set("prompt_tuning.label_smoothing", 0.2)  # like a YAML value: the method's own knob wins
    st.set("prompt_tuning.lr", 0.05, force=True)  # like --pt-lr: wins over everything
    ctx = make_context(st, MethodRow("x", "real+syn+ls@dawgen"), get_task("rte"), 13, None, tmp_path)
    cfg = ctx.prompt_tuning_config(strategy="mixed", label_smoothing=0.1, lr=0.3)
    assert (cfg.label_smoothing, cfg.lr, cfg.seed, cfg.max_steps) == (0.1, 0.05, 13, 100)
    with pytest.raises(SynthptError, match=r"--set prompt_tuning\.lr: expected float"):
        st.set("prompt_tuning.lr", "abc", where="--set prompt_tuning.lr")


def test_set_replaces_a_grid_axis():
    """``--seeds`` narrows the config's list; ``--set seeds=[...]`` replaces it (new seeds, new tasks)."""
    from synthpt.experiments.config import load_settings, parse_value

    st = load_settings(None)
    st.seeds, st.tasks = [42], ["rte"]
    st.set("seeds", parse_value("[13, 21]"), where="--set seeds")
    st.set("tasks", parse_value("mrpc"), where="--set tasks")  # one value means a list of one
    assert (st.seeds, st.tasks) == ([13, 21], ["mrpc"])
    with pytest.raises(SynthptError, match=r"--set seeds\[1\]: expected int"):
        st.set("seeds", parse_value("[13, x]"), where="--set seeds")
    with pytest.raises(SynthptError, match=r"--set seeds: expected a non-empty list"):
        st.set("seeds", parse_value("[]"), where="--set seeds")
    assert st.seeds == [13, 21]


def test_tables_only_names_the_missing_cells():
    from synthpt.cli.experiment import _cells_text

    assert _cells_text([("rte", 13, "ours")]) == "rte seed 13 ours"
    cells = [("n_per_label=256", "mrpc", s, "pt") for s in range(10)]
    assert _cells_text(cells, most=2) == "n_per_label=256 mrpc seed 0 pt, n_per_label=256 mrpc seed 1 pt and 8 more"
