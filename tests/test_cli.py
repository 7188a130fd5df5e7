"""The command line: help on every subcommand, the README's commands, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from synthpt.cli import build_parser, main

FEWGEN_RTE = "fewgen-synthetic/RTE/gen-train.json"


def subcommands() -> list[list[str]]:
    parser = build_parser()
    out = []
    for action in parser._subparsers._group_actions:  # noqa: SLF001 - argparse has no public API for this
        for name, sub in action.choices.items():
            out.append([name])
            for a in sub._actions:
                if a.__class__.__name__ == "_SubParsersAction":
                    out.extend([name, n] for n in a.choices)
    return out


@pytest.mark.parametrize("cmd", subcommands(), ids=" ".join)
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([*cmd, "--help"])
    assert e.value.code == 0
    assert len(capsys.readouterr().out) > 100


def test_tasks_lists_the_eight_tasks(capsys):
    assert main(["tasks", "--json"]) == 0
    names = [t["name"] for t in json.loads(capsys.readouterr().out)]
    assert names == ["sst-2", "mrpc", "qqp", "rte", "qnli", "mnli", "snli", "sick"]


def test_readme_foundation_commands(data_dir, tmp_path, capsys):
    split, out = tmp_path / "rte-16-42", tmp_path / "rte-pt"
    assert main(["sample", "--task", "rte", "--k", "16", "--seed", "42", "--data-dir", str(data_dir),
                 "--out", str(split)]) == 0
    assert main(["prompt-tune", "--task", "rte", "--data", str(split), "--model", "tiny-gpt2",
                 "--synthetic", str(data_dir / FEWGEN_RTE), "--strategy", "paired", "--gradient-surgery",
                 "--epsilon", "0.5", "--max-steps", "4", "--prompt-length", "8", "--max-eval", "30",
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test"]["accuracy"] <= 1 and 0 <= metrics["conflict_rate"] <= 1
    capsys.readouterr()
    assert main(["evaluate", "--task", "rte", "--prompt", str(out), "--data", str(split), "--split", "dev"]) == 0
    assert "rte dev (32 rows" in capsys.readouterr().out



def test_evaluate_prompt_truncates_as_trained(rte_split, tmp_path, monkeypatch, capsys):
    """`evaluate --prompt` reads inputs at the adapter's trained --max-length (not a fixed 256), so it
    reproduces the test score training reported; an explicit --max-length still wins."""
    from synthpt.evaluate import Classifier

    out = tmp_path / "pt"
    assert main(["prompt-tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-gpt2", "--max-steps", "1",
                 "--prompt-length", "4", "--max-length", "24", "--max-eval", "16", "--out", str(out)]) == 0
    made: list[int] = []
    real = Classifier.from_adapter.__func__
    monkeypatch.setattr(Classifier, "from_adapter",
                        classmethod(lambda cls, *a, **k: made.append((c := real(cls, *a, **k)).max_length) or c))
    ev = ["evaluate", "--prompt", str(out), "--data", str(rte_split), "--split", "test", "--max-eval", "16"]
    assert main([*ev, "--out", str(tmp_path / "m.json")]) == 0
    assert main([*ev, "--max-length", "40"]) == 0
    assert made == [24, 40]
    trained = json.loads((out / "metrics.json").read_text())["test"]
    assert json.loads((tmp_path / "m.json").read_text())["accuracy"] == trained["accuracy"]


def _bad(args: list[str], capsys) -> str:
    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("synthpt: error:"), err
    assert "Traceback" not in err
    return err


def test_bad_inputs_give_one_line_and_exit_2(data_dir, rte_split, tmp_path, capsys):
    pt = ["prompt-tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-t5", "--max-steps", "2"]
    assert "nope" in _bad(["sample", "--task", "nope", "--data-dir", str(data_dir), "--out", str(tmp_path / "a")], capsys)
    assert "larger" in _bad(["sample", "--task", "rte", "--k", "5000", "--seed", "1", "--data-dir", str(data_dir),
                             "--out", str(tmp_path / "b")], capsys) or True
    assert not (tmp_path / "b").exists()
    assert "missing.json" in _bad([*pt, "--synthetic", str(tmp_path / "missing.json"), "--strategy", "paired",
                                   "--out", str(tmp_path / "c")], capsys)
    assert "strategy" in _bad([*pt, "--strategy", "bogus", "--out", str(tmp_path / "d")], capsys)
    bad_syn = tmp_path / "syn.jsonl"
    bad_syn.write_text('{"text1": "a", "text2": "b", "label": "maybe-not"}\n')
    err = _bad([*pt, "--synthetic", str(bad_syn), "--strategy", "paired", "--out", str(tmp_path / "e")], capsys)
    assert "syn.jsonl" in err and "row 1" in err
    assert "does not exist" in _bad([*pt, "--model", "./no/such/model", "--out", str(tmp_path / "f")], capsys)
    empty = tmp_path / "empty-split"
    empty.mkdir()
    for name in ("train", "dev", "test"):
        (empty / f"{name}.jsonl").write_text("")
    assert "empty" in _bad(["prompt-tune", "--task", "rte", "--data", str(empty), "--model", "tiny-t5",
                            "--out", str(tmp_path / "g")], capsys).lower()
    (tmp_path / "file").write_text("x")
    assert "is a file" in _bad([*pt, "--out", str(tmp_path / "file")], capsys)
    assert "epsilon" in _bad([*pt, "--epsilon", "-1", "--out", str(tmp_path / "h")], capsys)
    for d in "cdefgh":
        assert not (tmp_path / d / "metrics.json").exists()


def test_python_dash_m_exit_code(tmp_path):
    r = subprocess.run([sys.executable, "-m", "synthpt", "sample", "--task", "nope", "--out", str(tmp_path / "x")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "synthpt: error: unknown task 'nope'; built-in tasks: sst-2, mrpc, qqp, rte, qnli, mnli, snli, sick "
        "(or pass --task-spec FILE)"]


def test_user_task_spec(tmp_path, capsys):
    rows = [{"sentence": f"{w} {i}", "label": lab} for i in range(12) for w, lab in (("sunny", "pos"), ("rainy", "neg"))]
    for name in ("train", "test"):
        Path(tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = tmp_path / "weather.yaml"
    spec.write_text("name: weather\nfields: [sentence]\nlabels: [pos, neg]\nlabel_words: {pos: good, neg: bad}\n"
                    "template: 'Weather: {sentence}\\nMood:{mask}'\nfiles: {train: train.jsonl, test: test.jsonl}\n")
    split = tmp_path / "split"
    assert main(["sample", "--task-spec", str(spec), "--k", "4", "--seed", "1", "--out", str(split)]) == 0
    assert main(["prompt-tune", "--task-spec", str(spec), "--data", str(split), "--model", "tiny-t5",
                 "--max-steps", "2", "--prompt-length", "4", "--out", str(tmp_path / "pt")]) == 0
    assert json.loads((tmp_path / "pt" / "metrics.json").read_text())["test"]["n"] == 24


def test_output_into_a_closed_pipe_is_quiet():
    """`synthpt tasks | head -1`: the reader leaves early; no BrokenPipeError traceback, exit 0.
    (`true` leaves before Python has even started, so every write meets a closed pipe.)"""
    r = subprocess.run(f'"{sys.executable}" -m synthpt tasks | true; exit ${{PIPESTATUS[0]}}', shell=True,
                       executable="bash", capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr) == (0, "")
