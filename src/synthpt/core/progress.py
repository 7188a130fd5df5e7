"""Progress for long work: bars in a terminal, a plain line every few seconds in a log.

tqdm redraws its bar with carriage returns, which a terminal overwrites in place but a log
file (CI, ``nohup``, ``2> run.log``) keeps: a ten-minute run wrote thousands of frames.  So
:func:`progress_bar` picks by where stderr goes:

- a terminal (or a Jupyter kernel): tqdm's bar, unchanged;
- anything else: :class:`LineBar`, which writes one ordinary line (``desc: n/total [elapsed<left,
  rate, postfix]``) when at least ``SYNTHPT_PROGRESS_EVERY`` seconds (default 10) have passed since
  the bar started or last wrote, and a final line on close if it wrote any; a bar shorter than
  that writes nothing.

``SYNTHPT_PROGRESS=bars|lines|off`` overrides the choice (``auto``, the default, picks as above).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm as std_tqdm

from synthpt.core import distributed as dist

LINE_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
MODES = ("auto", "bars", "lines", "off")


def line_interval() -> float:
    """Seconds between two lines of one bar off a terminal (``SYNTHPT_PROGRESS_EVERY``, default 10)."""
    raw = os.environ.get("SYNTHPT_PROGRESS_EVERY", "10")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return 10.0


def mode(stream: Any = None) -> str:
    """``bars``, ``lines`` or ``off`` for ``stream`` (default: stderr) under ``SYNTHPT_PROGRESS``."""
    chosen = os.environ.get("SYNTHPT_PROGRESS", "auto").strip().lower()
    if chosen in MODES and chosen != "auto":
        return chosen
    stream = sys.stderr if stream is None else stream
    if _in_notebook():
        return "bars"
    try:
        return "bars" if stream.isatty() else "lines"
    except (AttributeError, ValueError):  # a closed or file-less stream
        return "lines"


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ip = getattr(shell, "get_ipython", lambda: None)()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class LineBar(std_tqdm):
    """A tqdm that writes whole lines, at most one per ``every`` seconds, and nothing for short work.

    Rates, remaining time and postfixes are tqdm's own (``format_meter``); only the drawing
    differs, so every caller keeps using the tqdm API (``update``, ``set_postfix``, ``close``)."""

    def __init__(self, *args: Any, every: float | None = None, **kwargs: Any) -> None:
        self._every = line_interval() if every is None else every
        self._last_line: float | None = None
        self._closing = False
        kwargs.pop("dynamic_ncols", None)
        kwargs.pop("position", None)
        kwargs.setdefault("bar_format", LINE_FORMAT)
        kwargs["mininterval"] = max(float(kwargs.get("mininterval", 0.1)), self._every)
        super().__init__(*args, **kwargs)

    def display(self, msg: str | None = None, pos: int | None = None) -> bool:  # tqdm calls this to draw
        if msg == "":  # tqdm clearing a finished bar: a log keeps its lines (False: no '\r' either)
            return False
        now = self._time() if hasattr(self, "_time") else time.time()  # tqdm's clock, as for its rates
        since = now - (self._last_line if self._last_line is not None else getattr(self, "start_t", now))
        if self._closing:
            due = self._last_line is not None and self.n > 0  # close a bar that spoke with its final count
        else:
            due = since >= self._every and self._every > 0
        if not due:
            return True
        self._last_line = now
        line = self.format_meter(**self.format_dict).strip() if msg is None else msg.strip()
        self.fp.write(line + "\n")
        self.fp.flush()
        return True

    def close(self) -> None:
        if self.disable:
            return
        self._closing = True
        if self._last_line is not None:  # tqdm's close draws only for leave=True; a log wants the end either way
            self.display()
            self._last_line = None
        self.leave = False  # the final line is written; tqdm's close must not draw it again
        super().close()


def progress_bar(iterable: Iterable[Any] | None = None, *, desc: str | None = None, total: float | None = None,
             disable: bool = False, stream: Any = None, **kwargs: Any) -> std_tqdm:
    """A progress bar for the terminal or a log (see the module docstring); tqdm's arguments.

    Hidden on every process but the main one: N processes drawing N bars of one run is noise."""
    how = mode(stream)
    if how == "off" or not dist.is_main():
        disable = True
    if stream is not None:
        kwargs["file"] = stream
    if how == "lines" and not disable:
        return LineBar(iterable, desc=desc, total=total, **kwargs)
    if how == "bars" and _in_notebook():
        from tqdm.auto import tqdm as auto_tqdm

        return auto_tqdm(iterable, desc=desc, total=total, disable=disable, **kwargs)
    return std_tqdm(iterable, desc=desc, total=total, disable=disable, **kwargs)
