"""Step 3: the soft prompt, data strategies, gradient surgery and the training loop.

Names are resolved lazily so that ``synthpt.evaluate`` can import the verbalizer without
pulling in the trainer (which itself evaluates on the dev set)."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "run_prompt_tuning": "recipe",
    "init_from_vocab": "soft_prompt", "load_peft_prompt": "soft_prompt", "save_peft_prompt": "soft_prompt",
    "STRATEGIES": "strategies", "BatchPlan": "strategies",
    "combine": "surgery", "project_conflicting": "surgery",
    "PromptTrainer": "trainer", "PromptTuningConfig": "trainer",
    "Encoder": "verbalizer", "label_logprobs": "verbalizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'synthpt.prompt_tuning' has no attribute {name!r}")
    return getattr(importlib.import_module(f"synthpt.prompt_tuning.{_EXPORTS[name]}"), name)
