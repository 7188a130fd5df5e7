"""Tests for synthpt.data: loaders on the real benchmark files, k-shot splits, safe writes."""

from __future__ import annotations

import errno
import json
import os
import sys
import types
from collections import Counter
from pathlib import Path

import pytest

from synthpt.core import io as dio
from synthpt.core.errors import SynthptError
from synthpt.core.io import append_jsonl, atomic_write_text, read_jsonl, write_json, write_jsonl
from synthpt.data import (
    SEEDS,
    keep_agreeing,
    load_file,
    load_hub,
    load_lmbff_kshot,
    load_official,
    load_split,
    make_split,
    sample_heldout,
    sample_kshot,
    shuffle_labels,
    training_pool,
)
from synthpt.tasks import get_task, load_task_spec

# (task, split) -> label counts, from shared/data/SOURCES.md
OFFICIAL = {
    ("mrpc", "test"): {"1": 279, "0": 129},
    ("mrpc", "train"): {"1": 2474, "0": 1194},
    ("rte", "test"): {"entailment": 146, "not_entailment": 131},
    ("rte", "train"): {"entailment": 1249, "not_entailment": 1241},
    ("qnli", "test"): {"entailment": 2702, "not_entailment": 2761},
    ("qnli", "train"): {"entailment": 4523 + 504, "not_entailment": 4476 + 496},
    ("sst-2", "test"): {"1": 444, "0": 428},
    ("sst-2", "train"): {"1": 37569, "0": 29780},
    ("mnli", "test"): {"entailment": 3479, "contradiction": 3213, "neutral": 3123},
    ("mnli", "train"): {"entailment": 3061 + 347, "neutral": 2980 + 333, "contradiction": 2958 + 320},
    ("snli", "test"): {"entailment": 3368, "neutral": 3219, "contradiction": 3237},
    ("snli", "dev"): {"entailment": 3329, "neutral": 3235, "contradiction": 3278},
    ("snli", "train"): {"entailment": 2981 + 346, "neutral": 2994 + 328, "contradiction": 3024 + 326},
    ("qqp", "test"): {"0": 14355, "1": 8501},
    ("qqp", "train"): {"0": 5747 + 623, "1": 3252 + 377},
    ("sick", "train"): {"neutral": 2524, "entailment": 1274, "contradiction": 641},
    ("sick", "dev"): {"neutral": 281, "entailment": 143, "contradiction": 71},
    ("sick", "test"): {"neutral": 2790, "entailment": 1404, "contradiction": 712},
}
LMBFF_TASKS = ("mnli", "mrpc", "qnli", "qqp", "rte", "snli", "sst-2")
FEWGEN = {"MNLI": 15000, "MRPC": 10000, "QNLI": 10000, "QQP": 10000, "RTE": 10000, "SST-2": 10000}


def _canonical(rows: list[dict], task_name: str) -> None:
    task = get_task(task_name)
    for ex in rows:
        assert set(ex) == {*task.fields, "label"}
        assert ex["label"] in task.labels
        for f in task.fields:
            assert isinstance(ex[f], str) and ex[f] and ex[f] == ex[f].strip()


# ---------------------------------------------------------------- official files


@pytest.mark.parametrize(("task", "split"), sorted(OFFICIAL))
def test_load_official_counts(data_dir: Path, task: str, split: str) -> None:
    rows = load_official(task, split, data_dir)
    expected = OFFICIAL[(task, split)]
    assert len(rows) == sum(expected.values())
    assert dict(Counter(ex["label"] for ex in rows)) == expected
    _canonical(rows, task)


def test_official_quirks(data_dir: Path) -> None:
    mrpc = load_official("mrpc", "test", data_dir)[0]  # BOM before 'Quality'; label in column 0
    assert mrpc["label"] == "1" and mrpc["text1"].startswith("He said the foodservice")
    assert mrpc["text2"].startswith('" The foodservice')  # bare quotes kept (QUOTE_NONE)
    snli = load_official("snli", "test", data_dir)[:2]  # int labels 1, 0
    assert [ex["label"] for ex in snli] == ["neutral", "entailment"]
    assert not any(ex["text1"].startswith('"') for ex in load_official("snli", "test", data_dir))
    assert load_official("sst-2", "test", data_dir)[0]["text"].endswith("journey .")  # trailing space gone


