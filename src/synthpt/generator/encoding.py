"""How the generator reads an example: [Q_l ; hard context] -> generated field.

The generated field is the task's last field (``text2`` for pairs: the generator writes the
second text given the first; ``text`` for single-sentence tasks).  The hard context is the
task's generator template for the example's label (``gen_templates[label]``, else
``gen_template``) with the other fields filled in (e.g. ``"Sentence 1: {text1}\\nSentence 2:"``).
Scoring an example under another label's prompt reads it with that label's context too.

- causal LMs see ``[Q_l ; BOS ; context ; target]`` in one sequence (right padding in training);
  BOS only where the tokenizer starts every text with one (Gemma, Llama; not SmolLM2 or GPT-2):
  such a model never saw text without it and degenerates without it (issue 23: Gemma wrote
  "the the the ...").  It goes after the soft prompt, where PEFT puts a prompt before the input ids;
- seq2seq LMs (T5) get ``[Q_l ; context ; EOS]`` in the encoder and write the target in the
  decoder.

:func:`score_targets` is the one forward every DawGen term uses: per-token log-likelihoods
of the target, the hidden state each target token is predicted from (what the weight net
reads), and the target mask.  Rows may carry different prompts (``(R, n, d)``), which is how
one batched forward scores every example under every label's prompt.  Only target
positions go through the LM head (it matters for 50k-word vocabularies).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from synthpt.core.errors import fail
from synthpt.core.models import Backbone
from synthpt.core.scoring import _special_affixes, pad_right
from synthpt.tasks import Task


def generated_field(task: Task) -> str:
    return task.fields[-1]


@dataclass
class GenEncoder:
    """Token ids of (context, target) for one backbone, with field-only truncation."""

    task: Task
    backbone: Backbone
    max_length: int
    prompt_length: int

    def __post_init__(self) -> None:
        from synthpt.core.scoring import clamp_to_model

        tok = self.backbone.tokenizer
        self.max_length = clamp_to_model(self.backbone, self.max_length)
        self.field = generated_field(self.task)
        self.eos = tok.eos_token_id
        if self.eos is None:
            raise fail(f"{self.backbone.name_or_path}: tokenizer has no EOS token; the generator needs one to stop")
        # an empty context is allowed (the prompt alone conditions the text)
        self.pieces = self._parse(self.task.gen_template)
        self.label_pieces = {lab: self._parse(self.task.gen_template_for(lab)) for lab in self.task.labels}
        self.max_target = max(4, self.max_length // 2)
        # what the tokenizer puts before every text (BOS), as Stage 3's Encoder.prefix finds it
        self.bos = [] if self.backbone.is_seq2seq else _special_affixes(tok)[0]
        if self.prompt_length + 8 > self.max_length:
            raise fail(f"--max-length {self.max_length} leaves no room after a {self.prompt_length}-token prompt")

    def _parse(self, template: str) -> list[tuple[str, str, str]]:
        """(kind, value, lead) pieces; spaces before a field move into it, so BPE sees " word" as in running text."""
        pieces: list[tuple[str, str, str]] = []
        for literal, name, _, _ in string.Formatter().parse(template):
            lead = ""
            if name is not None and literal.endswith(" "):
                lead = literal[len(literal.rstrip(" ")):]
                literal = literal.rstrip(" ")
            if literal:
                pieces.append(("text", literal, ""))
            if name is not None:
                if name == self.field or name not in self.task.fields:
                    raise fail(f"task {self.task.name}: gen_template may only use the conditioning fields "
                               f"{list(self.task.fields[:-1])}, not {{{name}}}")
                pieces.append(("field", name, lead))
        return pieces

    def _ids(self, text: str) -> list[int]:
        return self.backbone.tokenizer(text, add_special_tokens=False)["input_ids"]

    def target(self, text: str) -> list[int]:
        """Target ids: the field's text (leading space for causal LMs, as in running text) + EOS."""
        lead = "" if self.backbone.is_seq2seq else " "
        return self._ids(lead + text.strip())[: self.max_target - 1] + [self.eos]

    def context(self, example: dict[str, Any], target_len: int | None = None, label: str | None = None) -> list[int]:
        """Context ids under ``label``'s template (default: the example's own label, if it has one);
        conditioning fields are truncated (longest first) so everything fits."""
        pieces = self.label_pieces.get(example.get("label") if label is None else label, self.pieces)
        parts = [(kind, self._ids(value if kind == "text" else lead + str(example[value]).strip()))
                 for kind, value, lead in pieces]
        extra = 1 if self.backbone.is_seq2seq else (target_len if target_len is not None else self.max_target)
        budget = self.max_length - self.prompt_length - extra - len(self.bos)
        total = sum(len(p) for _, p in parts)
        while total > budget:
            i = max((j for j, (k, p) in enumerate(parts) if k == "field" and p), key=lambda j: len(parts[j][1]),
                    default=None)
            if i is None:
                break
            cut = min(len(parts[i][1]), total - budget)
            parts[i] = ("field", parts[i][1][: len(parts[i][1]) - cut])
            total -= cut
        ids = self.bos + [t for _, p in parts for t in p]
        if self.backbone.is_seq2seq:
            ids = ids + [self.eos]
        return ids

    def encode(self, example: dict[str, Any], label: str | None = None) -> tuple[list[int], list[int]]:
        """(context, target) ids, read as ``label`` (default: the example's own label)."""
        tgt = self.target(str(example[self.field]))
        return self.context(example, len(tgt), label), tgt


