"""Template encoding and verbalizer scoring: the one forward pass every method shares.

``encode_inputs`` turns examples into token ids with the task's template, truncating the
text *fields* (longest first), never the template, so the answer cue survives long inputs.

``label_logprobs`` returns, for each example and each label, log p(label word | input),
summed over the word's tokens, with an optional soft prompt placed before the input
embeddings exactly where PEFT's prompt tuning puts it (so a PEFT-loaded adapter predicts
the same labels).  Causal LMs read the label word after the input (only the positions
that are needed go through the LM head, which matters for 50k-word vocabularies; label
words of several tokens share one run of the input, ``synthpt.core.causal_words``); T5
reads it in the decoder after the sentinel ``<extra_id_0>`` that replaces ``{mask}``
(``synthpt.core.seq2seq_scoring``: the encoder runs once per example, and label words of
several tokens share the decoder's head and its cross-attention keys and values).

The soft prompt may be ``(n, d)`` (shared), ``(B, n, d)`` (one row per example), or
``(G, n, d)`` copies with ``prompt_index`` naming each example's copy: gradient surgery
passes one copy for the real rows and one for the synthetic rows, and reads δ_real and
δ_syn off their gradients after a single backward pass.

On a causal LM the prompt sits before the input and attends only to itself, so its keys
and values are the same for every example: they are computed once per copy and shared as
a KV-cache prefix, which saves the prompt's share of every forward and backward (SmolLM2-135M,
20 prompt tokens, 2-core CPU: 0-27% of a paired step; 40% with 100 prompt tokens in ``synthpt
bench``, figure ``causal_prefix_step_vs_plain_step``).  A
one-time check per model compares it with the plain forward and falls back to that on
any model whose cache does not behave (see ``_prefix_supported``).

Shapes in comments: B examples, L labels, R rows of a forward (B, or B·L when label words have
several tokens), T input tokens, n prompt tokens, d hidden size, G prompt copies, V vocabulary,
K label-token positions, H decoder head (start + sentinel), W tokens of the longest label word.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import string
import warnings
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from synthpt.core.models import Backbone

if TYPE_CHECKING:  # type-only: tasks sit above the core floor
    from synthpt.tasks import Task

SENTINEL = "<extra_id_0>"


def _special_affixes(tok: Any) -> tuple[list[int], list[int]]:
    """Token ids the tokenizer adds before / after a text (BOS, EOS ...)."""
    plain = tok("a b", add_special_tokens=False)["input_ids"]
    full = tok("a b")["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return full[:i], full[i + len(plain) :]
    return [], []


@dataclass
class Encoder:
    """Renders a task's template into ids for one backbone (built once, reused per batch)."""

    task: Task
    backbone: Backbone
    max_length: int
    prompt_length: int = 0

    def __post_init__(self) -> None:
        tok = self.backbone.tokenizer
        self.max_length = clamp_to_model(self.backbone, self.max_length)
        self.prefix, self.suffix = _special_affixes(tok)
        if not self.backbone.is_seq2seq:
            self.suffix = []  # the label word follows the input, not an EOS
        sentinel_id = tok.convert_tokens_to_ids(SENTINEL) if SENTINEL in tok.get_vocab() else None
        self.sentinel = [sentinel_id] if (self.backbone.is_seq2seq and sentinel_id is not None) else []
        self.pieces = self._split_template()
        self.label_ids = [self._label_word_ids(w) for w in self.task.words()]
        firsts = [ids[0] for ids in self.label_ids]
        self.single_token = all(len(ids) == 1 for ids in self.label_ids) and len(set(firsts)) == len(firsts)
        self._warned = False

    def _label_word_ids(self, word: str) -> list[int]:
        tok = self.backbone.tokenizer
        text = word if self.backbone.is_seq2seq else " " + word
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if not ids:
            from synthpt.core.errors import fail

            raise fail(f"label word {word!r} of task {self.task.name} is empty after tokenisation")
        return ids

    def _split_template(self) -> list[tuple[str, str]]:
        """Template as [("text", literal) | ("field", name) | ("mask", "")]; whitespace
        before a field moves into the field so BPE sees ' word' as it would in running text."""
        out: list[tuple[str, str]] = []
        carry = ""
        for literal, name, _, _ in string.Formatter().parse(self.task.template):
            literal = carry + literal
            carry = ""
            if name is not None and name != "mask" and literal and literal[-1] == " ":
                stripped = literal.rstrip(" ")
                carry = literal[len(stripped) :]
                literal = stripped
            if literal:
                out.append(("text", literal))
            if name == "mask":
                if not self.backbone.is_seq2seq:
                    break  # causal LMs predict the label word next: nothing after the mask
                out.append(("mask", ""))
            elif name is not None:
                out.append(("field", carry + "{" + name + "}"))
                carry = ""
        return out

    def encode(self, example: dict[str, Any]) -> list[int]:
        tok = self.backbone.tokenizer
        parts: list[tuple[str, list[int]]] = []
        for kind, value in self.pieces:
            if kind == "text":
                parts.append(("text", tok(value, add_special_tokens=False)["input_ids"]))
            elif kind == "mask":
                parts.append(("text", list(self.sentinel)))
            else:
                name = value.strip(" ")[1:-1]
                lead = value[: len(value) - len(value.lstrip(" "))]
                parts.append(("field", tok(lead + str(example[name]), add_special_tokens=False)["input_ids"]))
        budget = self.max_length - self.prompt_length - len(self.prefix) - len(self.suffix)
        if not self.backbone.is_seq2seq:
            budget -= max(len(ids) for ids in self.label_ids) - 1
        total = sum(len(ids) for _, ids in parts)
        if total > budget:
            if not self._warned and _is_main():
                warnings.warn(
                    f"{self.task.name}: inputs longer than {self.max_length} tokens are truncated (fields only)",
                    stacklevel=3,
                )
                self._warned = True
            while total > budget:
                i = max((j for j, (k, _) in enumerate(parts) if k == "field"), key=lambda j: len(parts[j][1]),
                        default=None)
                if i is None or not parts[i][1]:
                    break
                cut = min(len(parts[i][1]), total - budget)
                parts[i] = ("field", parts[i][1][: len(parts[i][1]) - cut])
                total -= cut
        ids = [t for _, p in parts for t in p]
        return self.prefix + ids + self.suffix

    def encode_many(self, examples: list[dict[str, Any]]) -> list[list[int]]:
        return [self.encode(ex) for ex in examples]


