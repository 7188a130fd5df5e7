"""Figure 1 of ``synthpt bench``: one synthpt prompt-tuning step against one PEFT step.

Both sides train the same number of prompt vectors on the same frozen backbone and rows, and read
the same positions: on the T5-small shape PEFT's labels are ``[<extra_id_0>, label word]``, so both
decoders run the same two positions; time (``pt_step_time_vs_peft``) and the memory of the step
(``pt_step_memory_vs_peft``) come from one run.
"""

from __future__ import annotations

from typing import Any

import torch

from synthpt.bench.common import (
    BENCH_TASK,
    REAL_MODEL,
    bench_examples,
    interleaved,
    peak_step_memory,
    prompt_trainer,
    real_backbone,
    real_model_missing,
    result,
    skipped,
    t5_small_backbone,
    trainer_forward,
)
from synthpt.core.models import Backbone
from synthpt.core.scoring import pad_right


# ---- 1. prompt-tuning step vs PEFT ---------------------------------------------------------
class _PeftSide:
    """PEFT's prompt tuning on the same frozen backbone, batch and prompt length."""

    def __init__(self, bb: Backbone, trainer: Any) -> None:
        from peft import PromptTuningConfig as PeftPTConfig
        from peft import TaskType, get_peft_model

        n = trainer.cfg.prompt_length
        if bb.is_seq2seq:
            cfg = PeftPTConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=n, num_transformer_submodules=1,
                               token_dim=bb.hidden_size)
        else:
            cfg = PeftPTConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=n, token_dim=bb.hidden_size)
        self.model = get_peft_model(bb.model, cfg)
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=trainer.cfg.lr, weight_decay=trainer.cfg.weight_decay)
        enc = trainer.encoder
        pad = bb.tokenizer.pad_token_id
        # the same rows synthpt's trainer sees, as ids.  T5: the labels are [sentinel, label word], so
        # PEFT's decoder reads exactly the positions synthpt's verbalizer scoring reads.  Causal LM:
        # input + label word, the loss on the label word only (labels -100 elsewhere), as PEFT's
        # causal prompt tuning is used
        self.batches = []
        for step in range(4):
            rows = trainer.plan.rows(step)
            ids = [trainer._context_ids(r.source, r.index) for r in rows]
            words = [enc.label_ids[trainer.labels[r.source][r.index]] for r in rows]
            if bb.is_seq2seq:
                inp, att = pad_right(ids, pad)
                lab = torch.tensor([enc.sentinel + w for w in words])
            else:
                inp, att = pad_right([x + w for x, w in zip(ids, words)], pad)
                lab, _ = pad_right([[-100] * len(x) + w for x, w in zip(ids, words)], -100)
            self.batches.append((inp.to(bb.device), att.to(bb.device), lab.to(bb.device)))
        self.i = 0

    def forward(self) -> torch.Tensor:
        inp, att, lab = self.batches[self.i % len(self.batches)]
        return self.model(input_ids=inp, attention_mask=att, labels=lab).loss

    def step(self) -> None:
        loss = self.forward()
        self.i += 1
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)


def _versus_peft(bb: Backbone, tr: Any, reps: int, warmup: int, **details: Any) -> list[dict[str, Any]]:
    """Time and memory of ``tr.train_step`` against a PEFT step on the same backbone and rows."""
    lens = {len(tr._context_ids("real", r.index)) for s in range(4) for r in tr.plan.rows(s)}
    peft_side = _PeftSide(bb, tr)
    counter = iter(range(10 ** 9))

    def ours() -> None:
        tr.train_step(next(counter))

    frozen = list(bb.model.parameters())
    # memory first (on CPU: the forward of each step; on CUDA a warm step, which also warms both sides up)
    m_ours, method = peak_step_memory(ours, frozen, lambda: trainer_forward(tr, 0))
    m_peft, _ = peak_step_memory(peft_side.step, frozen, peft_side.forward)
    # a warm-up step each (as on CUDA, see ``peak_step_memory``): a cold step also allocates what later
    # steps reuse (AdamW's moments, the backward's buffers), so it is not timed
    t = interleaved({"synthpt": ours, "peft": peft_side.step}, reps, warmup=warmup)
    n_trainable_peft = sum(p.numel() for p in peft_side.model.parameters() if p.requires_grad)
    common = dict(**details, batch_size=tr.cfg.batch_size, input_tokens=[min(lens), max(lens)],
                  prompt_tokens=tr.cfg.prompt_length, frozen_requires_grad=any(p.requires_grad for p in frozen),
                  trainable_params={"synthpt": tr.prompt.numel(), "peft": n_trainable_peft})
    r_t = t["synthpt"] / t["peft"]
    r_m = m_ours / m_peft
    return [
        result("pt_step_time_vs_peft", r_t, 1.0, r_t <= 1.0, synthpt_step_s=round(t["synthpt"], 4),
               peft_step_s=round(t["peft"], 4), reps=reps, warmup=warmup, **common),
        result("pt_step_memory_vs_peft", r_m, 1.0, r_m <= 1.0, synthpt_bytes=m_ours, peft_bytes=m_peft,
               memory_method=method, **common),
    ]


def pt_step_vs_peft(reps: int = 5, dtype: torch.dtype | None = None, warmup: int = 1) -> list[dict[str, Any]]:
    """The T5-small shape, byte-level tokenizer, one-token label words (both decoders read 2 positions)."""
    bb = t5_small_backbone(dtype)
    tr = prompt_trainer(bb, BENCH_TASK, bench_examples(64))
    return _versus_peft(bb, tr, reps, warmup, model="t5-small-shaped random (d_model 512, 6+6 layers, 8 heads, "
                        "d_ff 2048, vocab 32128)", decoder_tokens=2, dtype=str(dtype or torch.float32))


def pt_step_vs_peft_real(reps: int = 3, warmup: int = 1) -> list[dict[str, Any]]:
    """SmolLM2-135M on SST-2 with configs/real-cpu.yaml's prompt-tuning shapes (batch 8, 20 prompt
    tokens, max length 128).  synthpt runs the prompt once as a KV prefix and the LM head at the label
    word only; PEFT runs the prompt in front of every row and, with ``labels=``, the head everywhere."""
    from synthpt.tasks import get_task

    why = real_model_missing()
    if why:
        return [skipped(name, REAL_MODEL, why, 1.0) for name in ("pt_step_time_vs_peft", "pt_step_memory_vs_peft")]
    bb = real_backbone()
    tr = prompt_trainer(bb, get_task("sst2"), bench_examples(64), prompt_length=20, max_length=128)
    return _versus_peft(bb, tr, reps, warmup, model=REAL_MODEL, task="sst2 (one-token label words)")
