"""Saving and loading, in one room: what every stage writes and how it is read back.

- **The soft prompt P** of Stage 3 as a PEFT prompt-tuning adapter (``adapter_config.json`` +
  ``adapter_model.safetensors`` with one tensor ``prompt_embeddings``), so
  ``peft.PeftModel.from_pretrained(base, path)`` loads a synthpt prompt as is.  For T5 we write
  ``num_transformer_submodules: 1``: the prompt goes before the encoder input only, which is what
  synthpt trains (PEFT's seq2seq default of 2 would add a decoder prompt).
- **A tuned generator's label prompts Q and weight net W** (``prompts.safetensors``, one tensor
  ``prompt/<label>`` per label; ``weight_net.safetensors``).
- **Run records** (``metrics.json``, ``generator.json``, a generation's report) and the one
  "already finished with this configuration?" check every resumable stage makes: :func:`already_done`.
- **Resumable JSONL outputs** written in rounds (Stage 2): :class:`ResumableJsonl`.
- Checkpoints of the training loops: :mod:`synthpt.core.checkpointing`; task specs:
  ``Task.to_dict`` / ``Task.from_dict`` / ``load_task_spec`` in :mod:`synthpt.tasks`.

Every write is atomic (:mod:`synthpt.core.io`): a kill leaves the old file or the new one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from synthpt.core.errors import fail
from synthpt.core.io import (
    append_jsonl,
    atomic_save_safetensors,
    atomic_write_text,
    load_safetensors,
    read_json_object,
    read_jsonl,
    write_json,
)
from synthpt.core.models import Backbone

ADAPTER_CONFIG, ADAPTER_WEIGHTS = "adapter_config.json", "adapter_model.safetensors"


# ---- the soft prompt P as a PEFT adapter ---------------------------------------------------
def save_peft_prompt(out_dir: str | Path, prompt: torch.Tensor, backbone: Backbone, extra: dict | None = None) -> None:
    """Write a PEFT prompt-tuning adapter for ``backbone`` (atomic per file; weights first, so a
    folder with a config always has its weights)."""
    from peft import PromptTuningConfig, TaskType

    out = Path(out_dir)
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
    atomic_save_safetensors(out / ADAPTER_WEIGHTS, {"prompt_embeddings": prompt.float()})  # (n, d)
    atomic_write_text(out / ADAPTER_CONFIG, json.dumps(d, indent=2, default=str) + "\n")


def load_peft_prompt(path: str | Path) -> tuple[torch.Tensor, dict]:
    """Read back (prompt (n, d), adapter_config) from a PEFT prompt-tuning folder."""
    p = Path(path)
    cfg_file, weights = p / ADAPTER_CONFIG, p / ADAPTER_WEIGHTS
    if not cfg_file.is_file() or not weights.is_file():
        raise fail(f"{p}: not a prompt adapter (needs {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS})")
    cfg = read_json_object(cfg_file, "not valid JSON")
    if cfg.get("peft_type") != "PROMPT_TUNING":
        raise fail(f"{cfg_file}: peft_type is {cfg.get('peft_type')!r}, expected PROMPT_TUNING")
    tensors = load_safetensors(weights)
    if "prompt_embeddings" not in tensors:
        raise fail(f"{weights}: has no 'prompt_embeddings' tensor")
    prompt = tensors["prompt_embeddings"][: int(cfg.get("num_virtual_tokens", 0)) or None]  # (n, d)
    if prompt.dim() != 2 or not prompt.is_floating_point():
        raise fail(f"{weights}: 'prompt_embeddings' must be a 2-d float tensor, got {prompt.dtype} {list(prompt.shape)}")
    if not torch.isfinite(prompt).all():
        raise fail(f"{weights}: prompt has non-finite values (NaN or inf); the run that wrote it diverged")
    return prompt, cfg


def check_prompt_fits(prompt: torch.Tensor, backbone: Backbone, where: str) -> None:
    if prompt.shape[-1] != backbone.hidden_size:
        raise fail(f"{where}: prompt has width {prompt.shape[-1]} but model {backbone.name_or_path} "
                   f"has hidden size {backbone.hidden_size} (saved for another backbone?)")


# ---- a tuned generator's label prompts Q and weight net W ----------------------------------
LABEL_PROMPTS, WEIGHT_NET = "prompts.safetensors", "weight_net.safetensors"


def save_label_prompts(out: str | Path, labels: Sequence[str], prompts: torch.Tensor,
                       weight_net: dict[str, torch.Tensor] | None = None) -> None:
    """``prompts`` (L, n, d), one per label in ``labels`` order; ``weight_net``: W's state dict, if any."""
    out = Path(out)
    tensors = {f"prompt/{lab}": prompts[li].float() for li, lab in enumerate(labels)}  # each (n, d)
    atomic_save_safetensors(out / LABEL_PROMPTS, tensors, metadata={"labels": json.dumps(list(labels))})
    if weight_net is not None:
        atomic_save_safetensors(out / WEIGHT_NET, {k: v.float() for k, v in weight_net.items()})


