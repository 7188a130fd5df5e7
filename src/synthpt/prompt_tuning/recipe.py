"""Stage 3 as a recipe: data in, PEFT adapter + metrics out, resumable.

``run_prompt_tuning`` is what ``synthpt prompt-tune`` and the pipeline call.  Its output
directory holds the PEFT adapter of the best prompt on the few-shot dev set,
``metrics.json`` (dev and test metrics, conflict rate), ``log.jsonl`` (one line per step),
``config.json`` (the resolved config and library versions) and, while the run is going,
``checkpoint.pt``.  A rerun of a finished run with the same config does nothing; a rerun
of an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from synthpt.core import distributed as dist
from synthpt.core.classify import evaluate
from synthpt.core.errors import fail
from synthpt.core.io import write_json
from synthpt.core.models import Backbone, load_backbone, parse_dtype
from synthpt.core.runinfo import config_hash, versions
from synthpt.core.saving import (
    already_done,
    check_prompt_fits,
    load_peft_prompt,
    save_peft_prompt,
)
from synthpt.core.training import checkpoint_path
from synthpt.data import load_file, load_split
from synthpt.prompt_tuning.card import write_card
from synthpt.prompt_tuning.steps import config_key
from synthpt.prompt_tuning.trainer import PromptTrainer, PromptTrainerConfig
from synthpt.prompt_tuning.zero_shot_filter import zero_shot_filter
from synthpt.tasks import Task, task_record


def balanced_subset(examples: list[dict], task: Task, limit: int | None, seed: int) -> list[dict]:
    """At most ``limit`` examples, as equal per label as the data allows (seeded)."""
    if limit is None or len(examples) <= limit:
        return examples
    rng = random.Random(seed)
    by_label: dict[str, list[dict]] = {lab: [] for lab in task.labels}
    for ex in examples:
        by_label[ex["label"]].append(ex)
    for rows in by_label.values():
        rng.shuffle(rows)
    out: list[dict] = []
    while len(out) < limit:
        progressed = False
        for lab in task.labels:
            if by_label[lab] and len(out) < limit:
                out.append(by_label[lab].pop())
                progressed = True
        if not progressed:
            break
    return out


def eval_subset(examples: list[dict], limit: int | None, seed: int = 0) -> list[dict]:
    """A fixed random subset of a test split (the same rows for every method)."""
    if limit is None or len(examples) <= limit:
        return examples
    idx = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in idx]


def prepare_out_dir(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise fail(f"{out}: output path exists and is a file, not a directory")
    out.mkdir(parents=True, exist_ok=True)


def run_prompt_tuning(
    task: Task,
    data: str | Path,
    model: str | Backbone,
    out: str | Path,
    cfg: PromptTrainerConfig,
    synthetic: str | Path | list[dict] | None = None,
    init_prompt: str | Path | torch.Tensor | None = None,
    max_eval: int | None = None,
    restart: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
    dtype: str | None = None,
) -> dict[str, Any]:
    """Train, select on dev, evaluate on test, save.  Returns the metrics dict.

    ``dtype`` (``bfloat16`` / ``float16`` on GPUs) sets the frozen backbone's precision; the
    soft prompt and its optimizer stay in float32 and the loss is computed in float32."""
    cfg.validate()
    out = Path(out)
    prepare_out_dir(out)
    splits = load_split(data, task)
    syn_rows: list[dict] = []
    syn_name = None
    if isinstance(synthetic, list):
        syn_rows, syn_name = synthetic, "<in memory>"
    elif synthetic:
        syn_rows, syn_name = load_file(synthetic, task), str(synthetic)
    syn_rows = balanced_subset(syn_rows, task, cfg.max_synthetic, cfg.seed)
    model_name = model if isinstance(model, str) else model.name_or_path
    run_cfg = {"task": task.to_dict(), "data": str(data), "model": model_name, "synthetic": syn_name,
               "n_synthetic": len(syn_rows), "init_prompt": None if init_prompt is None else str(
                   init_prompt if not isinstance(init_prompt, torch.Tensor) else "tensor"),
               "max_eval": max_eval, "train": config_key(cfg)}
    if dtype:  # only when set, so earlier runs keep their config hash
        run_cfg["dtype"] = dtype
    key = config_hash(run_cfg)
    metrics_path, ckpt = out / "metrics.json", checkpoint_path(out)
    done = already_done(metrics_path, key, out, "a finished run", restart=restart, resumable=ckpt.exists())
    if done is not None:
        return done
    bb = model if isinstance(model, Backbone) else load_backbone(model, trust_remote_code=trust_remote_code, dtype=parse_dtype(dtype),
                                                                   device=dist.device())
    prompt0 = None
    if isinstance(init_prompt, torch.Tensor):
        prompt0 = init_prompt
    elif init_prompt:
        prompt0, _ = load_peft_prompt(init_prompt)
        check_prompt_fits(prompt0, bb, str(init_prompt))
    t0 = time.perf_counter()
    filtered = None
    if cfg.zero_shot_filter is not None and syn_rows:
        syn_rows, filtered = zero_shot_filter(task, bb, splits["dev"], syn_rows, cfg.zero_shot_filter,
                                              cfg.max_length, cfg.eval_batch_size, progress)
        if not syn_rows:
            raise fail(f"--zero-shot-filter {cfg.zero_shot_filter}: the zero-shot classifier contradicts every one of "
                       f"the {filtered['before']} synthetic rows' labels; raise the gate or leave the filter off")
    trainer = PromptTrainer(task, bb, cfg, splits["train"], splits["dev"], syn_rows, init_prompt=prompt0,
                            out_dir=out, progress=progress)
    if restart and dist.is_main():  # only now that every input is known good: a bad input leaves old outputs
        for path in (ckpt, metrics_path, out / "log.jsonl"):
            path.unlink(missing_ok=True)
    dist.barrier()
    result = trainer.fit()
    prompt = trainer.best_prompt.detach().cpu()
    train_s = time.perf_counter() - t0
    test = eval_subset(splits["test"], max_eval)
    test_metrics = evaluate(task, bb, test, prompt, cfg.eval_batch_size, max_length=cfg.max_length,
                            progress=progress, desc="test", encoder=trainer.encoder)
    metrics = {
        "task": task.name, "strategy": cfg.strategy, "gradient_surgery": cfg.gradient_surgery,
        "test": test_metrics, "dev": result.dev_metrics, "best_step": result.best_step,
        "conflict_rate": result.stats["conflict_rate"], "steps": trainer.cfg.max_steps, "n_train": len(splits["train"]),
        "n_synthetic": len(syn_rows), "trainable_parameters": int(prompt.numel()),
        "train_seconds": round(train_s, 2), "processes": dist.world_size(), "resumed_from_step": result.resumed_from, "config_hash": key,
    }
    if filtered is not None:
        metrics["zero_shot_filter"] = filtered
    if dist.is_main():
        save_peft_prompt(out, prompt, bb, extra={"task": task.name, "task_spec": task_record(task),
                                                 "model": model_name, "config_hash": key})
        write_json(out / "config.json", {"config": run_cfg, "versions": versions()})
        write_card(out, task, model_name, bb.name_or_path, tuple(prompt.shape), metrics=metrics,
                   train={**run_cfg["train"], "max_steps": trainer.cfg.max_steps}, data=data, synthetic=syn_name,
                   counts={"train": len(splits["train"]), "dev": len(splits["dev"]), "synthetic": len(syn_rows)})
        write_json(metrics_path, metrics)
        ckpt.unlink(missing_ok=True)
    dist.barrier()
    return metrics

