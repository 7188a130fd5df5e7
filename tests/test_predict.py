"""``synthpt predict`` and ``synthpt.load``: classify new text with a saved prompt; the card beside it."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from synthpt.cli import main
from synthpt.core.classify import predict as score
from synthpt.tasks import get_task


@pytest.fixture(scope="module")
def sst2_prompt(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-step SST-2 prompt on tiny-gpt2, trained through the CLI (so its card records the command)."""
    root = tmp_path_factory.mktemp("predict")
    assert main(["sample", "--task", "sst-2", "--k", "16", "--seed", "42", "--data-dir", str(data_dir),
                 "--out", str(root / "split")]) == 0
    assert main(["prompt-tune", "--task", "sst-2", "--data", str(root / "split"), "--model", "tiny-gpt2",
                 "--max-steps", "2", "--eval-every", "2", "--prompt-length", "4", "--max-eval", "16",
                 "--out", str(root / "pt")]) == 0
    return root / "pt"


def _lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_predict_a_file_matches_the_scorer(sst2_prompt, tmp_path, capsys):
    import synthpt

    texts = ["a gripping, funny film", "two hours I will never get back", "flat"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(texts[:2]) + "\n\n" + texts[2] + "\n")  # a blank line is no row
    out = tmp_path / "preds.jsonl"
    assert main(["predict", "--prompt", str(sst2_prompt), "--input", str(src), "--out", str(out), "--quiet"]) == 0
    rows = _lines(out.read_text())
    assert [r["row"] for r in rows] == [1, 2, 3] and [r["text"] for r in rows] == texts
    for r in rows:
        assert r["label"] in ("0", "1") and set(r["probs"]) == {"0", "1"}
        assert sum(r["probs"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == max(r["probs"], key=r["probs"].get)
    # the same numbers as the training loop's own scorer, and as the Python API
    clf = synthpt.load(sst2_prompt)
    assert clf.task.name == "sst-2" and clf.prompt.shape[0] == 4
    ref = torch.softmax(score(clf.encoder, [{"text": t} for t in texts], clf.prompt), dim=-1)
    got = torch.tensor([[r["probs"]["0"], r["probs"]["1"]] for r in rows])
    assert torch.allclose(got, ref, atol=1e-5)
    assert [p["label"] for p in clf.predict(texts)] == [r["label"] for r in rows]
    # a run folder works too (its prompt/ holds the adapter)
    run_dir = tmp_path / "run"
    shutil.copytree(sst2_prompt, run_dir / "prompt")
    assert synthpt.load(run_dir).predict("flat")[0]["label"] == rows[2]["label"]


class TypedStdin(io.StringIO):
    """stdin at a terminal: lines are answered as they are typed, not read ahead."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stdin", [io.StringIO, TypedStdin], ids=["piped", "typed"])
def test_predict_reads_stdin(sst2_prompt, monkeypatch, capsys, stdin):
    monkeypatch.setattr("sys.stdin", stdin("great acting\nboring plot\n"))
    assert main(["predict", "--prompt", str(sst2_prompt), "--input", "-", "--quiet"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["text"] for r in rows] == ["great acting", "boring plot"]


def test_a_bad_row_is_one_line_exit_2_and_nothing_written(sst2_prompt, tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text('{"sentence": "fine"}\n{"id": 7}\n{"text": "good"}\n')
    out = tmp_path / "preds.jsonl"
    assert main(["predict", "--prompt", str(sst2_prompt), "--input", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "row 2 (line 2)" in err[0] and "no column for field 'text'" in err[0]
    assert not out.exists() and not list(tmp_path.glob(".preds.jsonl*"))
    # --skip-bad: the other rows, and a count on stderr
    assert main(["predict", "--prompt", str(sst2_prompt), "--input", str(src), "--out", str(out),
                 "--skip-bad", "--quiet"]) == 0
    assert [r["row"] for r in _lines(out.read_text())] == [1, 3]
    assert "skipped 1 bad row" in capsys.readouterr().err


def test_pair_task_csv_and_a_peft_adapter_from_elsewhere(sst2_prompt, tmp_path, capsys):
    """An adapter without synthpt's task record needs --task; then CSV rows of a pair task classify."""
    import synthpt
    from synthpt.core.errors import SynthptError

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(sst2_prompt / "adapter_model.safetensors", bare)
    cfg = json.loads((sst2_prompt / "adapter_config.json").read_text())
    cfg.pop("synthpt")
    (bare / "adapter_config.json").write_text(json.dumps(cfg))
    src = tmp_path / "pairs.csv"
    src.write_text('sentence1,sentence2,label\n"A man, tall.",A man is tall.,entailment\nIt rains.,It is dry.,x\n')
    assert main(["predict", "--prompt", str(bare), "--input", str(src)]) == 2
    assert "--task" in capsys.readouterr().err
    assert main(["predict", "--prompt", str(bare), "--task", "rte", "--input", str(src), "--quiet"]) == 0
    rows = _lines(capsys.readouterr().out)
    assert [r["text1"] for r in rows] == ["A man, tall.", "It rains."]
    assert all(r["label"] in get_task("rte").labels for r in rows)
    clf = synthpt.load(bare, task="rte")
    assert clf.predict([("A man, tall.", "A man is tall.")])[0]["probs"] == rows[0]["probs"]
    assert clf.predict([{"premise": "It rains.", "hypothesis": "It is dry."}])[0]["probs"] == rows[1]["probs"]
    with pytest.raises(SynthptError, match="row 1: expected 2 text"):
        clf.predict(["only one text"])


def test_a_peft_made_adapter_loads(tmp_path, capsys):
    """An adapter PEFT itself saved (base: a folder synthpt loads) predicts with --task."""
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM

    from synthpt.core.models import resolve_model

    base = resolve_model("tiny-gpt2")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=3))
    model.save_pretrained(tmp_path / "peft")
    src = tmp_path / "x.jsonl"
    src.write_text('{"sentence": "nice"}\n')
    assert main(["predict", "--prompt", str(tmp_path / "peft"), "--task", "sst-2", "--input", str(src),
                 "--quiet"]) == 0
    assert _lines(capsys.readouterr().out)[0]["label"] in ("0", "1")


