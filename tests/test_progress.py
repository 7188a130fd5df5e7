"""Progress off a terminal is a line every few seconds, not a frame per update; in a terminal, tqdm's bar."""

from __future__ import annotations

import io

import pytest

from synthpt.core.progress import LineBar, mode, progress_bar


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _auto(monkeypatch):
    monkeypatch.delenv("SYNTHPT_PROGRESS", raising=False)
    monkeypatch.delenv("SYNTHPT_PROGRESS_EVERY", raising=False)


def test_a_log_gets_lines_and_a_terminal_gets_a_bar(monkeypatch):
    log, tty = io.StringIO(), FakeTTY()
    assert mode(log) == "lines" and mode(tty) == "bars"
    monkeypatch.setenv("SYNTHPT_PROGRESS_EVERY", "0.000001")  # every update is due
    for stream in (log, tty):
        bar = progress_bar(total=5, desc="steps", stream=stream)
        for i in range(5):
            bar.set_postfix({"loss": f"{i}.5"})
            bar.update(1)
        bar.close()
    text = log.getvalue()
    assert "\r" not in text and "\x1b" not in text  # no redraws, no cursor moves: a log reads as lines
    lines = text.splitlines()
    assert lines[-1].startswith("steps: 5/5") and "loss=4.5" in lines[-1]
    assert all(line.startswith("steps: ") for line in lines)
    assert "\r" in tty.getvalue()  # the terminal keeps tqdm's redrawn bar


def test_lines_are_spaced_and_short_work_is_silent(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr("tqdm.std.time", lambda: clock[0])  # the clock tqdm gives each bar
    log = io.StringIO()
    bar = LineBar(total=100, desc="gen", file=log, every=10.0)
    for _ in range(100):  # 100 updates over 30 s of fake time: a line at 10, 20, 30 s at most
        clock[0] += 0.3
        bar.update(1)
    bar.close()
    lines = log.getvalue().splitlines()
    assert 2 <= len(lines) <= 4, lines  # not one per update
    assert lines[-1].startswith("gen: 100/100")

    quiet = io.StringIO()
    short = LineBar(total=3, desc="eval", file=quiet, every=10.0, leave=False)
    for _ in range(3):
        clock[0] += 0.1
        short.update(1)
    short.close()
    assert quiet.getvalue() == ""  # a bar shorter than the interval writes nothing at all


def test_progress_off(monkeypatch):
    monkeypatch.setenv("SYNTHPT_PROGRESS", "off")
    tty = FakeTTY()
    bar = progress_bar(range(3), desc="x", stream=tty)
    assert list(bar) == [0, 1, 2]
    assert tty.getvalue() == ""


def test_only_the_main_process_draws(monkeypatch):
    """Under ``accelerate launch`` every rank runs the same loop; one bar, from rank 0, is enough."""
    from synthpt.core import distributed

    monkeypatch.setenv("SYNTHPT_PROGRESS", "bars")
    for main, drawn in ((False, False), (True, True)):
        monkeypatch.setattr(distributed, "is_main", lambda main=main: main)
        tty = FakeTTY()
        bar = progress_bar(range(3), desc="x", stream=tty)
        assert bar.disable is not drawn and list(bar) == [0, 1, 2]
        assert ("x:" in tty.getvalue()) is drawn


def test_unknown_progress_mode_means_auto(monkeypatch):
    monkeypatch.setenv("SYNTHPT_PROGRESS", "sometimes")
    assert mode(FakeTTY()) == "bars" and mode(io.StringIO()) == "lines"
