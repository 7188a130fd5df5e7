"""Helpers the baselines share: the split and test subset, backbones, options, cached source stages.

Every baseline evaluates on exactly what prompt tuning evaluates on: the cell's few-shot
split (``ctx.split_dir``) and the fixed test subset ``eval_subset(test, ctx.max_eval)``,
with the task's template and verbalizer scored by :func:`synthpt.core.classify.evaluate`.

Source-side work (SPoT's source prompt, PPT's pre-trained prompt, OPTIMA's adapted prompt)
is a *source stage*: content-addressed under ``<cache_dir>/source/<slug>-<hash>/`` (its key
holds the backbone, the prompt length, the source data and the training knobs, but never
the target's seed), so every target task and seed with the same key reuses it.  Its cost
(seconds when it ran) is reported in the cell's metrics and in the cell's stage list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthpt.core.errors import fail
from synthpt.methods.base import Context, PromptTuningMethod

_FROZEN: dict[str, Any] = {}  # model name -> frozen Backbone, shared by the scoring-only methods


def option(ctx: Context, key: str, default: Any) -> Any:
    """``ctx.options[key]`` or the default (``None`` in a config means: the default)."""
    v = ctx.options.get(key)
    return default if v is None else v


def frozen_backbone(name: str) -> Any:
    """The frozen backbone (loaded once per process; never trained by any baseline)."""
    if name not in _FROZEN:
        from synthpt.core import distributed as dist
        from synthpt.core.models import load_backbone

        _FROZEN.clear()  # one backbone in memory at a time
        _FROZEN[name] = load_backbone(name, device=dist.device())
    return _FROZEN[name]


def splits(ctx: Context) -> dict[str, list[dict[str, Any]]]:
    """train / dev / test of the cell, with test cut to the shared ``max_eval`` subset."""
    from synthpt.data import load_split
    from synthpt.prompt_tuning.recipe import eval_subset

    parts = load_split(ctx.split_dir, ctx.task)
    parts["test"] = eval_subset(parts["test"], ctx.max_eval)
    return parts


def count_trainable(module: torch.nn.Module) -> int:
    """Trainable weights, each shared tensor (tied embeddings) counted once."""
    seen: set[int] = set()
    n = 0
    for p in module.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n






# ---------------------------------------------------------------------------- source tasks

# Source task per target (SPoT / OPTIMA); ``options.source_task`` overrides.  The issue's
# pairs: MNLI -> SNLI, RTE, SICK; QQP -> MRPC; (QNLI -> RTE is the alternative for RTE).  Targets
# without a stated source take the closest large pool: MNLI for QNLI and QQP, SNLI for MNLI.
DEFAULT_SOURCE: dict[str, str] = {"rte": "mnli", "snli": "mnli", "sick": "mnli", "mrpc": "qqp",
                                  "qnli": "mnli", "mnli": "snli", "qqp": "mnli"}


def source_task_for(ctx: Context) -> Any:
    from synthpt.tasks import get_task

    name = ctx.options.get("source_task") or DEFAULT_SOURCE.get(ctx.task.name)
    if not name:
        raise fail(f"task {ctx.task.name!r} has no default source task; set options.source_task "
                   f"(one of {', '.join(sorted(set(DEFAULT_SOURCE.values())))})")
    src = get_task(name)
    if src.name == ctx.task.name:
        raise fail(f"options.source_task {name!r} is the target task itself")
    return src


def source_rows(task: Any, ctx: Context, limit: int, seed: int) -> list[dict[str, Any]]:
    """At most ``limit`` labelled rows of ``task``'s full training pool (seeded, balanced)."""
    from synthpt.data import load_official
    from synthpt.prompt_tuning.recipe import balanced_subset

    if ctx.data_dir is None:
        raise fail(f"the source task {task.name} needs --data-dir (its training pool lives there)")
    rows = load_official(task, "train", ctx.data_dir)
    return balanced_subset(rows, task, limit, seed)


def data_dir_key(ctx: Context) -> str | None:
    return str(Path(ctx.data_dir).resolve()) if ctx.data_dir else None


def source_stage(ctx: Context, kind: str, slug: str, key_cfg: dict[str, Any], build: Any) -> Any:
    """Run (or read back) a cached source stage; ``build(target: Path, restart: bool) -> dict``.

    The target folder holds a PEFT prompt adapter (``adapter_config.json`` +
    ``adapter_model.safetensors``) that target prompt tuning starts from."""
    from synthpt.core.cache import run_stage
    from synthpt.core.runinfo import config_hash

    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", slug)
    base = Path(ctx.cache_dir) / "source" / f"{slug}-{config_hash({'kind': kind, **key_cfg})}"
    res = run_stage(kind, base, base / "stage.json", {"kind": kind, **key_cfg}, lambda restart: build(base, restart))
    if not (base / "adapter_model.safetensors").is_file():
        raise fail(f"{base}: source stage {kind} finished without a prompt adapter")
    ctx.stages.append(res)
    return res