def test_official_errors(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(SynthptError, match="data directory not found"):
        load_official("rte", "test", tmp_path / "nope")
    with pytest.raises(SynthptError, match=r"RTE.dev\.tsv: file not found"):
        load_official("rte", "test", tmp_path)
    with pytest.raises(SynthptError, match="no 'dev' split"):
        load_official("rte", "dev", data_dir)


@pytest.mark.parametrize("task", LMBFF_TASKS)
def test_lmbff_kshot_all_seeds(data_dir: Path, task: str) -> None:
    t = get_task(task)
    for seed in SEEDS:
        split = load_lmbff_kshot(task, 16, seed, data_dir)
        assert split is not None
        train, dev = split
        for rows in (train, dev):
            _canonical(rows, task)
            assert Counter(ex["label"] for ex in rows) == dict.fromkeys(t.labels, 16)
        assert not {tuple(ex.values()) for ex in train} & {tuple(ex.values()) for ex in dev}


def test_lmbff_absent(data_dir: Path) -> None:
    assert load_lmbff_kshot("sick", 16, 42, data_dir) is None
    assert load_lmbff_kshot("rte", 8, 42, data_dir) is None


@pytest.mark.parametrize(("name", "n"), sorted(FEWGEN.items()))
def test_load_fewgen_synthetic(data_dir: Path, name: str, n: int) -> None:
    task = get_task(name)
    rows = load_file(data_dir / "fewgen-synthetic" / name / "gen-train.json", task)
    assert len(rows) == n
    assert set(Counter(ex["label"] for ex in rows).values()) == {5000}
    _canonical(rows, task.name)


def test_load_file_reads_official_formats(data_dir: Path) -> None:
    """Auto-detection: quoted SNLI export, unquoted GLUE TSV, JSON pool, LM-BFF long rows."""
    assert load_file(data_dir / "SNLI/test.tsv", "snli") == load_official("snli", "test", data_dir)
    assert load_file(data_dir / "MRPC/dev.tsv", "mrpc") == load_official("mrpc", "test", data_dir)
    assert len(load_file(data_dir / "QNLI/train_subset_1k.json", "qnli")) == 1000
    assert len(load_file(data_dir / "k-shot/SNLI/16-13/dev.tsv", "snli")) == 48


# ---------------------------------------------------------------- sampling


def _pool(n_per_label: int, labels: tuple[str, ...] = ("entailment", "not_entailment")) -> list[dict]:
    return [{"text1": f"p{lab}{i}", "text2": f"h{i}", "label": lab} for lab in labels for i in range(n_per_label)]


def test_sample_kshot_properties() -> None:
    pool = _pool(50)
    train, dev = sample_kshot(pool, "rte", 8, 13)
    assert (train, dev) == sample_kshot(pool, "rte", 8, 13)
    assert Counter(ex["label"] for ex in train) == {"entailment": 8, "not_entailment": 8}
    assert Counter(ex["label"] for ex in dev) == {"entailment": 8, "not_entailment": 8}
    assert not {ex["text1"] for ex in train} & {ex["text1"] for ex in dev}
    assert sample_kshot(pool, "rte", 8, 21)[0] != train
    assert sample_kshot(pool, "rte", 25, 13)  # exactly 2k per class is enough


def test_sample_kshot_errors() -> None:
    with pytest.raises(SynthptError, match="k must be a positive integer"):
        sample_kshot(_pool(10), "rte", 0, 13, source="pool.csv")
    with pytest.raises(SynthptError, match=r"pool\.csv: label 'entailment' has only 10 examples, need 12"):
        sample_kshot(_pool(10), "rte", 6, 13, source="pool.csv")


def test_make_split_lmbff(tmp_path: Path, data_dir: Path) -> None:
    out = tmp_path / "rte-16-42"
    meta = make_split("rte", 16, 42, data_dir, out)
    assert meta["source"] == "lmbff" and meta["counts"] == {"train": 32, "dev": 32, "test": 277}
    assert json.loads((out / "split.json").read_text()) == meta
    split = load_split(out, "rte")
    assert (split["train"], split["dev"]) == load_lmbff_kshot("rte", 16, 42, data_dir)
    assert split["test"] == load_official("rte", "test", data_dir)
    assert make_split("rte", 8, 42, data_dir, tmp_path / "rte8")["source"] == "sampled"


def test_make_split_sick_samples(tmp_path: Path, data_dir: Path) -> None:
    meta = make_split("sick", 16, 13, data_dir, tmp_path / "sick")
    assert meta["source"] == "sampled"
    assert meta["counts"] == {"train": 48, "dev": 48, "test": 4906}
    assert meta["train_labels"] == {"contradiction": 16, "entailment": 16, "neutral": 16}
    again = make_split("sick", 16, 13, data_dir, tmp_path / "sick2")
    assert again == meta
    assert (tmp_path / "sick/train.jsonl").read_bytes() == (tmp_path / "sick2/train.jsonl").read_bytes()


def test_make_split_user_task(tmp_path: Path) -> None:
    rows = [{"review": f"text {i}", "label": lab} for lab in ("bad", "good") for i in range(10)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:4])
    spec = {"name": "reviews", "fields": ["review"], "labels": ["bad", "good"],
            "label_words": {"bad": "bad", "good": "good"}, "template": "{review} It was{mask}",
            "files": {"train": "train.jsonl", "test": "test.jsonl"}}
    write_json(tmp_path / "task.json", spec)
    task = load_task_spec(tmp_path / "task.json")
    meta = make_split(task, 4, 13, None, tmp_path / "split")
    assert meta["counts"] == {"train": 8, "dev": 8, "test": 4}
    assert load_split(tmp_path / "split", task)["train"][0].keys() == {"review", "label"}
    assert task.gen_template_for("good") == "" and task.gen_templates == {}
    spec["gen_template"], spec["gen_templates"] = "Review:", {"good": "Glowing review:"}
    write_json(tmp_path / "task2.json", spec)
    task2 = load_task_spec(tmp_path / "task2.json")
    assert [task2.gen_template_for(lab) for lab in ("bad", "good", None)] == ["Review:", "Glowing review:", "Review:"]
    assert task2.to_dict()["gen_templates"] == {"good": "Glowing review:"} and "gen_templates" not in task.to_dict()


