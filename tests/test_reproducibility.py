"""The same command and seed give the same prompt, metrics and synthetic data, and say what made them."""

from __future__ import annotations

import json

import pytest

from synthpt.cli import main

FEWGEN_RTE = "fewgen-synthetic/RTE/gen-train.json"
VERSIONS = ("synthpt", "torch", "transformers", "peft")


# bitwise claims hold on CPU as is; on CUDA they need deterministic kernels (cli.deterministic_kernels)
pytestmark = pytest.mark.usefixtures("deterministic_kernels")


def test_prompt_tune_twice_is_bitwise_identical(rte_split, data_dir, tmp_path, capsys):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert main(["prompt-tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-t5",
                     "--synthetic", str(data_dir / FEWGEN_RTE), "--strategy", "paired", "--gradient-surgery",
                     "--max-steps", "4", "--eval-every", "2", "--prompt-length", "4", "--max-length", "64",
                     "--max-eval", "20", "--seed", "3", "--out", str(out)]) == 0
    capsys.readouterr()
    a, b = outs
    assert (a / "adapter_model.safetensors").read_bytes() == (b / "adapter_model.safetensors").read_bytes()
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in outs)
    ma.pop("train_seconds"), mb.pop("train_seconds")
    assert ma == mb
    assert (a / "log.jsonl").read_text() == (b / "log.jsonl").read_text()
    cfg = json.loads((a / "config.json").read_text())
    assert all(cfg["versions"].get(k) not in (None, "not installed") for k in VERSIONS), cfg["versions"]
    assert cfg["config"]["train"]["seed"] == 3 and cfg["config"]["train"]["strategy"] == "paired"
    assert cfg["config"]["task"]["name"] == "rte" and cfg["config"]["synthetic"].endswith("gen-train.json")


def test_generator_and_generation_twice_are_identical(rte_split, tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["generator", "tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-gpt2",
                     "--mode", "dawgen", "--max-steps", "2", "--batch-size", "2", "--prompt-length", "4",
                     "--max-length", "32", "--out", str(tmp_path / f"gen-{name}")]) == 0
        assert main(["generate", "--generator", str(tmp_path / f"gen-{name}"), "--out", str(tmp_path / f"{name}.jsonl"),
                     "--n-per-label", "3", "--batch-size", "4", "--max-new-tokens", "6",
                     "--consistency-margin=-inf"]) == 0
    capsys.readouterr()
    for f in ("prompts.safetensors", "weight_net.safetensors"):
        assert (tmp_path / "gen-a" / f).read_bytes() == (tmp_path / "gen-b" / f).read_bytes(), f
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 6
    meta = json.loads((tmp_path / "gen-a" / "generator.json").read_text())
    assert all(meta["versions"].get(k) not in (None, "not installed") for k in VERSIONS), meta["versions"]
    assert meta["config"]["mode"] == "dawgen" and meta["config"]["max_steps"] == 2 and meta["task"]["name"] == "rte"
    report = json.loads((tmp_path / "a.jsonl.report.json").read_text())
    assert report["config"]["n_per_label"] == 3 and report["config"]["seed"] == 42


def test_versions_from_a_source_tree_without_install_metadata(monkeypatch):
    """Run from a checkout on PYTHONPATH (no pip install), a run still records synthpt's version;
    a library that is neither installed nor imported says so."""
    import sys
    from importlib import metadata

    from synthpt import __version__
    from synthpt.core import runinfo

    real = metadata.version

    def no_metadata_for(pkg: str) -> str:
        if pkg in ("synthpt", "datasets"):
            raise metadata.PackageNotFoundError(pkg)
        return real(pkg)

    monkeypatch.setattr(runinfo.metadata, "version", no_metadata_for)
    monkeypatch.delitem(sys.modules, "datasets", raising=False)
    v = runinfo.versions()
    assert v["synthpt"] == f"{__version__} (no install metadata)"
    assert v["datasets"] == "not installed"
    assert v["torch"] == real("torch")