def source_prompt(ctx: Context, kind: str, slug: str, steps: int, seed: int, row_limit: int | None,
                  build: Any, **key_extra: Any) -> Any:
    """A prompt first trained on the cell's source task (SPoT, OPTIMA): a cached source stage.

    Cached by (backbone, source task, data, prompt-tuning config with ``steps`` and ``seed``,
    ``key_extra``); ``build(src, rows, cfg, target) -> dict`` trains on ``rows`` (at most ``row_limit``
    balanced rows of the source task's training pool) and writes the adapter into ``target``.
    ``slug`` names the folder: ``{src}``, ``{target}`` and ``{model}`` are filled in."""
    src = source_task_for(ctx)
    cfg = source_pt_config(ctx, steps, seed)
    key = {"model": ctx.model, "source_task": src.to_dict(), "data_dir": data_dir_key(ctx), "config": pt_key(cfg),
           **key_extra}

    def run(target: Path, restart: bool) -> dict[str, Any]:
        return build(src, source_rows(src, ctx, row_limit, seed), cfg, target)

    return source_stage(ctx, kind, slug.format(src=src.name, target=ctx.task.name, model=ctx.model), key, run)


def source_cost(res: Any) -> dict[str, Any]:
    return {"stage": res.name, "dir": str(res.target), "seconds": res.seconds, "cached": not res.ran,
            **{k: v for k, v in res.result.items() if k in ("steps", "n_examples", "source_task", "final_loss")}}


def source_pt_config(ctx: Context, steps: int, seed: int) -> Any:
    """The cell's prompt-tuning config (same prompt length, lr, batch size, max length) with
    the source stage's step budget and seed; no dev selection (the last prompt is kept).  A
    checkpoint every ``source_checkpoint_every`` steps (default: every 100, at most ``steps``)."""
    import dataclasses

    cfg = ctx.prompt_tuning_config(strategy="real", gradient_surgery=False)
    every = int(option(ctx, "source_checkpoint_every", max(1, min(steps, 100))))
    return dataclasses.replace(cfg, max_steps=steps, eval_every=steps, checkpoint_every=every, seed=seed,
                               warmup_steps=0)


def pt_key(cfg: Any) -> dict[str, Any]:
    from synthpt.prompt_tuning.steps import config_key

    return config_key(cfg)


def save_source_prompt(ctx: Context, target: Path, prompt: torch.Tensor, bb: Any, task: Any, n_rows: int,
                       extra: dict[str, Any], note: str, train: dict[str, Any] | None = None) -> None:
    """Finish a source stage (main process writes, all wait): the PEFT adapter of ``prompt`` with
    ``extra`` in its config, the card (``n_rows`` train rows of ``task``, no dev), no checkpoint."""
    from synthpt.core import distributed as dist
    from synthpt.core.saving import save_peft_prompt
    from synthpt.prompt_tuning.card import write_card

    if dist.is_main():
        prompt = prompt.detach().cpu()  # (P, d)
        save_peft_prompt(target, prompt, bb, extra=extra)
        write_card(target, task, ctx.model, bb.name_or_path, tuple(prompt.shape), train=train,
                   counts={"train": n_rows, "dev": 0}, note=note)
        (target / "checkpoint.pt").unlink(missing_ok=True)
    dist.barrier()


def train_source_prompt(ctx: Context, task: Any, rows: list[dict[str, Any]], cfg: Any, target: Path) -> dict[str, Any]:
    """Plain prompt tuning of a fresh prompt on ``rows`` of ``task`` (template + verbalizer of
    ``task``), resumable from ``target/checkpoint.pt``; writes the adapter into ``target``."""
    import dataclasses

    from synthpt.prompt_tuning.trainer import PromptTrainer
    from synthpt.tasks import task_record

    bb = frozen_backbone(ctx.model)
    target.mkdir(parents=True, exist_ok=True)
    trainer = PromptTrainer(task, bb, cfg, rows, [], out_dir=target, progress=ctx.progress)
    result = trainer.fit()
    save_source_prompt(ctx, target, trainer.best_prompt, bb, task, len(rows),
                       {"source_task": task.name, "task_spec": task_record(task), "model": ctx.model},
                       note=f"A transfer source: trained on {len(rows)} rows of `{task.name}` for {cfg.max_steps} "
                       f"steps; few-shot prompt tuning on `{ctx.task.name}` starts from it.",
                       train=dataclasses.asdict(cfg))
    losses = [h["loss"] for h in result.history if "loss" in h]
    return {"steps": cfg.max_steps, "n_examples": len(rows), "source_task": task.name,
            "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else None}


def tune_from(ctx: Context, init_dir: Path, tag: str) -> dict[str, Any]:
    """Target prompt tuning on the few-shot split, starting from the prompt in ``init_dir``."""
    cfg = ctx.prompt_tuning_config(strategy="real", gradient_surgery=False)
    return dict(ctx.run_prompt_tuning(cfg, None, init_prompt=init_dir, tag=tag))


@dataclass
class TransferMethod(PromptTuningMethod):
    """A prompt trained first on another objective (a source task, a self-supervised corpus,
    an adaptation phase) initialises few-shot prompt tuning on the target: SPoT, PPT, OPTIMA.

    ``source`` builds (or reads from the cache) that first stage and returns its StageResult."""

    source: Callable[[Context], Any] | None = None

    def run(self, ctx: Context) -> dict[str, Any]:
        if self.source is None:
            raise fail(f"{self.name}: no source stage configured")
        res = self.source(ctx)
        metrics = tune_from(ctx, res.target, self.name)
        metrics["source"] = source_cost(res)
        if isinstance(res.result, dict) and "last" in res.result:
            metrics["source"]["last"] = res.result["last"]
        return metrics