def test_the_card_beside_the_adapter(sst2_prompt):
    card = (sst2_prompt / "README.md").read_text()
    metrics = json.loads((sst2_prompt / "metrics.json").read_text())
    assert card.startswith("---\nlibrary_name: peft\nbase_model: tiny-gpt2\n")
    for fact in ("`0` → \"negative\"", "`1` → \"positive\"", "Review: {text}", "real rows: 32 train, 32 dev",
                 "LM-BFF's published split, K = 16 per class, seed 42", "synthetic rows: 0",
                 f"| test | {metrics['test']['accuracy']:.4f} | {metrics['test']['n']} |",
                 f"| dev | {metrics['dev']['accuracy']:.4f} | 32 |", "license: none: random weights",
                 "command: `synthpt prompt-tune --task sst-2", "--prompt-length 4", "config.json"):
        assert fact in card, fact


def test_card_license_of_a_folder_and_a_built_in(tmp_path):
    from synthpt.core.models import model_license

    assert model_license("smollm2-135m").startswith("Apache-2.0")
    (tmp_path / "README.md").write_text("---\nlicense: mit\ntags: [x]\n---\n# m\n")
    assert model_license(str(tmp_path)) == "mit"
    assert model_license("some/hub-id") is None


def test_rows_in_every_format_without_a_model(tmp_path):
    """What ``predict`` reads, told apart by suffix or first line; bad rows come back, not raised."""
    from synthpt.core.errors import SynthptError
    from synthpt.data.rows import read_rows

    rte, sst = get_task("rte"), get_task("sst-2")

    def rows(task, text: str, name: str = "-", fmt: str = "auto"):
        return list(read_rows(task, io.StringIO(text), name, fmt))

    tsv = rows(rte, 'sentence1\tsentence2\n"quoted" A\tB\n\nC\tD\n')  # GLUE-style: quotes are text
    assert [r.example for r in tsv] == [{"text1": '"quoted" A', "text2": "B"}, {"text1": "C", "text2": "D"}]
    assert [r.loc for r in tsv] == ["-: row 1 (line 2)", "-: row 2 (line 4)"]
    csv_rows = rows(rte, 'premise,hypothesis\n"a, b","c ""d"""\n', "x.csv")
    assert csv_rows[0].example == {"text1": "a, b", "text2": 'c "d"'}
    js = rows(rte, '[{"text1": "a", "text2": "b"}, {"text1": "c"}]', "x.json")
    assert js[0].example == {"text1": "a", "text2": "b"} and "no column for field 'text2'" in js[1].error
    mixed = rows(sst, '{"text": "ok"}\nnot json\n{"sentence": " "}\n')
    assert mixed[0].example == {"text": "ok"} and "invalid JSON" in mixed[1].error and "empty" in mixed[2].error
    assert [r.example["text"] for r in rows(sst, "plain text, with a comma\n")] == ["plain text, with a comma"]
    with pytest.raises(SynthptError, match="plain lines need a one-field task"):
        rows(rte, "just one text\n", fmt="lines")
    with pytest.raises(SynthptError, match="header: no column for field 'text2'"):
        rows(rte, "sentence1,other\na,b\n", "x.csv")


@pytest.mark.parametrize("text", [
    'sentence\tlabel\n"a\tgripping film"\t1\n"dull"\t0\n',  # a quoted field holding a tab
    'sentence\tlabel\n"say ""hi"""\t1\nplain\t0\n',  # doubled inner quotes: a CSV writer's
    'sentence\tlabel\n"quoted" start\t1\nplain\t0\n',  # GLUE-style: the quotes are text
])
def test_a_tsv_reads_the_same_for_training_and_for_predict(tmp_path, text):
    """``load_file`` and ``predict``'s row reader decide a TSV's quoting in one place."""
    from synthpt.data import load_file
    from synthpt.data.rows import read_rows

    sst = get_task("sst-2")
    path = tmp_path / "rows.tsv"
    path.write_text(text, encoding="utf-8")
    trained = [ex["text"] for ex in load_file(path, sst)]
    with open(path, encoding="utf-8", newline="") as fh:
        predicted = [r.example["text"] for r in read_rows(sst, fh, str(path))]
    assert predicted == trained and len(trained) == 2
