"""The content-addressed stage cache (synthpt.core.cache): done stages are read back, changed
ones rerun, and a marker that is not a record is treated as no marker rather than a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthpt.core.cache import run_stage


def _stage(calls: list[bool]):
    def fn(restart: bool) -> dict:
        calls.append(restart)
        return {"n": len(calls)}

    return fn


def test_done_stage_is_read_back_and_a_changed_one_reruns(tmp_path: Path) -> None:
    target, marker, calls = tmp_path / "t", tmp_path / "t.stage.json", []
    target.mkdir()
    first = run_stage("s", target, marker, {"k": 1}, _stage(calls))
    again = run_stage("s", target, marker, {"k": 1}, _stage(calls))
    assert first.ran and not again.ran and again.result == {"n": 1} and calls == [False]
    changed = run_stage("s", target, marker, {"k": 2}, _stage(calls))
    assert changed.ran and calls == [False, True] and not target.exists()  # the old target is removed


@pytest.mark.parametrize("content", ['["not", "a", "record"]', '{"key": "abc", "sta', "", "\xff"])
def test_a_marker_that_is_not_a_record_means_run_again(tmp_path: Path, content: str) -> None:
    target, marker, calls = tmp_path / "t", tmp_path / "t.stage.json", []
    target.mkdir()
    marker.write_bytes(content.encode("latin-1"))
    res = run_stage("s", target, marker, {"k": 1}, _stage(calls))
    assert res.ran and calls == [False] and target.exists()  # run, nothing removed on a guess
    assert not run_stage("s", target, marker, {"k": 1}, _stage(calls)).ran