def clamp_to_model(backbone: Backbone, max_length: int) -> int:
    """``max_length`` capped at the model's positions (GPT-2: 1024), with a warning; models without
    a fixed limit (T5's relative positions) keep it.  Longer inputs are then truncated, not an error."""
    limit = backbone.max_length(default=max_length)
    if max_length > limit:
        if _is_main():
            warnings.warn(f"--max-length {max_length} exceeds the {limit} positions of {backbone.name_or_path}; "
                          f"inputs are truncated to {limit} tokens", stacklevel=3)
        return limit
    return max_length


def _is_main() -> bool:
    from synthpt.core import distributed

    return distributed.is_main()


def pad_right(seqs: list[list[int]], pad_id: int, width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and attention mask (the layout every forward in synthpt uses)."""
    width = width or max(1, max(len(s) for s in seqs))
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)  # (R, T)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)  # (R, T)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask


def _with_prompt(
    backbone: Backbone, ids: torch.Tensor, mask: torch.Tensor, prompt: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings with the soft prompt in front, and the matching attention mask."""
    embeds = backbone.embed(ids)  # (R, T, d)
    if prompt is None:
        return embeds, mask
    rows = prompt if prompt.dim() == 3 else prompt.unsqueeze(0).expand(ids.shape[0], -1, -1)  # (R, n, d)
    ones = torch.ones((ids.shape[0], rows.shape[1]), dtype=mask.dtype, device=mask.device)  # (R, n)
    return torch.cat([rows.to(embeds.dtype), embeds], dim=1), torch.cat([ones, mask], dim=1)  # (R, n+T, d), (R, n+T)


def label_logprobs(
    encoder: Encoder, context_ids: list[list[int]], prompt: torch.Tensor | None = None,
    prompt_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B, L) log-probabilities of each label word (summed over its tokens).

    ``prompt``: ``(n, d)`` for every row, ``(B, n, d)`` one per row, or ``(G, n, d)`` with
    ``prompt_index`` (B,) giving each row's copy."""
    if prompt is not None and prompt_index is None and prompt.dim() == 3 and prompt.shape[0] != len(context_ids):
        raise ValueError(f"a (G, n, d) prompt with G={prompt.shape[0]} != {len(context_ids)} rows needs prompt_index")
    if prompt is not None and prompt_index is not None:
        if prompt.dim() != 3 or prompt_index.shape != (len(context_ids),):
            raise ValueError("prompt_index needs a (G, n, d) prompt and one index per row")
        if encoder.backbone.is_seq2seq:  # T5's encoder lets the prompt read the input: nothing to share
            prompt, prompt_index = prompt[prompt_index.to(prompt.device)], None
    if encoder.backbone.is_seq2seq:
        from synthpt.core.seq2seq_scoring import seq2seq_scores

        return seq2seq_scores(encoder, context_ids, prompt)  # (B, L)
    return _causal_scores(encoder, context_ids, prompt, prompt_index)


# ---- the prompt as a shared KV-cache prefix (causal LMs) ------------------------------------------
_PREFIX_OK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _copies(prompt: torch.Tensor, rows: int, index: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompt as (G, n, d) copies and each row's copy (B,)."""
    dev = prompt.device
    if prompt.dim() == 2:
        return prompt.unsqueeze(0), torch.zeros(rows, dtype=torch.long, device=dev)
    if index is None:
        return prompt, torch.arange(rows, device=dev)
    return prompt, index.to(device=dev, dtype=torch.long)


@functools.cache
def _cache_kwarg(model_cls: type) -> str:
    """``cache`` (transformers 5) or ``past_key_values`` (4.x): the forward's name for the KV cache
    (read once per model class, not on every step)."""
    return "cache" if "cache" in inspect.signature(model_cls.forward).parameters else "past_key_values"


def _cache_of(out: Any) -> Any:
    """The KV cache a forward returned (``cache`` in transformers 5, ``past_key_values`` in 4.x)."""
    return out.cache if hasattr(out, "cache") else out.past_key_values


def _prompt_prefix(bb: Backbone, copies: torch.Tensor, index: torch.Tensor,
                   mask: torch.Tensor) -> tuple[dict[str, Any], torch.Tensor]:
    """The (G, n, d) prompt copies as a KV prefix of the rows: the forward's cache argument, holding
    copy ``index[r]`` (R,) for row r, and the (R, n+T) attention mask with the prefix in front."""
    base = bb.model.base_model
    cache = _cache_of(base(inputs_embeds=copies.to(bb.model.dtype), use_cache=True))  # keys/values of the copies
    cache.batch_select_indices(index)  # G copies -> R rows; differentiable indexing: gradients reach the copies
    ones = torch.ones((mask.shape[0], copies.shape[1]), dtype=mask.dtype, device=mask.device)  # (R, n)
    return {_cache_kwarg(type(base)): cache}, torch.cat([ones, mask], dim=1)


def _prefix_hidden(bb: Backbone, copies: torch.Tensor, index: torch.Tensor, ids: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """Hidden states of the input positions only, with each row's prompt copy as a KV prefix."""
    kw, attn = _prompt_prefix(bb, copies, index, mask)
    return bb.model.base_model(inputs_embeds=bb.embed(ids), attention_mask=attn, **kw).last_hidden_state  # (R, T, d)


def _agree(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Do two paths' scores agree up to rounding (1e-4 in fp32, 2e-2 in half precision, of 1 + max |b|)?"""
    tol = 1e-4 if b.dtype == torch.float32 else 2e-2
    return bool(a.shape == b.shape and (a - b).abs().max() <= tol * (1 + b.abs().max()))


def _continuations(encoder: Encoder, B: int) -> tuple[torch.Tensor, torch.Tensor]:
    """What runs after the input (causal) or decoder head (seq2seq) that predicted each word's first token:
    for B·L rows (row = i·L + l) word l less its last token, right-padded, and the tokens it predicts (-100: pad)."""
    L = len(encoder.label_ids)
    width = max(len(lab) for lab in encoder.label_ids) - 1
    cont = torch.full((L, width), encoder.backbone.tokenizer.pad_token_id, dtype=torch.long)  # (L, W)
    tgt = torch.full((L, width), -100, dtype=torch.long)  # (L, W)
    for li, lab in enumerate(encoder.label_ids):
        cont[li, : len(lab) - 1] = torch.tensor(lab[:-1], dtype=torch.long)
        tgt[li, : len(lab) - 1] = torch.tensor(lab[1:], dtype=torch.long)
    dev = encoder.backbone.device
    return cont.to(dev).repeat(B, 1), tgt.to(dev).repeat(B, 1)  # (B·L, W) each


def _full_hidden(bb: Backbone, rows_prompt: torch.Tensor | None, ids: torch.Tensor,
                 mask: torch.Tensor) -> torch.Tensor:
    """Hidden states of the input positions, the prompt (if any) run in front of every row."""
    embeds, attn = _with_prompt(bb, ids, mask, rows_prompt)  # (R, n+T, d), (R, n+T)
    hidden = bb.model.base_model(inputs_embeds=embeds, attention_mask=attn).last_hidden_state  # (R, n+T, d)
    return hidden if rows_prompt is None else hidden[:, rows_prompt.shape[-2]:]  # (R, T, d)


@contextlib.contextmanager
def probing(model: torch.nn.Module) -> Iterator[None]:
    """Where the one-time path checks run: no grad, eval mode, and the RNG left as it was.

    A check may first run in the middle of training (fine-tuning with dropout): in train mode it
    would compare two dropout draws (and fail at random), and its draws would shift every later
    dropout mask, so a resumed run, which checks at another step, would not equal an
    uninterrupted one."""
    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)


def _prefix_supported(bb: Backbone, copies: torch.Tensor) -> bool:
    """Once per model: does the KV-prefix forward give the plain forward's hidden states?

    Checked, not assumed: a model whose forward ignores or reshapes the cache (remote code,
    sliding-window or recurrent caches, absolute positions read from the mask) fails the
    comparison or raises, and then every call takes the plain path."""
    ok = _PREFIX_OK.get(bb.model)
    if ok is None:
        ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, bb.tokenizer.pad_token_id]], device=bb.device)
        ids = ids.clamp(max=bb.model.get_input_embeddings().num_embeddings - 1)
        mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]], device=bb.device)
        probe = copies[:1].detach()
        index = torch.zeros(2, dtype=torch.long, device=bb.device)
        try:
            with probing(bb.model):
                a = _prefix_hidden(bb, probe, index, ids, mask)
                b = _full_hidden(bb, probe.expand(2, -1, -1), ids, mask)
            keep = mask.bool()
            # relative to the largest activation: rounding is ~1e-7 of it in fp32 and ~1e-3 in fp16,
            # a wrong prefix (ignored, mis-positioned, mis-masked) is of the order of the activation
            tol = 1e-4 if b.dtype == torch.float32 else 2e-2
            err = (a[keep].float() - b[keep].float()).abs().max()
            ok = bool(a.shape == b.shape and err <= tol * b[keep].float().abs().max())
        except Exception:  # any failure of the cache path means: use the plain forward
            ok = False
        _PREFIX_OK[bb.model] = ok
    return ok


