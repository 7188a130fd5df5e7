"""synthpt: few-shot prompt tuning with synthetic data from a tuned generator LM.

The package follows the pipeline: ``tasks`` -> ``data`` -> ``generator`` ->
``prompt_tuning`` -> ``evaluate`` -> ``methods`` -> ``experiments`` -> ``bench`` / ``api`` -> ``cli``,
on the ``core`` floor of shared pieces (scoring, batches, cache, I/O) that imports nothing above
it. ``tests/test_layers.py`` keeps every import pointing down.
"""

__version__ = "0.1.0"

from synthpt.core.errors import SynthptError  # noqa: E402
from synthpt.tasks import Task, get_task, list_tasks  # noqa: E402

__all__ = ["SynthptError", "Task", "get_task", "list_tasks", "__version__"]
