"""The `lora` method: PEFT's LoRA with prompt tuning's data, verbalizer, steps and dev selection.

It trains only the LoRA matrices (counted by hand below), starts as the zero-shot model,
resumes a killed run bit for bit, saves an adapter PEFT loads back, and is a cached stage."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from synthpt.core.models import Backbone, load_backbone
from synthpt.core.scoring import label_logprobs
from synthpt.methods import get_method
from synthpt.methods.base import Context
from synthpt.methods.baselines.lora import LoraOptions, LoraTrainer
from synthpt.prompt_tuning.trainer import PromptTrainerConfig
from synthpt.tasks import get_task

TASK = get_task("sst-2")
WORDS = ["good fun", "awful", "a great film", "dull and slow", "lovely", "bad acting", "moving", "boring plot"]
TRAIN = [{"text": w, "label": TASK.labels[i % 2]} for i, w in enumerate(WORDS)]
PT = PromptTrainerConfig(max_steps=4, eval_every=2, checkpoint_every=2, batch_size=4, max_length=64,
                        eval_batch_size=16, seed=42)


def _fresh(name: str) -> Backbone:
    return load_backbone(name)  # LoRA layers go into the model: never the shared fixture


def _base_weights(bb: Backbone) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(parameter, copy) pairs: PEFT wraps the target modules but keeps their weight tensors."""
    return [(p, p.detach().clone()) for p in bb.model.parameters()]


# LoRA on a Linear(in, out) adds r·(in + out) weights.  tiny-gpt2: c_attn 64 -> 192 in 2 layers;
# tiny-t5: q and v (64 -> 64) in 2 encoder self-attentions + 2 decoder self- and 2 cross-attentions;
# tiny Gemma 3: q_proj 64 -> 4·16 and v_proj 64 -> 2·16 in 2 layers.
@pytest.mark.parametrize("name, expected", [("tiny-gpt2", 2 * 8 * (64 + 192)),
                                            ("tiny-t5", 6 * 2 * 8 * (64 + 64))])
def test_trains_only_lora_weights(name, expected):
    bb = _fresh(name)
    before = _base_weights(bb)
    n_base = len(before)
    trainer = LoraTrainer(TASK, bb, PT, LoraOptions(r=8, lr=1e-2), TRAIN, TRAIN[:4], progress=False)
    assert trainer.trainable_parameters == expected
    lora_b0 = {k: v for k, v in trainer.lora_state().items() if "lora_B" in k}
    assert lora_b0 and all(not v.any() for v in lora_b0.values())  # B = 0: the zero-shot model at step 0
    res = trainer.fit()
    assert res.global_step == 4 and len(res.history) == 4 and res.best_step in (2, 4)
    assert all(torch.equal(p, copy) and not p.requires_grad for p, copy in before)
    assert len(list(bb.model.parameters())) > n_base  # the LoRA matrices were added
    assert any(v.any() for k, v in trainer.lora_state().items() if "lora_B" in k)


def test_starts_as_the_zero_shot_model_on_gemma(tiny_gemma):
    bb = Backbone(copy.deepcopy(tiny_gemma.model), tiny_gemma.tokenizer, "tiny-gemma3 copy", False)
    trainer = LoraTrainer(TASK, bb, PT, LoraOptions(r=8), TRAIN, [], progress=False)
    assert trainer.trainable_parameters == 2 * 8 * ((64 + 64) + (64 + 32))  # q_proj + v_proj, 2 layers
    ctx = trainer.encoder.encode_many(TRAIN)
    with torch.no_grad():
        ref = label_logprobs(type(trainer.encoder)(TASK, tiny_gemma, PT.max_length), ctx)
        assert torch.allclose(label_logprobs(trainer.encoder, ctx), ref, atol=1e-5)


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    opts = LoraOptions(r=4, lr=1e-2)
    whole = LoraTrainer(TASK, _fresh("tiny-gpt2"), PT, opts, TRAIN, TRAIN[:4], out=tmp_path / "a", progress=False)
    whole.fit()
    killed = LoraTrainer(TASK, _fresh("tiny-gpt2"), PT, opts, TRAIN, TRAIN[:4], out=tmp_path / "b", progress=False)
    real_step = killed.train_step

    def dies_at_3(step):
        if step == 2:
            raise KeyboardInterrupt
        return real_step(step)

    monkeypatch.setattr(killed, "train_step", dies_at_3)
    with pytest.raises(KeyboardInterrupt):
        killed.fit()
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    again = LoraTrainer(TASK, _fresh("tiny-gpt2"), PT, opts, TRAIN, TRAIN[:4], out=tmp_path / "b", progress=False)
    res = again.fit()
    assert res.resumed_from == 2 and res.steps_run == 2
    a, b = whole.lora_state(), again.lora_state()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((tmp_path / "b" / "log.jsonl").read_text().splitlines()) == 4


def test_method_runs_is_cached_and_saves_a_peft_adapter(data_dir: Path, tmp_path: Path):
    from peft import PeftModel

    from synthpt.core.classify import evaluate
    from synthpt.methods.baselines.common import splits

    def ctx() -> Context:
        return Context(task=get_task("rte"), seed=42, k=16, data_dir=data_dir, model="tiny-t5",
                       generator_model="tiny-gpt2", cache_dir=tmp_path, max_eval=16, progress=False,
                       pt_knobs={"max_steps": 2, "eval_every": 2, "checkpoint_every": 2, "batch_size": 4,
                                      "max_length": 96, "eval_batch_size": 64},
                       options={"lora_r": 4, "lora_lr": 1e-2})

    method = get_method("lora")
    assert method.display == "LoRA"
    first = ctx()
    m = method.run(first)
    assert m["test"]["n"] == 16 and m["trainable_parameters"] == 6 * 2 * 4 * (64 + 64) and m["steps"] == 2
    stage = first.stages[-1]
    assert stage.name == "lora" and stage.ran and (stage.target / "adapter_model.safetensors").is_file()
    second = ctx()
    assert method.run(second) == m and not second.stages[-1].ran  # the cache, not a second run
    # PEFT loads the adapter back and predicts what the method reported
    base = load_backbone("tiny-t5")
    peft = PeftModel.from_pretrained(base.model, str(stage.target))
    test = splits(first)["test"]
    again = evaluate(get_task("rte"), Backbone(peft.base_model.model, base.tokenizer, "x", True), test, None, 64,
                     max_length=96)
    assert again["accuracy"] == m["test"]["accuracy"]


def test_follows_prompt_tunings_warmup_and_linear_decay():
    """The learning rate of each step, by hand: warm-up 2 of 6 steps, then linear decay to 0."""
    import dataclasses

    pt = dataclasses.replace(PT, warmup_steps=2, max_steps=6)
    trainer = LoraTrainer(TASK, _fresh("tiny-gpt2"), pt, LoraOptions(r=2, lr=1e-2), TRAIN, [], progress=False)
    seen = [trainer.train_step(s)["lr"] for s in range(6)]
    assert seen == pytest.approx([1e-2 * f for f in (1 / 2, 2 / 2, 4 / 4, 3 / 4, 2 / 4, 1 / 4)])
