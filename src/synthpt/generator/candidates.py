"""Step 2's candidates: one label's texts sampled after ``[Q_l ; context]`` and their consistency
scores.  Causal LMs go through :class:`~synthpt.generator.decoding.Engine` (shared prefixes,
continuous batching, generation's own log-probs reused for the own label's score); seq2seq LMs
through Hugging Face ``generate`` with the KV cache."""

from __future__ import annotations

from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from synthpt.core.models import Backbone
from synthpt.generator.config import FirstTexts
from synthpt.generator.decoding import Engine
from synthpt.generator.encoding import GenEncoder, generated_field, label_loglik, own_margin
from synthpt.generator.sampling import markup_token_ids
from synthpt.tasks import Task


def first_text_line(text: str) -> str:
    """The first non-empty line: the real examples of every built-in task are one line each, and a
    small generator that goes on past a line end writes another item, not more of this one."""
    return next((ln.strip() for ln in text.split("\n") if ln.strip()), "")


class LineEnd(StoppingCriteria):
    """Stopping criterion: a row is done once its text has a line end after some non-blank text
    (a leading newline does not stop it).  Saves the tokens ``first_text_line`` would cut anyway."""

    def __init__(self, tokenizer: Any) -> None:
        self.tok = tokenizer

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tok.batch_decode(input_ids, skip_special_tokens=True)
        return torch.tensor(["\n" in t.lstrip() for t in texts], dtype=torch.bool, device=input_ids.device)


