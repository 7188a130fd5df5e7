"""The method registry: every row of the paper's tables is a named :class:`Method`.

``synthpt run --method NAME`` and the ``methods:`` list of an experiment config select
methods by name.  A method is an object with

- ``name``: the registry key (``pt``, ``ours``, ``real+syn@fewgen`` ...),
- ``display``: the row label of the paper's tables (``Prompt Tuning``, ``Ours`` ...),
- ``trainable_parameters(ctx) -> int | None``: how many weights it trains,
- ``run(ctx) -> metrics``: train and evaluate on ``ctx``'s split; the metrics dict holds at
  least ``test`` (``{"accuracy": ..., "n": ...}``, plus ``f1`` for MRPC/QQP).

``ctx`` is a :class:`synthpt.methods.base.Context`: the task, the few-shot split, the
backbone and generator names, the seed, the resolved knobs (generator / generation /
prompt-tuning configs, ``options``) and content-addressed helpers that share work across
methods (``ctx.synthetic("dawgen")`` tunes the generator and generates once per config,
``ctx.run_prompt_tuning(cfg, synthetic)`` caches a prompt-tuning run by its config).

Adding a method: write ``synthpt/methods/my_method.py`` that calls
``register(Method(...))`` (or a subclass with its own ``run``) at import time, and add
``"synthpt.methods.my_method"`` to :data:`BUILTIN_MODULES` below.  Nothing else changes.
"""

from __future__ import annotations

import importlib

from synthpt.core.errors import fail
from synthpt.methods.base import Context, Method, PromptTuningMethod

# One line per module of methods; each module registers its methods when imported.
BUILTIN_MODULES: list[str] = [
    "synthpt.methods.data_strategies",  # pt, ours, the data strategies, the ablations
    "synthpt.methods.baselines.zero_shot",  # zero-shot (Prompting)
    "synthpt.methods.baselines.icl",  # icl (In-Context)
    "synthpt.methods.baselines.finetune",  # ft, pft, pft+sp
    "synthpt.methods.baselines.lora",  # lora
    "synthpt.methods.baselines.ppt",  # ppt
    "synthpt.methods.baselines.spot",  # spot
    "synthpt.methods.baselines.optima",  # optima
]

_REGISTRY: dict[str, Method] = {}
_loaded = False


def register(method: Method, replace: bool = False) -> Method:
    """Add a method to the registry (at import time of its module)."""
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"method {method.name!r} is registered twice")
    _REGISTRY[method.name] = method
    return method


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for mod in BUILTIN_MODULES:
        importlib.import_module(mod)


def get_method(name: str) -> Method:
    _load_builtins()
    if name not in _REGISTRY:
        raise fail(f"unknown method {name!r}; known methods: {', '.join(_REGISTRY)} (see `synthpt methods`)")
    return _REGISTRY[name]


def list_methods() -> list[Method]:
    _load_builtins()
    return list(_REGISTRY.values())


__all__ = ["BUILTIN_MODULES", "Context", "Method", "PromptTuningMethod", "get_method", "list_methods", "register"]
