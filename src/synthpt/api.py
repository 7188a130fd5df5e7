"""The Python API: the whole method in one call, a trained prompt in another.

::

    import synthpt

    result = synthpt.run(task="sst-2", data="../shared/data", model="smollm2-135m",
                         generator="smollm2-135m", config="configs/demo.yaml", out="runs/sst2")
    result["test"]            # {"accuracy": ..., "n": ...}
    clf = synthpt.load(result["prompt_adapter"])
    clf.predict(["a gripping, funny film", "two hours I will never get back"])
    # -> [{"label": "1", "probs": {"0": 0.1, "1": 0.9}}, ...]

These are the CLI's own code paths, not a second implementation: ``synthpt run`` calls
:func:`run_with` (as :func:`run` does) and ``synthpt predict`` builds the same
:class:`~synthpt.evaluate.Classifier` that :func:`load` returns.  Mistakes raise
:class:`synthpt.SynthptError` with the one line the CLI would print.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from synthpt.evaluate import Classifier, read_adapter
from synthpt.experiments.config import SECTIONS
from synthpt.tasks import Task, resolve_task

Override = tuple[str, Any, str]  # (setting, value, how the user wrote it: for error messages)


def load(path: str | Path, *, task: str | None = None, task_spec: str | Path | None = None,
         model: str | None = None, dtype: str | None = None, trust_remote_code: bool = False,
         max_length: int | None = None, batch_size: int = 32) -> Classifier:
    """A trained prompt, ready to classify: ``synthpt.load(path).predict(texts)``.

    ``path`` is a prompt adapter folder (``runs/x/prompt``) or a ``synthpt run`` folder.  The task
    and the base model come from the adapter; ``task`` / ``task_spec`` name the task of a PEFT
    adapter trained elsewhere, ``model`` loads another copy of the base (a local folder, say).
    ``predict`` takes strings (one-field tasks), ``(text1, text2)`` tuples or dicts (pair tasks)
    and returns ``{"label", "probs"}`` per row, the JSON ``synthpt predict`` writes."""
    return Classifier.from_adapter(read_adapter(path, task, task_spec), model=model, dtype=dtype,
                                   trust_remote_code=trust_remote_code, max_length=max_length, batch_size=batch_size)


def _flatten(settings: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    """``{"prompt_tuning": {"lr": 0.1}}`` and ``{"prompt_tuning.lr": 0.1}`` both give ``prompt_tuning.lr``."""
    for key, value in settings.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and dotted in (*SECTIONS, "options"):
            yield from _flatten(value, dotted + ".")
        else:
            yield dotted, value


def as_task(task: str | Path | Task) -> Task:
    """A Task, a built-in name, or the path of a task spec (``.yaml`` / ``.yml`` / ``.json``)."""
    if isinstance(task, Task):
        return task
    text = str(task)
    if isinstance(task, Path) or text.endswith((".yaml", ".yml", ".json")):
        return resolve_task(spec=text)
    return resolve_task(text)


def run(task: str | Path | Task, data: str | Path | None = None, model: str | None = None,
        generator: str | None = None, *, out: str | Path | None = None, seed: int = 42, method: str | None = None,
        config: str | Path | None = None, k: int | None = None, max_eval: int | None = None,
        settings: Mapping[str, Any] | None = None, progress: bool = True) -> dict[str, Any]:
    """The whole method on one task and seed, as ``synthpt run`` does it; returns its ``metrics.json``.

    - ``task``: a built-in name (``"sst-2"``), a task-spec file or a :class:`synthpt.Task`;
    - ``data``: the benchmark folder (``../shared/data``); a user task's spec names its own files;
    - ``model`` / ``generator``: backbone and generator LM (built-in names, HF folders, ``.gguf``,
      hub ids; default ``tiny-t5`` / ``tiny-gpt2``, for tests);
    - ``config``: a YAML like ``configs/demo.yaml`` (its ``generator:``, ``generation:``,
      ``prompt_tuning:`` sections); ``settings`` override any knob, e.g.
      ``{"prompt_tuning.max_steps": 10}`` or ``{"prompt_tuning": {"max_steps": 10}}``;
    - ``out``: the run folder (default ``runs/<task>-s<seed>``); rerunning with the same
      arguments redoes nothing, a changed knob reruns that stage and the later ones.

    The result holds ``test`` and ``dev`` metrics, ``conflict_rate``, ``prompt_adapter`` (the
    folder :func:`load` takes), ``stages`` (what ran, what was cached) and the run's settings."""
    t = as_task(task)
    items: list[Override] = [(name, value, f"{arg}={value!r}") for name, value, arg in (
        ("model", model, "model"), ("generator_model", generator, "generator"), ("k", k, "k"),
        ("max_eval", max_eval, "max_eval")) if value is not None]
    items += [(key, value, f"settings[{key!r}]") for key, value in _flatten(settings or {})]
    from synthpt.core.runinfo import command, set_command

    if command() is None:
        set_command(f"synthpt.run(task={t.name!r}, model={model!r}, generator={generator!r}, seed={seed}, "
                    f"config={None if config is None else str(config)!r}, settings={dict(settings or {})!r})")
    return run_with(t, data, out or Path("runs") / f"{t.name}-s{seed}", seed=seed, method=method, config=config,
                    overrides=items, progress=progress)


def run_with(task: Task, data: str | Path | None, out: str | Path, *, seed: int = 42, method: str | None = None,
             config: str | Path | None = None, overrides: Iterable[Override] = (),
             progress: bool = True) -> dict[str, Any]:
    """:func:`run` with its settings as ``(key, value, where)`` overrides (``synthpt run``'s flags arrive so).

    Precedence: ``synthpt run``'s built-in defaults < ``config`` < overrides; an override also wins
    over a method's own knob (as a flag does)."""
    from synthpt.experiments.config import load_settings, run_defaults
    from synthpt.experiments.pipeline import run_pipeline

    st = load_settings(config, base=run_defaults())
    for key, value, where in overrides:
        st.set(key, value, where=where, force=True)
    data_dir = data or st.data_dir or "../shared/data"
    return run_pipeline(task, seed, data_dir, out, st, method=method, progress=progress)


__all__ = ["Classifier", "load", "run", "run_with"]
