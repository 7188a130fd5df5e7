"""The saving room: one atomic safetensors writer, one "already done?" check, resumable JSONL, task specs."""

from __future__ import annotations

import json

import pytest
import torch

from synthpt.core.errors import SynthptError
from synthpt.core.io import atomic_save_safetensors, load_safetensors, write_json
from synthpt.core.saving import ResumableJsonl, already_done, load_label_prompts, save_label_prompts
from synthpt.tasks import BUILTIN_TASKS, Task, load_task_spec


def test_safetensors_writer_round_trip_and_no_torn_file(tmp_path, monkeypatch):
    path = tmp_path / "t.safetensors"
    a = torch.arange(6, dtype=torch.float32).view(2, 3)
    atomic_save_safetensors(path, {"a": a.t()}, metadata={"k": "v"})  # a non-contiguous view is fine
    assert torch.equal(load_safetensors(path)["a"], a.t())
    import os

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(SynthptError, match="No space left"):
        atomic_save_safetensors(path, {"a": torch.zeros(1)})
    monkeypatch.undo()
    assert torch.equal(load_safetensors(path)["a"], a.t())  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["t.safetensors"]  # no temp file left behind
    path.write_bytes(b"\x08\x00garbage")
    with pytest.raises(SynthptError, match="corrupt safetensors file"):
        load_safetensors(path)


def test_label_prompts_come_back_in_the_asked_order(tmp_path):
    q = torch.randn(2, 3, 4)
    save_label_prompts(tmp_path, ["neg", "pos"], q, {"w": torch.ones(2)})
    assert torch.equal(load_label_prompts(tmp_path, ["pos", "neg"]), q.flip(0))
    assert torch.equal(load_safetensors(tmp_path / "weight_net.safetensors")["w"], torch.ones(2))
    with pytest.raises(SynthptError, match=r"has no prompt for labels \['other'\]"):
        load_label_prompts(tmp_path, ["pos", "other"])


def test_already_done(tmp_path):
    rec = tmp_path / "metrics.json"
    assert already_done(rec, "k1", tmp_path, "a finished run") is None  # nothing yet: do the work
    write_json(rec, {"config_hash": "k1", "acc": 0.5})
    assert already_done(rec, "k1", tmp_path, "a finished run") == {"config_hash": "k1", "acc": 0.5}
    assert already_done(rec, "k1", tmp_path, "a finished run", restart=True) is None
    with pytest.raises(SynthptError, match="holds a finished run with another configuration; use --restart"):
        already_done(rec, "k2", tmp_path, "a finished run")
    assert already_done(rec, "k2", tmp_path, "a finished run", resumable=True) is None
    rec.write_text("{torn")
    with pytest.raises(SynthptError, match=r"metrics\.json: .*invalid JSON"):
        already_done(rec, "k1", tmp_path, "a finished run")


def test_resumable_jsonl_rewinds_to_the_last_commit(tmp_path):
    out = tmp_path / "syn.jsonl"
    f = ResumableJsonl(out, "unreadable generation state")
    assert f.read_state() is None
    state = {"bytes": 0, "round": 0}
    f.write_state(state)
    f.commit([{"t": "a"}, {"t": "b"}], state)
    committed = out.stat().st_size
    with open(out, "a") as fh:  # a round killed after its append, before its state
        fh.write(json.dumps({"t": "c"}) + "\n")
    again = f.read_state()
    assert again == {"bytes": committed, "round": 0}
    assert f.rewind(again) == [{"t": "a"}, {"t": "b"}]
    assert out.stat().st_size == committed
    out.write_text("")
    with pytest.raises(SynthptError, match="shorter than its state file records"):
        f.rewind(again)
    f.finish()
    assert not f.state_path.exists()
    f.state_path.write_text("[1]")
    with pytest.raises(SynthptError, match=r"unreadable generation state \(not a JSON object\); rerun with --restart"):
        f.read_state()


def test_task_specs_round_trip(tmp_path):
    for task in BUILTIN_TASKS.values():
        assert Task.from_dict(task.to_dict()) is task  # descriptions and field names come back too
    spec = {"name": "mine", "fields": ["text"], "labels": [0, 1], "label_words": {0: "bad", 1: "good"},
            "template": "{text} It was{mask}", "gen_templates": {"1": "A good one:"}}
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(spec))
    user = load_task_spec(path)
    assert user.labels == ("0", "1") and user.label_words == {"0": "bad", "1": "good"}
    back = Task.from_dict(user.to_dict())
    assert back == user and back.gen_template_for("1") == "A good one:"
