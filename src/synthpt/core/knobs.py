"""Config fields that carry their own help, PEFT style, and knobs with a fixed set of values.

Every knob of a stage is a dataclass field made with :func:`knob`: its default and its help
live in one place, and the CLI builds one ``--flag`` per field from them
(``synthpt.cli.main.add_dataclass_args``), so no help text is written twice.  A knob whose
values are a fixed set is annotated with a :class:`enum.StrEnum` (``strategy: Strategy``): the
flag offers exactly those choices and ``--help`` lists them, while the value itself stays a
plain string, so YAML, JSON, checkpoints and config hashes read the same as before.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from synthpt.core.errors import fail

_UNSET = object()


def knob(default: Any, help: str, *, late: bool = False, was: Any = _UNSET) -> Any:  # noqa: A002 - "help" is the metadata key argparse users expect
    """A dataclass field with ``default`` and ``help`` (read back with :func:`help_of`).

    ``late``: a knob added after stages were cached; set to what those runs did (``was``, by default
    the knob's default) it is left out of :func:`key_of`, so they keep their cache keys.  A late knob
    whose default changes the behaviour (``was`` != ``default``) gives new keys at its default, so
    no stage made before it is taken for one made with it."""
    meta = {"help": help, "late": late}
    if was is not _UNSET:
        meta["was"] = was
    return dataclasses.field(default=default, metadata=meta)


def key_of(cfg: Any) -> dict[str, Any]:
    """``dataclasses.asdict(cfg)`` for cache keys, without the ``late`` knobs set to what earlier runs did."""
    out = dataclasses.asdict(cfg)
    for f in dataclasses.fields(cfg):
        if f.metadata.get("late") and out.get(f.name) == f.metadata.get("was", f.default):
            del out[f.name]
    return out


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")


def values_of(kind: type[enum.Enum]) -> list[str]:
    """The allowed values of an Enum-typed knob, in declaration order."""
    return [str(m.value) for m in kind]


def choose(kind: type[enum.Enum], value: Any, what: str) -> str:
    """``value`` as the plain string of one of ``kind``'s members; otherwise one line naming them."""
    allowed = values_of(kind)
    if value not in allowed:
        raise fail(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return str(kind(value).value)