def upcast(x: torch.Tensor) -> torch.Tensor:
    """float32 for half-precision models; float64 stays (finite-difference tests run in it)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


@dataclass
class Scored:
    token_logp: torch.Tensor  # (R, T) log p(x_j | x_<j; prompt_r) at target positions (0 at padding)
    hidden: torch.Tensor  # (R, T, d) the state each target token is predicted from
    mask: torch.Tensor  # (R, T) valid target tokens


def score_targets(bb: Backbone, context_ids: list[list[int]], tgt: list[list[int]], prompts: torch.Tensor) -> Scored:
    """One forward of R rows; row r uses ``prompts[r]`` (R, n, d) before its context."""
    if bb.is_seq2seq:
        return _score_seq2seq(bb, context_ids, tgt, prompts)
    return _score_causal(bb, context_ids, tgt, prompts)


def label_loglik(bb: Backbone, enc: GenEncoder, task: Task, prompts: torch.Tensor, rows: list[dict[str, Any]],
                 chunk: int | None = None) -> torch.Tensor:
    """(R, L) mean token log-likelihood of each row's generated field read as each label: under that
    label's prompt ``prompts[l]`` (L, n, d) and context, in forwards of ``chunk`` rows x L (all at once
    if None).  Step 2's consistency filter and the label-prompt probe both ask this question."""
    L = task.num_labels
    out = []
    step = chunk or max(1, len(rows))
    for start in range(0, len(rows), step):
        part = rows[start:start + step]
        enc_rows = [enc.encode(r, lab) for r in part for lab in task.labels]  # row = i·L + l
        s = score_targets(bb, [c for c, _ in enc_rows], [t for _, t in enc_rows], prompts.repeat(len(part), 1, 1))
        out.append((s.token_logp.sum(1) / s.mask.sum(1).clamp(min=1)).view(len(part), L))
    return torch.cat(out) if out else torch.empty(0, L)


def own_margin(mean_ll: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """(R,) ``mean_ll[i, own[i]]`` minus the best other label's: > 0 when the own label explains row i best."""
    own_lp = mean_ll.gather(1, own.view(-1, 1)).squeeze(1)
    other = mean_ll.masked_fill(F.one_hot(own, mean_ll.shape[1]).bool(), float("-inf")).max(1).values
    return own_lp - other


def _score_causal(bb: Backbone, context_ids: list[list[int]], tgt: list[list[int]], prompts: torch.Tensor) -> Scored:
    dev = bb.device
    n = prompts.shape[1]
    pad = bb.tokenizer.pad_token_id
    ids, mask = pad_right([c + t for c, t in zip(context_ids, tgt)], pad)
    ids, mask = ids.to(dev), mask.to(dev)
    embeds = torch.cat([prompts.to(bb.model.dtype), bb.embed(ids)], dim=1)
    attn = torch.cat([torch.ones(ids.shape[0], n, dtype=mask.dtype, device=dev), mask], dim=1)
    hidden = bb.model.base_model(inputs_embeds=embeds, attention_mask=attn).last_hidden_state
    T = max(len(t) for t in tgt)
    pos = torch.zeros(len(tgt), T, dtype=torch.long)
    tmask = torch.zeros(len(tgt), T, dtype=torch.long)
    tids = torch.full((len(tgt), T), 0, dtype=torch.long)
    for r, (c, t) in enumerate(zip(context_ids, tgt)):
        start = n + len(c) - 1  # the position that predicts the first target token
        pos[r, : len(t)] = torch.arange(start, start + len(t))
        tmask[r, : len(t)] = 1
        tids[r, : len(t)] = torch.tensor(t)
    pos, tmask, tids = pos.to(dev), tmask.to(dev), tids.to(dev)
    h = hidden.gather(1, pos.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))  # (R, T, d)
    logits = upcast(bb.model.get_output_embeddings()(h))
    logp = torch.log_softmax(logits, dim=-1).gather(-1, tids.unsqueeze(-1)).squeeze(-1)
    return Scored(logp * tmask, h, tmask)


def _score_seq2seq(bb: Backbone, context_ids: list[list[int]], tgt: list[list[int]], prompts: torch.Tensor) -> Scored:
    dev = bb.device
    n = prompts.shape[1]
    pad = bb.tokenizer.pad_token_id
    ids, mask = pad_right(context_ids, pad)
    ids, mask = ids.to(dev), mask.to(dev)
    embeds = torch.cat([prompts.to(bb.model.dtype), bb.embed(ids)], dim=1)
    attn = torch.cat([torch.ones(ids.shape[0], n, dtype=mask.dtype, device=dev), mask], dim=1)
    start = bb.model.config.decoder_start_token_id
    labels, tmask = pad_right(tgt, pad)
    dec = torch.cat([torch.full((len(tgt), 1), start, dtype=torch.long), labels[:, :-1]], dim=1)
    labels, tmask, dec = labels.to(dev), tmask.to(dev), dec.to(dev)
    out = bb.model(inputs_embeds=embeds, attention_mask=attn, decoder_input_ids=dec,
                   decoder_attention_mask=torch.ones_like(dec), output_hidden_states=True)
    logp = F.log_softmax(upcast(out.logits), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return Scored(logp * tmask, out.decoder_hidden_states[-1], tmask)