def test_a_task_record_reads_back() -> None:
    """An adapter's task record gives the built-in task itself while it is unchanged, else a copy."""
    from synthpt.tasks import BUILTIN_TASKS, task_from_record, task_record

    for task in BUILTIN_TASKS.values():
        assert task_from_record(task_record(task), "rec") is task
    changed = {**task_record(get_task("rte")), "template": "{text1} ? {mask} , {text2}"}
    back = task_from_record(changed, "rec")
    assert back is not get_task("rte") and back.template == changed["template"]
    assert back.field_names == get_task("rte").field_names


def test_split_errors(tmp_path: Path, data_dir: Path) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("x")
    with pytest.raises(SynthptError, match="taken: exists and is a file"):
        make_split("rte", 16, 42, data_dir, blocker)
    with pytest.raises(SynthptError, match=r"train_subset_9k\.json.*label '\w+' has only \d+ examples, need 4000"):
        make_split("snli", 2000, 13, data_dir, tmp_path / "big")
    with pytest.raises(SynthptError, match="nowhere: split directory not found"):
        load_split(tmp_path / "nowhere", "rte")
    (tmp_path / "part").mkdir()
    write_jsonl(tmp_path / "part/train.jsonl", _pool(1))
    with pytest.raises(SynthptError, match=r"dev\.jsonl: file not found"):
        load_split(tmp_path / "part", "rte")


# ---------------------------------------------------------------- load_file: formats and bad input


def test_load_file_aliases_and_labels(tmp_path: Path) -> None:
    p = tmp_path / "nli.csv"
    p.write_text('premise,hypothesis,gold_label\n"A man, tall","He said ""hi""",ENTAILMENT\n'
                 "a,b,2\nc,d,Maybe\n", encoding="utf-8")
    rows = load_file(p, "sick")
    assert rows[0] == {"text1": "A man, tall", "text2": 'He said "hi"', "label": "entailment"}
    assert [ex["label"] for ex in rows[1:]] == ["contradiction", "neutral"]
    j = tmp_path / "pairs.jsonl"
    j.write_text('{"sentence1": "x", "sentence2": "y", "label": "Yes"}\n\n{"sentence1": "u", "sentence2": " "}\n')
    with pytest.raises(SynthptError, match=r"pairs\.jsonl: row 2 \(line 3\): field 'text2' .* empty or missing"):
        load_file(j, "mrpc")
    j.write_text('{"sentence1": "x", "sentence2": "y", "label": "Yes", "idx": 3}\n')
    assert load_file(j, "mrpc") == [{"text1": "x", "text2": "y", "label": "1"}]


