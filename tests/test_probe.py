"""The label-prompt probe: its statistics by hand, its margins equal to Step 2's consistency score,
and its place at the end of ``synthpt generator tune`` and in ``synthpt generator probe``.  Offline."""

from __future__ import annotations

import json
import math

import pytest
import torch

from synthpt.core.io import write_jsonl
from synthpt.core.models import load_backbone
from synthpt.generator import GenerationConfig, GeneratorConfig, run_generator_tuning
from synthpt.generator.generation import Sampler
from synthpt.generator.probe import describe, label_prompt_probe, probe_stats
from synthpt.generator.saving import load_prompts
from synthpt.tasks import get_task

WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "far", "away", "home", "fast"]


def _rows(n: int = 5) -> list[dict]:
    return [{"text1": " ".join(WORDS[(i + j) % 12] for j in range(4)),
             "text2": " ".join(WORDS[(3 * i + j) % 12] for j in range(3)), "label": str(i % 2)} for i in range(2 * n)]


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("probe")
    d = tmp / "split"
    for name in ("train", "dev", "test"):
        write_jsonl(d / f"{name}.jsonl", _rows())
    out = tmp / "gen"
    cfg = GeneratorConfig(mode="dawgen", prompt_length=4, batch_size=4, max_length=64, max_steps=2)
    summary = run_generator_tuning(get_task("mrpc"), d, "tiny-gpt2", out, cfg, progress=False)
    return d, out, summary


def test_probe_stats_by_hand():
    mean_ll = torch.tensor([[-1.0, -2.0], [-3.0, -1.0], [-2.0, -2.5]])
    y = torch.tensor([0, 0, 1])
    s = probe_stats(mean_ll, y, ["a", "b"])
    # predictions 0, 1, 0: only row 0 right; margins +1, -2, -0.5
    assert s["n"] == 3 and s["accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["margin"] == pytest.approx(-0.5)
    assert s["recall"] == {"a": 0.5, "b": 0.0}
    # column means (-2, -11/6): centred rows (1, -1/6), (-1, 5/6), (0, -2/3) -> predictions 0, 1, 0
    assert s["calibrated_accuracy"] == pytest.approx(1 / 3, abs=1e-4)
    # prompt b explains every row better (raw: all b), but a-rows less so than b-rows: centred, all right
    biased = probe_stats(torch.tensor([[-1.0, -0.5], [-2.0, -0.5], [-1.2, -0.6], [-2.5, -1.0]]),
                         torch.tensor([0, 1, 0, 1]), ["a", "b"])
    assert biased["accuracy"] == 0.5 and biased["recall"] == {"a": 0.0, "b": 1.0}
    assert biased["calibrated_accuracy"] == 1.0
    three = probe_stats(torch.tensor([[0.0, -1.0, 2.0]]), torch.tensor([2]), ["x", "y", "z"])
    assert three["accuracy"] == 1.0 and three["margin"] == pytest.approx(2.0) and three["recall"]["x"] is None
    assert probe_stats(torch.empty(0, 2), torch.empty(0, dtype=torch.long), ["a", "b"])["accuracy"] is None


def test_probe_margin_is_the_consistency_filters_score(tuned):
    """The probe asks what Step 2's filter asks of a generated row, on rows whose label is known."""
    d, gen, _ = tuned
    task = get_task("mrpc")
    bb = load_backbone("tiny-gpt2")
    prompts = load_prompts(gen, task)
    sampler = Sampler(bb, task, prompts, GenerationConfig(max_new_tokens=12), 64, use_engine=False)
    rows = _rows()
    scores = sampler.consistency(rows)  # own label minus the best other, per row
    got = label_prompt_probe(bb, task, sampler.enc, prompts, rows, chunk=3)  # chunks must not matter
    assert got["n"] == len(rows)
    assert got["margin"] == pytest.approx(sum(scores) / len(scores), abs=1e-4)
    assert got["accuracy"] == pytest.approx(sum(s > 0 for s in scores) / len(scores), abs=1e-4)


def test_tuning_probes_its_dev_rows_and_the_cli_probes_again(tuned, capsys):
    from synthpt.cli import main

    d, gen, summary = tuned
    p = summary["dev_probe"]
    assert p["n"] == 10 and 0.0 <= p["accuracy"] <= 1.0 and math.isfinite(p["margin"])
    assert json.loads((gen / "generator.json").read_text())["summary"]["dev_probe"] == p
    assert main(["generator", "probe", "--generator", str(gen), "--json"]) == 0
    line, js = capsys.readouterr().out.strip().splitlines()[-2:]
    assert line == describe({"split": "dev", **p}) and f"/{p['n']} dev rows" in line
    assert json.loads(js)["accuracy"] == p["accuracy"]
    assert main(["generator", "probe", "--generator", str(gen), "--split", "bogus"]) != 0
    assert main(["generator", "probe", "--generator", str(d)]) != 0  # not a generator: a clear error
