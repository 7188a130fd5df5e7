"""Config fields that carry their own help, PEFT style.

Every knob of a stage is a dataclass field made with :func:`knob`: its default and its help
live in one place, and the CLI builds one ``--flag`` per field from them
(``synthpt.cli.main.add_dataclass_args``), so no help text is written twice.
"""

from __future__ import annotations

import dataclasses
from typing import Any


def knob(default: Any, help: str) -> Any:  # noqa: A002 - "help" is the metadata key argparse users expect
    """A dataclass field with ``default`` and ``help`` (read back with :func:`help_of`)."""
    return dataclasses.field(default=default, metadata={"help": help})


def help_of(f: dataclasses.Field) -> str:
    return f.metadata.get("help", "")
