"""Prompting (zero-shot): the task's template and verbalizer on the frozen backbone, no training.

The label is the label word with the highest (summed) log-probability at the answer
position (T5: after the sentinel that replaces ``{mask}``; causal LMs: the next tokens),
exactly the scoring every other row uses.  Nothing is trained: 0 trainable parameters.
"""

from __future__ import annotations

from typing import Any

from synthpt.methods import register
from synthpt.methods.base import Context, Method
from synthpt.methods.baselines.common import frozen_backbone, splits


class ZeroShotMethod(Method):
    def run(self, ctx: Context) -> dict[str, Any]:
        from synthpt.core.classify import evaluate

        cfg = ctx.prompt_tuning_config()
        key = {"split": ctx.split.result["fingerprint"], "task": ctx.task.to_dict(), "model": ctx.model,
               "max_eval": ctx.max_eval, "max_length": cfg.max_length, "eval_batch_size": cfg.eval_batch_size}

        def build(target: Any, restart: bool) -> dict[str, Any]:
            parts = splits(ctx)
            bb = frozen_backbone(ctx.model)
            test = evaluate(ctx.task, bb, parts["test"], None, cfg.eval_batch_size, max_length=cfg.max_length)
            dev = evaluate(ctx.task, bb, parts["dev"], None, cfg.eval_batch_size, max_length=cfg.max_length)
            return {"test": test, "dev": dev}

        # cached: a sweep's points (and any grid whose other knobs change) score the backbone once
        res = ctx.cached("zero-shot", f"{ctx.task.name}-s{ctx.seed}", key, build)
        return {"task": ctx.task.name, **res.result, "trainable_parameters": 0}

    def trainable_parameters(self, ctx: Context) -> int:
        return 0


register(ZeroShotMethod("zero-shot", "Prompting", "template + verbalizer, no training"))
