"""One exception type for user mistakes.

Anything a user can get wrong (a missing file, a bad column, an unknown task) raises
:class:`SynthptError`.  The CLI turns it into one line on stderr and exit code 2, so a
user never has to read a traceback to learn that a path was mistyped.  Library users
catch it like any other exception.
"""

from __future__ import annotations


class SynthptError(Exception):
    """A problem with the user's input, reported as one clear line."""

    exit_code = 2


def fail(message: str) -> SynthptError:
    """Build the error to raise; ``raise fail(...)`` reads well at call sites."""
    return SynthptError(message)


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty)."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