BAD_INPUTS = [
    ("empty.csv", b"", "file is empty"),
    ("header.csv", b"text1,text2,label\n", "header only"),
    ("nocol.csv", b"text1,label\na,entailment\n", "no column for field 'text2'"),
    ("nolabel.csv", b"text1,text2\na,b\n", "no label column"),
    ("unknown.csv", b"text1,text2,label\na,b,entailment\na,b,maybe\n", "row 2 .*label 'maybe' is not one of"),
    ("range.csv", b"text1,text2,label\na,b,2\n", "row 1 .*numeric label '2' out of range 0..1"),
    ("nan.csv", b"text1,text2,label\nNaN,b,0\n", "row 1 .*field 'text1' .*empty or missing"),
    ("blank.csv", b"text1,text2,label\na,  ,0\n", "row 1 .*field 'text2'"),
    ("latin1.csv", b"text1,text2,label\na,caf\xe9,0\n", r"not UTF-8 text \(byte 0xe9 at line 2\)"),
    ("tabs.csv", b"text1\ttext2\tlabel\na\tb\t0\n", "only one column found"),
    ("short.tsv", b"text1\ttext2\tlabel\na\tb\n", "row 1 .*2 fields, header has 3"),
    ("nan.json", b'[{"text1": NaN, "text2": "b", "label": 0}]', r"row 1: field 'text1'"),
    ("badlabel.json", b'{"0": {"text1": "a", "text2": "b", "label": 7}}', "numeric label 7 out of range"),
    ("empty.json", b"[]", "no rows"),
    ("broken.jsonl", b'{"text1": "a"}\n{"text1": \n', r"line 2: invalid JSON"),
    ("scalar.jsonl", b'{"text1": "a", "text2": "b", "label": 0}\n[1]\n', "line 2: expected a JSON object"),
    ("rows.xlsx", b"x", "unsupported file type"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_INPUTS)
def test_load_file_bad_inputs(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SynthptError, match=message) as info:
        load_file(p, "mrpc" if "range" in name or "badlabel" in name else "rte")
    assert name in str(info.value)


def test_load_file_missing(tmp_path: Path) -> None:
    with pytest.raises(SynthptError, match=r"gone\.csv: file not found"):
        load_file(tmp_path / "gone.csv", "rte")


# ---------------------------------------------------------------- io


def test_jsonl_roundtrip_and_append(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "rows.jsonl"
    write_jsonl(p, [{"a": "é"}])
    append_jsonl(p, [{"a": 2}, {"a": 3}])
    assert read_jsonl(p) == [{"a": "é"}, {"a": 2}, {"a": 3}]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(SynthptError, match=r"empty\.jsonl: file is empty"):
        read_jsonl(empty)


def test_atomic_write_disk_full_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "results.json"
    write_json(p, {"acc": 1})
    mode = p.stat().st_mode

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(dio.os, "fsync", full)
    with pytest.raises(SynthptError, match=r"results\.json: cannot write file \(No space left"):
        atomic_write_text(p, "new")
    with pytest.raises(SynthptError, match=r"results\.json: cannot append"):
        append_jsonl(p, [{"x": 1}])
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"acc": 1}  # old content intact, append rolled back
    assert p.stat().st_mode == mode
    assert sorted(x.name for x in tmp_path.iterdir()) == ["results.json"]  # no temp files left


def test_load_hub_maps_columns_without_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for ``datasets``: Hub rows with label -1 (no gold label) are dropped."""

    class FakeSplit(list):
        column_names = ["premise", "hypothesis", "label"]

    rows = [{"premise": "a", "hypothesis": "b", "label": 2}, {"premise": "c", "hypothesis": "d", "label": -1}]
    fake = types.SimpleNamespace(load_dataset=lambda name, config, split: FakeSplit(rows))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    assert load_hub("snli", "snli", "test") == [{"text1": "a", "text2": "b", "label": "contradiction"}]


# ---------------------------------------------------------------- held-out gold rows (the oracle)


def test_sample_heldout_skips_the_split_and_is_balanced(data_dir: Path, tmp_path: Path) -> None:
    task = get_task("rte")
    make_split(task, 16, 42, data_dir, tmp_path / "split")
    split = load_split(tmp_path / "split", task)
    pool = training_pool(task, data_dir)
    used = split["train"] + split["dev"]
    rows = sample_heldout(pool, task, 20, 42, exclude=used)
    assert Counter(ex["label"] for ex in rows) == {"entailment": 20, "not_entailment": 20}
    key = lambda ex: (ex["text1"], ex["text2"])  # noqa: E731
    assert len({key(ex) for ex in rows}) == 40  # no row twice
    assert not {key(ex) for ex in rows} & {key(ex) for ex in used}  # never the few-shot rows
    assert all(key(ex) in {key(p) for p in pool} for ex in rows)  # real, gold-labelled rows
    assert rows == sample_heldout(pool, task, 20, 42, exclude=used)  # deterministic per seed
    assert rows != sample_heldout(pool, task, 20, 13, exclude=used)


def test_shuffle_labels_keeps_texts_and_counts_and_breaks_the_pairing() -> None:
    """The oracle's control: texts in order, each label's count kept, labels independent of texts."""
    rows = [{"text": f"t{i}", "label": "1" if i % 4 == 0 else "0", "extra": i} for i in range(400)]
    before = [dict(r) for r in rows]
    out = shuffle_labels(rows, 42)
    assert rows == before  # the input is not modified
    assert [r["text"] for r in out] == [r["text"] for r in rows] and [r["extra"] for r in out] == list(range(400))
    assert Counter(r["label"] for r in out) == Counter(r["label"] for r in rows) == {"0": 300, "1": 100}
    # a label of a "1" row is now "1" with the base rate (1/4), not always: 100 draws, 25 expected
    kept = sum(a["label"] == b["label"] == "1" for a, b in zip(rows, out))
    assert 10 <= kept <= 40
    assert out == shuffle_labels(rows, 42) and out != shuffle_labels(rows, 13)  # seeded


def test_keep_agreeing_keeps_agreeing_rows_balanced_in_order() -> None:
    """By hand: a agrees on rows 0, 2, 5; b on row 4 only, so one row per label is kept."""
    rows = [{"text": f"t{i}", "label": lab} for i, lab in enumerate("aaabba")]
    predicted = list("abaaba")

    def a_row(seed: int) -> str:
        out = keep_agreeing(rows, predicted, seed)
        assert len(out) == 2 and rows[4] in out and out == sorted(out, key=lambda r: int(r["text"][1:]))
        return next(r["text"] for r in out if r["label"] == "a")

    assert a_row(7) == a_row(7) and {a_row(s) for s in range(20)} == {"t0", "t2", "t5"}  # a seeded draw
    all_agree = keep_agreeing(rows, list("aaabba"), 7)  # a: 4 agree, b: 2 -> two of each
    assert [r["label"] for r in all_agree].count("a") == 2 and [r for r in all_agree if r["label"] == "b"] == rows[3:5]
    assert keep_agreeing(rows, list("aaaaaa"), 7) == []  # b never agrees: nothing balanced is left
    with pytest.raises(ValueError, match="5 predictions for 6 rows"):
        keep_agreeing(rows, list("aaaaa"), 7)


def test_sample_heldout_errors() -> None:
    rows = [{"text1": f"p{i}", "text2": "h", "label": lab} for i, lab in enumerate(["entailment"] * 3 + ["not_entailment"] * 5)]
    out = sample_heldout(rows + rows[1:2], "rte", 2, 1, exclude=[dict(rows[0])])
    # the two entailment rows left after the exclusion, each once though the pool repeats one
    assert sorted(ex["text1"] for ex in out if ex["label"] == "entailment") == ["p1", "p2"]
    with pytest.raises(SynthptError, match=r"label 'entailment' has 2 rows outside the split, need 3"):
        sample_heldout(rows, "rte", 3, 1, exclude=rows[:1])
    with pytest.raises(SynthptError, match="positive integer"):
        sample_heldout(rows, "rte", 0, 1, exclude=[])
    with pytest.raises(SynthptError, match="no data directory"):
        training_pool("rte", None)


def test_task_spec_with_a_bom_loads_and_a_latin1_one_says_where(tmp_path: Path) -> None:
    """Editors on Windows save UTF-8 with a BOM; ``load_task_spec`` reads it like every other input."""
    spec = ("name: reviews\nfields: [review]\nlabels: [bad, good]\nlabel_words: {bad: bad, good: good}\n"
            "template: '{review} It was{mask}'\n")
    (tmp_path / "bom.yaml").write_bytes(b"\xef\xbb\xbf" + spec.encode())
    assert load_task_spec(tmp_path / "bom.yaml").name == "reviews"
    (tmp_path / "latin1.yaml").write_bytes(spec.replace("It was", "C'\xe9tait").encode("latin-1"))
    with pytest.raises(SynthptError, match=r"latin1\.yaml: not UTF-8 text \(byte 0xe9 at line 5\)"):
        load_task_spec(tmp_path / "latin1.yaml")