def load_label_prompts(gen_dir: str | Path, labels: Sequence[str]) -> torch.Tensor:
    """(L, n, d) label prompts in ``labels`` order."""
    path = Path(gen_dir) / LABEL_PROMPTS
    if not path.is_file():
        raise fail(f"{path}: not found; tune a generator first (synthpt generator tune)")
    t = load_safetensors(path)
    missing = [lab for lab in labels if f"prompt/{lab}" not in t]
    if missing:
        raise fail(f"{path}: has no prompt for labels {missing}")
    return torch.stack([t[f"prompt/{lab}"] for lab in labels])


# ---- run records: "already finished with this configuration?" ------------------------------
def read_record(path: Path, required: Sequence[str], what: str, hint: str) -> dict[str, Any]:
    """A JSON record that must hold the ``required`` keys; one line naming the missing ones otherwise."""
    rec = read_json_object(path, what, hint)
    missing = [k for k in required if k not in rec]
    if missing:
        raise fail(f"{path}: {what} (missing {', '.join(missing)}); {hint}")
    return rec


def already_done(record: Path, key: str, where: Path, what: str, restart: bool = False, resumable: bool = False,
                 read: Callable[[Path], dict[str, Any]] | None = None) -> dict[str, Any] | None:
    """The record of a finished run made with config hash ``key``, or None: (re)do the work.

    A stage writes ``record`` last, with its ``config_hash``; so a record with this hash means the
    work is done and a rerun returns it.  A record with another hash fails (the folder holds
    ``what``, made another way), unless the run is ``resumable`` (its checkpoint exists and will
    check the configuration itself) or ``restart`` was asked."""
    if restart or not record.is_file():
        return None
    done = (read or (lambda p: read_json_object(p, "unreadable record", "rerun with --restart")))(record)
    if done.get("config_hash") == key:
        return done
    if resumable:
        return None
    raise fail(f"{where}: holds {what} with another configuration; use --restart or another --out")


def sidecar(out: Path, suffix: str) -> Path:
    """``out`` + ``suffix`` beside it (``syn.jsonl`` -> ``syn.jsonl.state.json``)."""
    return out.with_name(out.name + suffix)


# ---- a JSONL output written in rounds ---------------------------------------------------------
class ResumableJsonl:
    """A JSONL file that a kill cannot tear: each round's rows are appended with fsync, then the
    state file ``<out>.state.json`` (the caller's state plus ``bytes``, the committed size) is
    replaced atomically.  A rerun cuts the file back to the committed size and carries on."""

    def __init__(self, out: Path, what: str = "unreadable state") -> None:
        self.out, self.state_path, self.what = out, sidecar(out, ".state.json"), what

    def read_state(self, required: Sequence[str] = ("bytes",)) -> dict[str, Any] | None:
        """The committed state (None if there is none)."""
        if not self.state_path.is_file():
            return None
        return read_record(self.state_path, required, self.what, "rerun with --restart")

    def write_state(self, state: dict[str, Any]) -> None:
        write_json(self.state_path, state)

    def rewind(self, state: dict[str, Any]) -> list[dict[str, Any]]:
        """Drop what an interrupted round appended after the committed state; the committed rows."""
        if not self.out.exists():
            return []
        size = self.out.stat().st_size
        if size < state["bytes"]:
            raise fail(f"{self.out}: shorter than its state file records; it was changed by hand. Use --restart")
        if size > state["bytes"]:
            with open(self.out, "r+b") as fh:
                fh.truncate(state["bytes"])
        return read_jsonl(self.out) if state["bytes"] else []

    def commit(self, rows: list[dict[str, Any]], state: dict[str, Any]) -> None:
        """Append ``rows``, then record the new size in the state (main process only)."""
        append_jsonl(self.out, rows)
        state["bytes"] = self.out.stat().st_size if self.out.exists() else 0
        self.write_state(state)

    def finish(self) -> None:
        """The output is complete: make sure it exists and drop the state file."""
        if not self.out.exists():
            self.out.touch()
        self.state_path.unlink(missing_ok=True)
