"""SPoT (Vu et al., 2022): a soft prompt trained on a source task's full labelled data
initialises prompt tuning on the target's few-shot data.

- Source task per target: ``options.source_task`` or :data:`DEFAULT_SOURCE` (MNLI for
  RTE / SNLI / SICK / QNLI / QQP, QQP for MRPC, SNLI for MNLI).
- Source training: plain prompt tuning (the cell's prompt-tuning config: prompt length, lr,
  batch size, max length) of a vocabulary-initialised prompt on at most ``source_examples``
  (default all) balanced rows of the source task's training pool (``load_official(src,
  "train")``; 9,999 rows for MNLI / QQP / QNLI here), with the *source* task's template and
  verbalizer, for ``source_steps`` steps (default 1000), seed ``source_seed`` (default 42),
  keeping the last prompt.  Cached by (backbone, source task, data, config): one source
  prompt serves every target and seed; its cost is in ``metrics["source"]``.
- Label mapping: none is needed; the source prompt only initialises the target prompt, which
  is then tuned with the *target's* template and verbalizer (as in SPoT).
- Trainable parameters: the prompt, n·d (the backbone stays frozen in both phases).
"""

from __future__ import annotations

import functools
from typing import Any

from synthpt.methods import register
from synthpt.methods.base import Context
from synthpt.methods.baselines.common import TransferMethod, option, source_prompt, train_source_prompt


def spot_source(ctx: Context) -> Any:
    limit = option(ctx, "source_examples", None)
    return source_prompt(ctx, "spot-source", "spot-{src}-{model}", int(option(ctx, "source_steps", 1000)),
                         int(option(ctx, "source_seed", 42)), int(limit) if limit else None,
                         functools.partial(train_source_prompt, ctx), limit=limit)


register(TransferMethod("spot", "SPoT", "prompt transferred from a source task's full data, then few-shot PT",
                        source=spot_source))