def _causal_scores(encoder: Encoder, context_ids: list[list[int]], prompt: torch.Tensor | None,
                   prompt_index: torch.Tensor | None = None) -> torch.Tensor:
    bb = encoder.backbone
    copies = index = None
    if prompt is not None:
        copies, index = _copies(prompt, len(context_ids), prompt_index)
    prefix = copies is not None and _prefix_supported(bb, copies)
    if not encoder.single_token and (copies is None or prefix):
        from synthpt.core.causal_words import shared_input_scores, shared_input_supported

        if shared_input_supported(encoder, context_ids, copies, index):
            return shared_input_scores(encoder, context_ids, copies, index)  # (B, L)
    return _per_label_causal(encoder, context_ids, copies, index, prefix)


def _per_label_causal(encoder: Encoder, context_ids: list[list[int]], copies: torch.Tensor | None,
                      index: torch.Tensor | None, prefix: bool = False) -> torch.Tensor:
    """(B, L) scores with one row per example (one-token words) or per (example, label)."""
    bb = encoder.backbone
    dev = bb.device
    L = len(encoder.label_ids)
    if encoder.single_token:
        seqs = context_ids
    else:  # one row per (example, label): context + that label's word, less its last token (never an input,
        # and the Encoder's budget counts on it: a full-length context would run past the model's positions)
        seqs = [c + lab[:-1] for c in context_ids for lab in encoder.label_ids]
        if index is not None:
            index = index.repeat_interleave(L)
    ids, mask = pad_right(seqs, bb.tokenizer.pad_token_id)  # (R, T): R = B, or B·L with multi-token words
    ids, mask = ids.to(dev), mask.to(dev)
    if prefix:
        hidden = _prefix_hidden(bb, copies, index, ids, mask)  # (R, T, d)
    else:
        hidden = _full_hidden(bb, None if copies is None else copies[index], ids, mask)  # (R, T, d)
    head = bb.model.get_output_embeddings()
    if encoder.single_token:
        last = torch.tensor([len(c) - 1 for c in context_ids], device=dev)  # (B,); hidden: input positions only
        h = hidden[torch.arange(len(context_ids), device=dev), last]  # (B, d)
        logp = F.log_softmax(head(h).float(), dim=-1)  # (B, V)
        return logp[:, [ids_[0] for ids_ in encoder.label_ids]]  # (B, L)
    # gather every label-token position in one go
    row_idx, pos_idx, tgt, owner = [], [], [], []
    r = 0
    for c in context_ids:
        for lab in encoder.label_ids:
            for j, t in enumerate(lab):
                row_idx.append(r)
                pos_idx.append(len(c) - 1 + j)
                tgt.append(t)
                owner.append(r)
            r += 1
    h = hidden[torch.tensor(row_idx, device=dev), torch.tensor(pos_idx, device=dev)]  # (K, d): K label-token positions
    logp = F.log_softmax(head(h).float(), dim=-1)  # (K, V)
    tok_lp = logp[torch.arange(len(tgt), device=dev), torch.tensor(tgt, device=dev)]  # (K,)
    sums = torch.zeros(len(seqs), device=dev, dtype=tok_lp.dtype)  # (B·L,): one sum per (example, label)
    sums = sums.index_add(0, torch.tensor(owner, device=dev), tok_lp)
    return sums.view(len(context_ids), L)  # (B, L)
