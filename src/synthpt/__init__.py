"""synthpt: few-shot prompt tuning with synthetic data from a tuned generator LM.

The Python API (:mod:`synthpt.api`)::

    import synthpt
    result = synthpt.run(task="sst-2", data="../shared/data", model="smollm2-135m", generator="smollm2-135m")
    synthpt.load(result["prompt_adapter"]).predict(["a gripping, funny film"])

The package follows the pipeline: ``tasks`` -> ``data`` -> ``generator`` ->
``prompt_tuning`` -> ``evaluate`` -> ``methods`` -> ``experiments`` -> ``bench`` / ``api`` -> ``cli``,
on the ``core`` floor of shared pieces (scoring, batches, cache, saving, I/O) that imports nothing
above it. ``tests/test_layers.py`` keeps every import pointing down.

Glossary (each word means one thing in code, docs and flags):

- **task**: what is classified: text fields, labels, label words, template (:class:`Task`).
- **split**: a task's few-shot ``train`` / ``dev`` sets (K per label) and its ``test`` set.
- **stage**: one cached unit of the pipeline, named by the hash of its configuration: the split,
  then **Stage 1** generator tuning, **Stage 2** generation, **Stage 3** prompt tuning
  (``synthpt.core.cache``).  Never "step".
- **step**: one optimizer update of a training loop (``max_steps``, ``checkpoint_every`` count them).
- **generator model**: the frozen LM that writes synthetic text (``--generator-model``,
  ``generator_model:``).
- **generator**: a *tuned* generator, the folder Stage 1 writes (label prompts Q, weight net W,
  ``generator.json``), which ``synthpt generate --generator DIR`` reads.
- **label prompt** Q_l: the soft prompt that conditions the generator model on label l.
- **weight net** W: DawGen's token scorer and projection head, meta-learned in Stage 1.
- **synthetic data**: the filtered rows Stage 2 writes (JSONL, with a report).
- **backbone**: the frozen LM being prompt-tuned and evaluated (``--model``).
- **soft prompt** P: the n trainable vectors before the backbone's input; saved as a PEFT adapter.
- **prompt tuning**: Stage 3, training P (package ``synthpt.prompt_tuning``, config
  ``PromptTrainerConfig``, ``synthpt prompt-tune``, ``Context.run_prompt_tuning``).
- **data strategy**: which real and synthetic rows make each batch of Stage 3 (``--strategy``).
- **gradient surgery**: projecting the synthetic gradient off the real one when they conflict.
- **method**: a row of the paper's tables (``pt``, ``ours``, baselines): ``synthpt methods``.
- **context** (``ctx``): what a method sees for one (task, seed) cell (``synthpt.methods.base.Context``).
- **context ids**: the token ids a soft prompt is placed before (``context_ids``).
- **knobs**: the fields of a stage's config dataclass, each with its help; their dicts of values
  are ``*_knobs`` (``Context.pt_knobs``).
- **cell**: one (task, seed, method) of an experiment grid; a **method row** (``MethodRow``) is a
  method with overrides, one row of the tables.
- **run record**: the JSON a finished run writes last (``metrics.json``, ``generator.json``, a
  generation report): its ``config_hash`` says whether the work is already done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from synthpt.core.errors import SynthptError  # noqa: E402
from synthpt.tasks import Task, get_task, list_tasks  # noqa: E402

if TYPE_CHECKING:
    from synthpt.evaluate import Classifier


# Thin wrappers: `import synthpt` (and `import synthpt.core.errors`) must not pull in transformers,
# peft and the training stack; they load on the first call.
def load(path: Any, **kwargs: Any) -> Classifier:
    """A trained prompt, ready to classify; see :func:`synthpt.api.load`."""
    from synthpt.api import load as _load

    return _load(path, **kwargs)


def run(task: Any, data: Any = None, model: str | None = None, generator: str | None = None,
        **kwargs: Any) -> dict[str, Any]:
    """The whole method on one task and seed; see :func:`synthpt.api.run`."""
    from synthpt.api import run as _run

    return _run(task, data, model, generator, **kwargs)


__all__ = ["SynthptError", "Task", "get_task", "list_tasks", "load", "run", "__version__"]
