"""Statistics of a synthetic set against hand computation, and the report beside every set."""

from __future__ import annotations

import json

import pytest

from synthpt.data.synstats import (
    distinct_n,
    exact_overlap,
    histogram,
    length_summary,
    ngram_overlap,
    sample_per_label,
    synthetic_stats,
    words,
)


def test_words_and_distinct_n_by_hand():
    assert words("The film, the FILM!") == ["the", "film", "the", "film"]
    # unigrams: the film the film | a film -> 6 unigrams, 3 distinct (the, film, a)
    assert distinct_n(["The film, the FILM!", "a film"], 1) == pytest.approx(3 / 6)
    # bigrams: (the film) (film the) (the film) | (a film) -> 4 bigrams, 3 distinct
    assert distinct_n(["The film, the FILM!", "a film"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0 and distinct_n([], 1) == 0.0


def test_overlap_by_hand():
    refs = ["A  great movie .", "it was bad and slow to watch"]
    texts = ["a great MOVIE .", "great movie", "it was bad and slow"]
    assert exact_overlap(texts, refs) == pytest.approx(1 / 3)  # only the first, after lower-casing and spaces
    # 2-grams of texts: (a great)(great movie) | (great movie) | (it was)(was bad)(bad and)(and slow) = 7;
    # all 7 occur in refs
    assert ngram_overlap(texts, refs, 2) == pytest.approx(7 / 7)
    # 4-grams: none | none | (it was bad and)(was bad and slow) -> both in refs: 2 / 2
    assert ngram_overlap(texts, refs, 4) == pytest.approx(1.0)
    assert ngram_overlap(["a fresh new sentence here"], refs, 4) == 0.0
    # 3-grams: (a fresh new)(fresh new sentence)(new sentence here)(it was bad) -> 1 of 4 in refs
    assert ngram_overlap(["a fresh new sentence here", "it was bad"], refs, 3) == pytest.approx(1 / 4)


def test_lengths_histogram_and_samples_by_hand():
    assert length_summary([3, 1, 2, 10]) == {"n": 4, "mean": 4.0, "median": 2.5, "min": 1, "max": 10}
    counts, edges = histogram([0, 1, 2, 9, 10], bins=2)
    assert counts == [3, 2] and edges == [0.0, 5.0, 10.0]
    assert histogram([4, 4], bins=3) == ([2], [4.0, 4.0])
    rows = [{"text": f"r{i}", "label": "pos" if i % 2 else "neg"} for i in range(20)]
    a = sample_per_label(rows, ["neg", "pos"], k=5, seed=7)
    assert a == sample_per_label(rows, ["neg", "pos"], k=5, seed=7) != sample_per_label(rows, ["neg", "pos"], 5, 8)
    assert [len(v) for v in a.values()] == [5, 5] and all(r["label"] == "pos" for r in a["pos"])
    assert len(sample_per_label(rows[:3], ["neg", "pos"], k=5)["pos"]) == 1


def test_synthetic_stats_measure_the_generated_field():
    rows = [{"text1": "copied premise", "text2": "new words here", "label": "a"},
            {"text1": "copied premise", "text2": "new words here", "label": "a"},
            {"text1": "copied premise", "text2": "other", "label": "b"}]
    few = [{"text1": "copied premise", "text2": "other", "label": "b"}]
    s = synthetic_stats(rows, few, "text2", ["a", "b"])
    assert s["rows"] == 3 and s["duplicates"] == 1 and s["exact_overlap"] == pytest.approx(1 / 3)
    assert s["distinct_1"] == pytest.approx(4 / 7)  # new words here new words here other
    assert s["per_label"]["a"]["rows"] == 2 and s["per_label"]["b"]["length"]["mean"] == 1.0


def test_report_beside_the_set_with_a_zero_shot_judge(tmp_path, rte_split):
    from synthpt.core.io import write_jsonl
    from synthpt.data import load_split
    from synthpt.experiments.synreport import Judge, report_paths, write_synthetic_report
    from synthpt.tasks import get_task

    task = get_task("rte")
    rows = load_split(rte_split, task)["train"]
    path = tmp_path / "synthetic.jsonl"
    write_jsonl(path, rows)
    s = write_synthetic_report(path, task, rte_split, [Judge("zero-shot", "tiny-t5")], judge_rows=8, seed=1,
                               max_length=96)
    out = report_paths(path)
    assert out["md"].name == "synthetic.report.md" and all(p.is_file() for p in out.values())
    assert s["exact_overlap"] == 1.0 and s["rows"] == 32 and 0 <= s["zero-shot_agreement"] <= 1
    md = out["md"].read_text()
    assert "backbone zero-shot" in md and "Five random rows per label" in md and "synthetic.report.png" in md
    saved = json.loads(out["json"].read_text())
    assert saved["judges"]["zero-shot"]["rows"] == 8
    stamp = out["md"].stat().st_mtime_ns
    assert write_synthetic_report(path, task, rte_split, [Judge("zero-shot", "tiny-t5")], judge_rows=8, seed=1,
                                  max_length=96) == s
    assert out["md"].stat().st_mtime_ns == stamp  # nothing redone


def test_a_judge_scores_the_dev_rows_once_per_split(tmp_path, rte_split, monkeypatch):
    """Two sets of one split, one shared ``dev_scores``: the judge's dev accuracy is computed
    once and both reports carry the same number (what grid_reports relies on)."""
    import synthpt.core.classify as classify
    from synthpt.core.io import write_jsonl
    from synthpt.data import load_split
    from synthpt.experiments.synreport import Judge, write_synthetic_report
    from synthpt.tasks import get_task

    task = get_task("rte")
    rows = load_split(rte_split, task)["train"]
    calls = []
    real = classify.evaluate
    monkeypatch.setattr(classify, "evaluate", lambda *a, **k: calls.append(1) or real(*a, **k))
    dev_scores: dict = {}
    reports = []
    for name, part in (("a", rows[:16]), ("b", rows[16:])):
        path = tmp_path / name / "synthetic.jsonl"
        path.parent.mkdir()
        write_jsonl(path, part)
        write_synthetic_report(path, task, rte_split, [Judge("zero-shot", "tiny-t5")], judge_rows=8, seed=1,
                               max_length=96, dev_scores=dev_scores)
        reports.append(json.loads((path.parent / "synthetic.report.json").read_text())["judges"]["zero-shot"])
    assert len(calls) == 1 and len(dev_scores) == 1
    assert reports[0]["dev_accuracy"] == reports[1]["dev_accuracy"] == next(iter(dev_scores.values()))
    fresh = tmp_path / "c" / "synthetic.jsonl"
    fresh.parent.mkdir()
    write_jsonl(fresh, rows[:16])
    alone = write_synthetic_report(fresh, task, rte_split, [Judge("zero-shot", "tiny-t5")], judge_rows=8, seed=1,
                                   max_length=96)  # no shared dict: scored afresh, the same number
    assert len(calls) == 2
    assert json.loads((fresh.parent / "synthetic.report.json").read_text())["judges"]["zero-shot"][
        "dev_accuracy"] == reports[0]["dev_accuracy"] and alone["rows"] == 16


def test_sets_in_a_shared_cache_get_reports_and_published_files_do_not(tmp_path):
    """``resolve_set``: a set inside ``out`` or inside the cache that ``out/cache`` links to is the run's own
    (its report is written beside it); a file elsewhere (FewGen's published data) is not written next to."""
    from synthpt.experiments.synreport import resolve_set

    shared = tmp_path / "shared-cache"
    (shared / "synthetic" / "s").mkdir(parents=True)
    own = shared / "synthetic" / "s" / "synthetic.jsonl"
    own.write_text("{}\n")
    data = tmp_path / "data"
    data.mkdir()
    published = data / "fewgen.jsonl"
    published.write_text("{}\n")
    out = tmp_path / "runs" / "b"
    out.mkdir(parents=True)
    assert resolve_set(str(own), out) is None  # no link yet: not this run's
    (out / "cache").symlink_to(shared, target_is_directory=True)
    assert resolve_set(str(own), out) == own
    assert resolve_set("cache/synthetic/s/synthetic.jsonl", out) == out / "cache" / "synthetic" / "s" / "synthetic.jsonl"
    assert resolve_set(str(published), out) is None
    assert resolve_set(str(out / "cache" / "missing.jsonl"), out) is None


def test_path_in_out_names_paths_as_a_reader_of_the_output_folder_reaches_them(tmp_path):
    from synthpt.core.io import path_in_out

    shared = tmp_path / "shared-cache"
    (shared / "synthetic" / "s").mkdir(parents=True)
    out = tmp_path / "runs" / "b"
    (out / "cells").mkdir(parents=True)
    assert path_in_out(out / "cells" / "x.json", out) == "cells/x.json"
    assert path_in_out(shared / "synthetic" / "s" / "r.md", out) is None  # not linked yet
    (out / "cache").symlink_to(shared, target_is_directory=True)
    assert path_in_out(shared / "synthetic" / "s" / "r.md", out) == "cache/synthetic/s/r.md"
    assert path_in_out(out / "cache" / "synthetic" / "s" / "r.md", out) == "cache/synthetic/s/r.md"
    assert path_in_out(tmp_path / "data" / "fewgen.json", out) is None
