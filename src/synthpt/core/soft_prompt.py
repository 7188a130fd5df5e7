"""The soft prompt P: ``n`` trainable vectors before the input of a frozen LM.

Stored the way PEFT stores prompt tuning (``adapter_config.json`` +
``adapter_model.safetensors`` with one tensor ``prompt_embeddings``), so
``peft.PeftModel.from_pretrained(base, path)`` loads a synthpt prompt as is.  For T5 we
write ``num_transformer_submodules: 1``: the prompt goes before the encoder input only,
which is what synthpt trains (PEFT's seq2seq default of 2 would add a decoder prompt).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from synthpt.core.errors import fail, first_line
from synthpt.core.io import atomic_write_bytes
from synthpt.core.models import Backbone


def init_from_vocab(backbone: Backbone, length: int, seed: int, top_k: int = 5000) -> torch.Tensor:
    """``length`` embeddings of random tokens among the first ``top_k`` ids (Lester et al.).

    Real-token vectors start the prompt inside the region of embedding space the frozen
    model knows, which trains far more stably than random Gaussian vectors."""
    if length < 1:
        raise fail(f"prompt length must be at least 1, got {length}")
    table = backbone.model.get_input_embeddings().weight
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, min(top_k, table.shape[0]), (length,), generator=gen)
    return table.detach()[ids.to(table.device)].clone().float()


def save_peft_prompt(out_dir: str | Path, prompt: torch.Tensor, backbone: Backbone, extra: dict | None = None) -> None:
    """Write a PEFT prompt-tuning adapter for ``backbone`` (atomic per file)."""
    from peft import PromptTuningConfig, TaskType

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = PromptTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM if backbone.is_seq2seq else TaskType.CAUSAL_LM,
        num_virtual_tokens=int(prompt.shape[0]),
        token_dim=int(prompt.shape[1]),
        num_transformer_submodules=1,
        num_attention_heads=getattr(backbone.model.config, "num_attention_heads", None)
        or getattr(backbone.model.config, "num_heads", None),
        num_layers=getattr(backbone.model.config, "num_hidden_layers", None)
        or getattr(backbone.model.config, "num_layers", None),
        base_model_name_or_path=backbone.name_or_path,
    )
    d = cfg.to_dict()
    for k, v in list(d.items()):
        if isinstance(v, set):
            d[k] = sorted(v)
        elif hasattr(v, "value"):
            d[k] = v.value
    if extra:
        d["synthpt"] = extra
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".safetensors", dir=out, delete=False) as f:
        tmp = Path(f.name)
    try:
        save_file({"prompt_embeddings": prompt.detach().float().cpu().contiguous()}, str(tmp))
        atomic_write_bytes(out / "adapter_model.safetensors", tmp.read_bytes())
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_bytes(out / "adapter_config.json", (json.dumps(d, indent=2, default=str) + "\n").encode())


def load_peft_prompt(path: str | Path) -> tuple[torch.Tensor, dict]:
    """Read back (prompt, adapter_config) from a PEFT prompt-tuning folder."""
    p = Path(path)
    cfg_file, weights = p / "adapter_config.json", p / "adapter_model.safetensors"
    if not cfg_file.is_file() or not weights.is_file():
        raise fail(f"{p}: not a prompt adapter (needs adapter_config.json and adapter_model.safetensors)")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise fail(f"{cfg_file}: not valid JSON ({e})") from None
    if cfg.get("peft_type") != "PROMPT_TUNING":
        raise fail(f"{cfg_file}: peft_type is {cfg.get('peft_type')!r}, expected PROMPT_TUNING")
    try:
        tensors = load_file(str(weights))
    except Exception as e:  # safetensors raises several error types for torn files
        raise fail(f"{weights}: corrupt safetensors file ({first_line(e)})") from None
    if "prompt_embeddings" not in tensors:
        raise fail(f"{weights}: has no 'prompt_embeddings' tensor")
    prompt = tensors["prompt_embeddings"][: int(cfg.get("num_virtual_tokens", 0)) or None]
    if prompt.dim() != 2 or not prompt.is_floating_point():
        raise fail(f"{weights}: 'prompt_embeddings' must be a 2-d float tensor, got {prompt.dtype} {list(prompt.shape)}")
    if not torch.isfinite(prompt).all():
        raise fail(f"{weights}: prompt has non-finite values (NaN or inf); the run that wrote it diverged")
    return prompt, cfg


def check_prompt_fits(prompt: torch.Tensor, backbone: Backbone, where: str) -> None:
    if prompt.shape[-1] != backbone.hidden_size:
        raise fail(f"{where}: prompt has width {prompt.shape[-1]} but model {backbone.name_or_path} "
                   f"has hidden size {backbone.hidden_size} (saved for another backbone?)")