class Sampler:
    """One label's candidates (``candidates``) and their consistency scores (``consistency``)."""

    def __init__(self, bb: Backbone, task: Task, prompts: torch.Tensor, cfg: Any, max_length: int,
                 use_engine: bool = True) -> None:
        """``use_engine=False``: Hugging Face ``generate`` and one scoring forward for causal LMs too
        (what a user would write without the engine; the benchmark's baseline)."""
        self.bb, self.task, self.cfg = bb, task, cfg
        self.enc = GenEncoder(task, bb, max_length + cfg.max_new_tokens, prompts.shape[1])
        self.enc.max_target = cfg.max_new_tokens + 1
        self.prompts = prompts.to(bb.device, bb.model.dtype)  # built once, reused by every round
        self.pad = bb.tokenizer.pad_token_id
        vocab = bb.model.get_output_embeddings().weight.shape[0]
        self.banned = [] if cfg.markup_tokens else markup_token_ids(bb.tokenizer, vocab)
        self.engine = None if bb.is_seq2seq or not use_engine else Engine(
            bb, self.prompts, max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, top_p=cfg.top_p,
            top_k=cfg.top_k, repetition_penalty=cfg.repetition_penalty, multi_line=cfg.multi_line, eos=self.enc.eos,
            banned=self.banned)
        self.rows: list[dict[str, Any]] = []  # the engine's rows of the last _generate call

    def _generate(self, label_index: int, context_ids: list[list[int]], seed: int) -> list[str]:
        if self.engine is None:
            return self._hf_generate(label_index, context_ids, seed)
        self.rows = self.engine.generate(label_index, context_ids, seed, self.cfg.batch_size)
        return [self.bb.tokenizer.decode(r["tokens"], skip_special_tokens=True).strip() for r in self.rows]

    def _hf_generate(self, label_index: int, context_ids: list[list[int]], seed: int) -> list[str]:
        bb, cfg = self.bb, self.cfg
        dev = bb.device
        q = self.prompts[label_index]
        n = q.shape[0]
        width = max(len(c) for c in context_ids)
        d = q.shape[-1]
        embeds = q.new_zeros(len(context_ids), n + width, d)
        mask = torch.zeros((len(context_ids), n + width), dtype=torch.long, device=dev)
        for r, c in enumerate(context_ids):
            e = bb.embed(torch.tensor(c, dtype=torch.long, device=dev).view(1, -1))[0]
            # seq2seq encoder: [Q_l ; context ; pad ...]; causal: [pad ... ; Q_l ; context], so the
            # last position of every row is real and generation continues the context directly
            start = 0 if bb.is_seq2seq else width - len(c)
            embeds[r, start:start + n] = q
            embeds[r, start + n:start + n + len(c)] = e
            mask[r, start:start + n + len(c)] = 1
        torch.manual_seed(seed)
        kwargs: dict[str, Any] = dict(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
                                      repetition_penalty=cfg.repetition_penalty, max_new_tokens=cfg.max_new_tokens,
                                      pad_token_id=self.pad, eos_token_id=self.enc.eos, use_cache=True)
        if not cfg.multi_line:
            kwargs["stopping_criteria"] = StoppingCriteriaList([LineEnd(bb.tokenizer)])
        if self.banned:
            kwargs["suppress_tokens"] = self.banned
        with torch.no_grad():
            out = bb.model.generate(inputs_embeds=embeds, attention_mask=mask, **kwargs)
        return [bb.tokenizer.decode(o, skip_special_tokens=True).strip() for o in out]

    def candidates(self, label_index: int, firsts: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
        """Examples (task fields + label) for the given conditioning rows."""
        task = self.task
        field = generated_field(task)
        rows = [dict(f) for f in firsts]
        if task.is_pair and self.cfg.first_texts == FirstTexts.GENERATOR:
            lead = task.gen_template_for(task.labels[label_index]).split("{" + task.fields[0] + "}")[0]
            lead_ids = self.enc.bos + self.enc._ids(lead.rstrip(" ")) + ([self.enc.eos] if self.bb.is_seq2seq else [])
            texts = self._generate(label_index, [lead_ids or [self.enc.eos]] * len(rows), seed ^ 0x5EED)
            for r, t in zip(rows, texts):
                r[task.fields[0]] = first_text_line(t)
        lab = task.labels[label_index]
        context_ids = [self.enc.context(r, self.cfg.max_new_tokens + 1, lab) for r in rows]
        self.rows = []
        texts = self._generate(label_index, context_ids, seed)
        cut = (lambda t: t.strip()) if self.cfg.multi_line and not task.is_pair else first_text_line
        out = [{**{f: r[f] for f in task.fields[:-1]}, field: cut(t), "label": lab} for r, t in zip(rows, texts)]
        for ex, c, g in zip(out, context_ids, self.rows):  # what generation computed, for the own label's score
            ex["_gen"] = (c, g)
        return out

    def _own_from_generation(self, ex: dict[str, Any], context_ids: list[int], tgt: list[int]) -> float | None:
        """Mean log p(target) under the own label from the log-probs drawn while generating it: exact
        when generation read the same context and its first tokens are the target's (the usual
        case); None otherwise (then the row is scored like the other labels)."""
        context_ids_gen, row = ex.get("_gen") or (None, None)
        m = len(tgt) - 1
        if row is None or context_ids_gen != context_ids or len(row["eos_logp"]) <= m or row["tokens"][:m] != tgt[:m]:
            return None
        return (sum(row["logp"][:m]) + row["eos_logp"][m]) / (m + 1)

    @torch.no_grad()
    def consistency(self, examples: list[dict[str, Any]]) -> list[float]:
        """Own-label minus best-other-label mean token log-lik of the generated field."""
        if not examples:
            return []
        L = self.task.num_labels
        if self.engine is None:  # each example under each label's prompt AND context, one forward
            mean = label_loglik(self.bb, self.enc, self.task, self.prompts, examples)
        else:
            mean = torch.empty(len(examples), L)
            todo: list[tuple[int, int, tuple[int, ...], list[int]]] = []
            for i, ex in enumerate(examples):
                tgt = self.enc.target(str(ex[generated_field(self.task)]))
                own = self.task.label_index(ex["label"])
                for li, lab in enumerate(self.task.labels):
                    context_ids = self.enc.context(ex, len(tgt), lab)
                    got = self._own_from_generation(ex, context_ids, tgt) if li == own else None
                    if got is None:
                        todo.append((i, li, tuple(context_ids), tgt))
                    else:
                        mean[i, li] = got
            lps = self.engine.target_logp([(li, c, t) for _, li, c, t in todo])
            for (i, li, _, _), lp in zip(todo, lps):
                mean[i, li] = sum(lp) / len(lp)
        own = torch.tensor([self.task.label_index(ex["label"]) for ex in examples], device=mean.device)
        return own_margin(mean, own).tolist()
