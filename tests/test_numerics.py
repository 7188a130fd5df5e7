"""A NaN/inf loss stops a run naming the step and the loss term, or skips the batch with skip_nonfinite."""

from __future__ import annotations

import json
import math

import pytest
import torch

from synthpt.core.errors import SynthptError


@pytest.fixture(scope="module")
def rte(rte_split):
    from synthpt.data import load_split
    from synthpt.tasks import get_task

    return get_task("rte"), load_split(rte_split, "rte")


def _nan_on_call(monkeypatch, module, name: str, calls: set[int], field: str | None = None):
    """Wrap ``module.name`` so its result is NaN on the given (1-based) calls."""
    real = getattr(module, name)
    seen = {"n": 0}

    def wrapped(*args, **kwargs):
        out = real(*args, **kwargs)
        seen["n"] += 1
        if seen["n"] in calls:
            if field is None:
                return out * float("nan")
            setattr(out, field, getattr(out, field) * float("nan"))
        return out

    monkeypatch.setattr(module, name, wrapped)


def _pt(rte, tiny_t5, tmp_path, **kw):
    from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTrainerConfig

    task, splits = rte
    cfg = PromptTrainerConfig(max_steps=5, prompt_length=4, max_length=64, batch_size=4, eval_every=100,
                             checkpoint_every=1, **kw)
    return PromptTrainer(task, tiny_t5, cfg, splits["train"], [], out_dir=tmp_path, progress=False)


def test_prompt_tuning_stops_on_nan_naming_step_and_term(rte, tiny_t5, tmp_path, monkeypatch):
    from synthpt.prompt_tuning import trainer as mod

    _nan_on_call(monkeypatch, mod, "label_logprobs", {3})
    tr = _pt(rte, tiny_t5, tmp_path)
    with pytest.raises(SynthptError, match=r"non-finite loss_real at step 3 \(use --skip-nonfinite"):
        tr.fit()
    st = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert st["step"] == 2 and torch.isfinite(st["prompt"]).all()  # the last good state, to resume from


def test_prompt_tuning_skips_nonfinite_batches(rte, tiny_t5, tmp_path, monkeypatch):
    from synthpt.prompt_tuning import trainer as mod

    _nan_on_call(monkeypatch, mod, "label_logprobs", {3})
    tr = _pt(rte, tiny_t5, tmp_path, skip_nonfinite=True)
    res = tr.fit()
    assert [r.get("skipped") for r in res.history] == [None, None, "non-finite loss_real", None, None]
    assert torch.isfinite(tr.prompt).all()
    logged = [json.loads(ln) for ln in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4, 5] and logged[2]["skipped"]


def test_inf_prompt_init_names_the_real_loss(rte, tiny_t5, tmp_path):
    from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTrainerConfig

    task, splits = rte
    cfg = PromptTrainerConfig(max_steps=2, prompt_length=4, max_length=64, batch_size=4, eval_every=100)
    tr = PromptTrainer(task, tiny_t5, cfg, splits["train"], [], init_prompt=torch.full((4, 64), float("inf")),
                       progress=False)
    with pytest.raises(SynthptError, match=r"non-finite loss_real at step 1"):
        tr.fit()


@pytest.mark.parametrize("mode", ["plain", "dawgen"])
def test_generator_tuning_stops_or_skips_on_nan(rte, tiny_gpt2, tmp_path, monkeypatch, mode):
    from synthpt.generator import tuning as mod
    from synthpt.generator.tuning import GeneratorConfig, GeneratorTrainer

    task, splits = rte
    per_step = 1 if mode == "plain" else 2  # dawgen: own forward + lookahead forward
    _nan_on_call(monkeypatch, mod, "score_targets", {per_step + 1}, field="token_logp")  # step 2's own forward
    cfg = GeneratorConfig(mode=mode, max_steps=3, prompt_length=4, max_length=32, batch_size=2, checkpoint_every=1)
    tr = GeneratorTrainer(task, tiny_gpt2, cfg, splits["train"], out_dir=tmp_path / "stop", progress=False)
    with pytest.raises(SynthptError, match=r"non-finite L_\w+ at step 2 \(use --skip-nonfinite"):
        tr.fit()

    _nan_on_call(monkeypatch, mod, "score_targets", {per_step + 1}, field="token_logp")
    cfg.skip_nonfinite = True
    tr = GeneratorTrainer(task, tiny_gpt2, cfg, splits["train"], out_dir=tmp_path / "skip", progress=False)
    hist = tr.fit()
    assert [bool(r.get("skipped")) for r in hist] == [False, True, False]
    assert torch.isfinite(tr.Q).all() and all(torch.isfinite(p).all() for p in tr.W.parameters())


def test_skipped_dawgen_batch_leaves_weight_net_untouched(rte, tiny_gpt2, monkeypatch):
    """W steps before Q in a bi-level step; when only the Q loss turns out non-finite and the batch is
    skipped, W and its Adam moments must be exactly as before the batch (nothing of it is learnt)."""
    from synthpt.generator.tuning import GeneratorConfig, GeneratorTrainer

    task, splits = rte
    cfg = GeneratorConfig(mode="dawgen", max_steps=2, prompt_length=4, max_length=32, batch_size=2,
                          skip_nonfinite=True)
    tr = GeneratorTrainer(task, tiny_gpt2, cfg, splits["train"], progress=False)
    tr.step(0)
    w0 = {k: v.clone() for k, v in tr.W.state_dict().items()}
    m0 = [{k: v.clone() for k, v in st.items() if torch.is_tensor(v)} for st in tr.opt_w.state_dict()["state"].values()]
    q0 = tr.Q.detach().clone()
    real, calls = tr.dawgen_loss, []

    def nan_in_q_step(*args):
        loss, l_wgen, l_dist = real(*args)
        calls.append(1)
        return (loss * float("nan"), l_wgen, l_dist) if len(calls) == 2 else (loss, l_wgen, l_dist)  # 2nd: Q step

    monkeypatch.setattr(tr, "dawgen_loss", nan_in_q_step)
    rec = tr.step(1)
    assert rec["skipped"] == "non-finite L_DawGen" and len(calls) == 2 and math.isfinite(rec["L_disc"])
    assert all(torch.equal(w0[k], v) for k, v in tr.W.state_dict().items())
    m1 = [{k: v for k, v in st.items() if torch.is_tensor(v)} for st in tr.opt_w.state_dict()["state"].values()]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(m0, m1) for k in a)
    assert torch.equal(q0, tr.Q.detach())
