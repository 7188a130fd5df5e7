"""synthpt: few-shot prompt tuning with synthetic data from a tuned generator LM.

The Python API (:mod:`synthpt.api`)::

    import synthpt
    result = synthpt.run(task="sst-2", data="../shared/data", model="smollm2-135m", generator="smollm2-135m")
    synthpt.load(result["prompt_adapter"]).predict(["a gripping, funny film"])

The package follows the pipeline: ``tasks`` -> ``data`` -> ``generator`` ->
``prompt_tuning`` -> ``evaluate`` -> ``methods`` -> ``experiments`` -> ``bench`` / ``api`` -> ``cli``,
on the ``core`` floor of shared pieces (scoring, batches, cache, I/O) that imports nothing above
it. ``tests/test_layers.py`` keeps every import pointing down.
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
