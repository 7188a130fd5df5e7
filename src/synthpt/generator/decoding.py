"""Step 2's engine for causal LMs: shared prefixes, continuous batching, batched scoring.

What every row of a label shares is computed once: the label prompt Q_l (and Q_l followed by a
context, e.g. SST-2's "Movie review:" or an MRPC first text) is run through the model once and
kept as a :class:`Prefix` (its keys and values, and the logits of its last position).  A row then
costs only the tokens it generates.

Decoding runs ``width`` rows at once in one preallocated KV buffer per layer, ``(W, H, cap, D)``:
columns ``[0, n)`` hold Q_l for every slot; each row's own tokens (its context, then what it
wrote) end at the common column ``S - 1``, right-aligned, with masked columns before them.  A row
that finishes leaves at once and the next candidate takes its slot (its context's keys and values
copied in, its first token drawn from the prefix's logits): the batch stays full, so every step
multiplies ``width`` rows by the weights, instead of a batch that shrinks to its slowest row.
When the buffer is full, the columns that no row uses any more are dropped (one slice copy).

Scoring (:meth:`Engine.target_logp`) reads a text under any label's prompt and context with the
same prefixes: one forward of the target tokens only, every (row, label) pair in one batch.

Everything runs in a fixed order from a seeded ``torch.Generator``: the same inputs give the same
tokens, bit for bit.  :class:`Stats` counts the tokens and seconds of each part."""

from __future__ import annotations

import functools
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.cache_utils import Cache

from synthpt.core.models import Backbone
from synthpt.core.scoring import _cache_kwarg, _cache_of
from synthpt.generator.attention import float32_attention
from synthpt.generator.sampling import line_end_flags, nucleus_sample, penalise_repeats

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values (H, T, D)


@dataclass
class Prefix:
    kv: KV  # the prefix's keys and values, per layer (H, T, D)
    logits: torch.Tensor  # (V,) float32, what its last position predicts
    length: int


@dataclass
class Stats:
    """Tokens through the model body / through the LM head, and seconds, per part of Step 2."""

    tokens: dict[str, int] = field(default_factory=lambda: {"prefill": 0, "decode": 0, "score": 0})
    head_tokens: dict[str, int] = field(default_factory=lambda: {"prefill": 0, "decode": 0, "score": 0})
    seconds: dict[str, float] = field(default_factory=lambda: {"prefill": 0.0, "decode": 0.0, "score": 0.0})

    def add(self, part: str, tokens: int, head: int, seconds: float) -> None:
        self.tokens[part] += tokens
        self.head_tokens[part] += head
        self.seconds[part] += seconds


def _cache(kv: KV) -> Any:
    from transformers.cache_utils import DynamicLayer  # (transformers >= 4.56, as Cache(layers=...))

    layers = []
    for k, v in kv:
        layer = DynamicLayer()
        layer.lazy_initialization(k, v)
        layer.keys, layer.values = k, v
        layers.append(layer)
    return Cache(layers=layers)


@functools.cache  # one class for every Engine, not a new one per call
def _slot_layer_cls() -> type:
    from transformers.cache_utils import DynamicLayer

    class SlotLayer(DynamicLayer):
        """One layer of the slot buffer: a step writes at column S and attends to ``[0, S + q)``."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, engine: Engine) -> None:
            super().__init__()
            self.keys, self.values, self.engine, self.is_initialized = keys, values, engine, True

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *a: Any, **k: Any) -> Any:
            A, S, q = self.engine.active, self.engine.S, key_states.shape[-2]
            self.keys[:A, :, S:S + q] = key_states
            self.values[:A, :, S:S + q] = value_states
            return self.keys[:A, :, :S + q], self.values[:A, :, :S + q]

        def get_seq_length(self) -> int:
            return self.engine.S

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.engine.S + query_length, 0

    return SlotLayer


class Engine:
    """KV-cached sampling and scoring for one causal backbone and its label prompts ``(L, n, d)``."""

    def __init__(self, bb: Backbone, prompts: torch.Tensor, *, max_new_tokens: int, temperature: float = 1.0,
                 top_p: float = 1.0, top_k: int = 0, repetition_penalty: float = 1.0, multi_line: bool = False,
                 eos: int, banned: list[int] | None = None, max_prefixes: int = 256, slack: int = 33) -> None:
        self.bb, self.prompts, self.f32_attention = bb, prompts, float32_attention(bb.model)  # (attention.py)
        self.base, self.head = bb.model.base_model, bb.model.get_output_embeddings()
        self.kw = _cache_kwarg(type(self.base))
        self.max_new, self.T, self.top_p, self.top_k = max_new_tokens, temperature, top_p, top_k
        self.penalty, self.multi_line, self.eos = repetition_penalty, multi_line, eos
        self.vocab = self.head.weight.shape[0]
        self.flags = line_end_flags(bb.tokenizer, self.vocab).to(bb.device)
        # tokens never drawn (sampling.markup_token_ids); log p of a drawn token stays the raw model's
        self.banned = torch.tensor(banned, dtype=torch.long, device=bb.device) if banned else None
        self.prefixes: OrderedDict[tuple, Prefix] = OrderedDict()
        self.max_prefixes = max_prefixes
        self.stats = Stats()
        self.S = self.active = 0
        self.slack = slack  # free columns after the longest row: fewer means more compactions (tests: 1)
        self.shifts = self.compactions = 0

    # ---- prefixes ------------------------------------------------------------------------------
    def _forward(self, segs: list[KV | None], lens: list[int], ids: list[list[int]]) -> tuple[torch.Tensor, Any, int]:
        """One forward of rows ``ids`` (right-padded), row r after its cached keys/values ``segs[r]``
        (``lens[r]`` columns, left-aligned in a shared past of P columns).  (hidden (R, T, d), cache, P)."""
        dev = self.bb.device
        R, P, T = len(ids), max(lens), max(len(x) for x in ids)
        past: KV = []
        if P:
            groups: dict[int, list[int]] = {}
            for r, s in enumerate(segs):
                groups.setdefault(id(s), []).append(r)
            k0, v0 = segs[0][0]
            for layer in range(len(segs[0])):
                k = k0.new_zeros(R, k0.shape[0], P, k0.shape[2])
                v = v0.new_zeros(R, v0.shape[0], P, v0.shape[2])
                for rows in groups.values():
                    sk, sv = segs[rows[0]][layer]
                    idx = torch.tensor(rows, device=dev)
                    k[idx, :, : sk.shape[1]] = sk.unsqueeze(0)
                    v[idx, :, : sv.shape[1]] = sv.unsqueeze(0)
                past.append((k, v))
        pad = self.bb.tokenizer.pad_token_id or 0
        x = torch.full((R, T), pad, dtype=torch.long, device=dev)
        mask = torch.zeros(R, P + T, dtype=torch.long, device=dev)
        start = torch.tensor(lens, device=dev)
        for r, row in enumerate(ids):
            x[r, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[r, : lens[r]] = 1
            mask[r, P: P + len(row)] = 1
        pos = start.unsqueeze(1) + torch.arange(T, device=dev).unsqueeze(0)
        kwargs = {self.kw: _cache(past)} if P else {"use_cache": True}
        out = self.base(input_ids=x, attention_mask=mask, position_ids=pos, **kwargs)
        return out.last_hidden_state, _cache_of(out), P

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        return self.head(h).float()

    def _token_logp(self, h: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """log p(tgt) (N,) from hidden states (N, d): a gather and a log-sum-exp, no (N, V) log-softmax."""
        logits = self._logits(h)
        return logits.gather(1, tgt.unsqueeze(1)).squeeze(1) - torch.logsumexp(logits, 1)

    def ensure(self, keys: list[tuple[int, tuple[int, ...]]]) -> list[Prefix]:
        """The prefixes ``[Q_label ; context_ids]`` for ``keys``, computing the missing ones in one batch."""
        t0 = time.perf_counter()
        todo = list(dict.fromkeys(k for k in keys if k not in self.prefixes))
        q_todo = list(dict.fromkeys(lab for lab, _ in todo if (lab, ()) not in self.prefixes))
        head = body = 0
        if q_todo:  # the label prompts themselves (positions 0..n-1)
            emb = self.prompts[q_todo].to(self.bb.device, self.bb.model.dtype)
            out = self.base(inputs_embeds=emb, use_cache=True)
            cache = _cache_of(out)
            logits = self._logits(out.last_hidden_state[:, -1])
            for i, lab in enumerate(q_todo):
                kv = [(la.keys[i].clone(), la.values[i].clone()) for la in cache.layers]
                self.prefixes[(lab, ())] = Prefix(kv, logits[i], emb.shape[1])
            body, head = emb.shape[0] * emb.shape[1], len(q_todo)
        todo = sorted((k for k in todo if k[1]), key=lambda k: len(k[1]))  # similar lengths together: less padding
        for at in range(0, len(todo), 32):
            body, head = self._prefill(todo[at: at + 32], body, head)
        if body:
            self.stats.add("prefill", body, head, time.perf_counter() - t0)
        got = [self.prefixes[k] for k in keys]
        for k in keys:
            self.prefixes.move_to_end(k)
        while len(self.prefixes) > self.max_prefixes:  # least recently used context first, never a label prompt
            old = next((k for k in self.prefixes if k[1]), None)
            if old is None:
                break
            del self.prefixes[old]
        return got

    def _prefill(self, todo: list[tuple[int, tuple[int, ...]]], body: int, head: int) -> tuple[int, int]:
        """Run contexts after their label prompts (one forward) and keep them as prefixes."""
        segs = [self.prefixes[(lab, ())] for lab, _ in todo]
        hidden, cache, P = self._forward([s.kv for s in segs], [s.length for s in segs], [list(c) for _, c in todo])
        logits = self._logits(torch.stack([hidden[r, len(c) - 1] for r, (_, c) in enumerate(todo)]))
        for r, (lab, c) in enumerate(todo):
            kv = [(torch.cat([qk, la.keys[r, :, P: P + len(c)]], 1), torch.cat([qv, la.values[r, :, P: P + len(c)]], 1))
                  for (qk, qv), la in zip(segs[r].kv, cache.layers)]
            self.prefixes[(lab, c)] = Prefix(kv, logits[r], segs[r].length + len(c))
        return body + sum(len(c) for _, c in todo), head + len(todo)

    # ---- scoring -------------------------------------------------------------------------------
    @torch.no_grad()
    def target_logp(self, rows: list[tuple[int, tuple[int, ...], list[int]]], chunk: int = 64) -> list[list[float]]:
        """log p(target tokens) for rows (label, context, target), each read after [Q_label ; context]."""
        out: list[list[float]] = []
        for s in range(0, len(rows), chunk):
            part = rows[s: s + chunk]
            pre = self.ensure([(lab, c) for lab, c, _ in part])
            t0 = time.perf_counter()
            feed = [t[:-1] for _, _, t in part]  # the last target token is predicted, never read
            first = torch.stack([p.logits for p in pre])  # (R, V): what predicts each target's first token
            t0s = torch.tensor([t[0] for _, _, t in part], device=first.device)
            lp0 = first.gather(1, t0s.unsqueeze(1)).squeeze(1) - torch.logsumexp(first, 1)
            res = [[float(x)] for x in lp0.tolist()]
            fed = [r for r, f in enumerate(feed) if f]
            if fed:
                hidden, _, _ = self._forward([pre[r].kv for r in fed], [pre[r].length for r in fed], [feed[r] for r in fed])
                h = torch.cat([hidden[i, : len(feed[r])] for i, r in enumerate(fed)])  # (N, d) fed positions only
                tgt = torch.tensor([x for r in fed for x in part[r][2][1:]], device=h.device)
                lp = torch.cat([self._token_logp(h[j: j + 512], tgt[j: j + 512]) for j in range(0, h.shape[0], 512)])
                lp = lp.tolist()
                at = 0
                for r in fed:
                    res[r].extend(lp[at: at + len(feed[r])])
                    at += len(feed[r])
                self.stats.add("score", h.shape[0], h.shape[0], time.perf_counter() - t0)
            else:
                self.stats.add("score", 0, len(part), time.perf_counter() - t0)
            out.extend(res)
        return out

    # ---- decoding ------------------------------------------------------------------------------
    def _draw(self, logits: torch.Tensor, slots: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Sample each row's next token from its raw logits (R, V); record log p(token) and log p(EOS)."""
        lse = torch.logsumexp(logits, 1)
        eos_lp = logits[:, self.eos] - lse
        work, wlse = logits, lse
        if self.penalty != 1.0 or self.T != 1.0:  # only then a copy of the logits
            work = logits.clone()
            if self.banned is not None:
                work.index_fill_(1, self.banned, float("-inf"))
            penalise_repeats(work, self.tok[slots], self.n_gen[slots], self.penalty)
            if self.T != 1.0:
                work.div_(self.T)
            wlse = torch.logsumexp(work, 1)
        elif self.banned is not None:  # in place, no second pass over V: the banned tokens' mass leaves the
            # normaliser, and the drawn token's logit (never a banned one) is all that is read afterwards
            mass = (logits.index_select(1, self.banned) - lse.unsqueeze(1)).exp().sum(1)  # (R,)
            work = logits.index_fill_(1, self.banned, float("-inf"))
            wlse = lse + torch.log1p(-mass) if bool((mass < 0.5).all()) else torch.logsumexp(work, 1)  # exact either way
        tok = nucleus_sample(work, wlse, self.top_p, self.top_k, gen)
        k = self.n_gen[slots]
        self.tok[slots, k] = tok
        self.lp[slots, k] = logits.gather(1, tok.unsqueeze(1)).squeeze(1) - lse
        self.eos_lp[slots, k] = eos_lp
        self.n_gen[slots] = k + 1
        return tok

    def _stops(self, tok: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        # a row that reached max_new_tokens runs one step more: that step's log p(EOS) is the last
        # term of its score (the drawn token is dropped)
        done = (tok == self.eos) | (self.n_gen[slots] > self.max_new)
        if not self.multi_line:
            f = self.flags
            done |= (self.seen[slots] & f[1, tok]) | f[2, tok]
            self.seen[slots] |= f[0, tok]
        return done

    def _admit(self, slots: list[int], cands: list[int], ctxs: list[tuple[int, ...]],
               gen: torch.Generator) -> torch.Tensor:
        n = self.n
        for slot, c in zip(slots, cands):
            p = self.pres[ctxs[c]]
            m = p.length - n
            if m > self.S - n:  # a longer context than the room before S: shift every row right
                if self.S + (m - (self.S - n)) > self.cap:
                    self._compact()
                self._shift(m - (self.S - n))
            for (k, v), (bk, bv) in zip(p.kv, self.buf):
                bk[slot, :, self.S - m: self.S] = k[:, n:]
                bv[slot, :, self.S - m: self.S] = v[:, n:]
            self.valid[slot, n:] = False
            self.valid[slot, self.S - m: self.S] = True
        idx = torch.tensor(slots, device=self.valid.device)
        self.pos[idx] = torch.tensor([self.pres[ctxs[c]].length for c in cands], device=idx.device)
        self.n_gen[idx] = 0
        self.seen[idx] = False
        self.row[idx] = torch.tensor(cands, device=idx.device)
        logits = torch.stack([self.pres[ctxs[c]].logits for c in cands])
        tok = self._draw(logits, idx, gen)
        self.pending[idx] = tok
        return self._stops(tok, idx)

    def _shift(self, delta: int) -> None:
        n, S = self.n, self.S
        for bk, bv in self.buf:
            bk[:, :, n + delta: S + delta] = bk[:, :, n:S].clone()
            bv[:, :, n + delta: S + delta] = bv[:, :, n:S].clone()
        self.valid[:, n + delta: S + delta] = self.valid[:, n:S].clone()
        self.valid[:, n: n + delta] = False
        self.S = S + delta
        self.shifts += 1

    def _compact(self) -> None:
        """Drop the columns between Q_l and the oldest token any active row still holds."""
        n, S, A = self.n, self.S, self.active
        used = self.valid[:A, n:S].any(0).nonzero()
        first = n + (int(used[0]) if len(used) else S - n)
        if first == n:
            return
        keep = S - first
        for bk, bv in self.buf:
            bk[:, :, n: n + keep] = bk[:, :, first:S].clone()
            bv[:, :, n: n + keep] = bv[:, :, first:S].clone()
        self.valid[:, n: n + keep] = self.valid[:, first:S].clone()
        self.valid[:, n + keep:] = False
        self.S = n + keep
        self.compactions += 1

    def _move(self, src: int, dst: int) -> None:
        for bk, bv in self.buf:
            bk[dst, :, : self.S] = bk[src, :, : self.S]
            bv[dst, :, : self.S] = bv[src, :, : self.S]
        for t in (self.valid, self.tok, self.lp, self.eos_lp, self.pos, self.n_gen, self.seen, self.row, self.pending):
            t[dst] = t[src]

    @torch.no_grad()
    def generate(self, label: int, ctxs: list[list[int]], seed: int, width: int) -> list[dict[str, Any]]:
        """Sample one text after ``[Q_label ; context_ids]`` for every context, ``width`` rows at a time.

        Returns per context: ``tokens`` (without EOS), ``logp`` and ``eos_logp`` (raw log-probs of each
        drawn token and of EOS at each step, EOS step included) and ``end`` (eos | line | length)."""
        dev = self.bb.device
        keys = [tuple(c) for c in ctxs]
        uniq = list(dict.fromkeys(keys))
        self.pres = dict(zip(uniq, self.ensure([(label, c) for c in uniq])))
        self.pres[()] = self.ensure([(label, ())])[0]
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        self.n = n = self.pres[()].length
        longest = max(p.length for p in self.pres.values()) - n
        W = min(width, len(ctxs))
        self.cap = n + 2 * longest + self.max_new + self.slack
        self.buf = []
        for k, v in self.pres[()].kv:  # float32 where attention's products are (attention.py); zeros: a
            dt = torch.float32 if self.f32_attention else k.dtype  # masked column must not hold a NaN (0 x NaN)
            bk = k.new_zeros(W, k.shape[0], self.cap, k.shape[2], dtype=dt)
            bv = v.new_zeros(W, v.shape[0], self.cap, v.shape[2], dtype=dt)
            bk[:, :, :n], bv[:, :, :n] = k, v
            self.buf.append((bk, bv))
        self.valid = torch.zeros(W, self.cap, dtype=torch.bool, device=dev)
        self.valid[:, :n] = True
        self.tok = torch.zeros(W, self.max_new + 1, dtype=torch.long, device=dev)
        self.lp = torch.zeros(W, self.max_new + 1, device=dev)
        self.eos_lp = torch.zeros(W, self.max_new + 1, device=dev)
        self.pos, self.n_gen, self.row, self.pending = (torch.zeros(W, dtype=torch.long, device=dev) for _ in range(4))
        self.seen = torch.zeros(W, dtype=torch.bool, device=dev)
        self.layers = [_slot_layer_cls()(bk, bv, self) for bk, bv in self.buf]
        cache = Cache(layers=self.layers)
        queue = deque(range(len(ctxs)))
        results: list[dict[str, Any] | None] = [None] * len(ctxs)
        self.S, self.active = n + longest, W
        done = torch.zeros(W, dtype=torch.bool, device=dev)
        done[:] = self._admit(list(range(W)), [queue.popleft() for _ in range(W)], keys, gen)
        tokens = 0
        while self.active:
            finished = done[: self.active].nonzero().squeeze(1).tolist()
            if finished:
                self._finish(finished, results)
                refill, drop = finished[: len(queue)], finished[len(queue):]
                done = torch.zeros(W, dtype=torch.bool, device=dev)
                if refill:
                    done[refill] = self._admit(refill, [queue.popleft() for _ in refill], keys, gen)
                for slot in sorted(drop, reverse=True):  # nothing left to admit: close the gaps
                    self.active -= 1
                    if slot != self.active:
                        self._move(self.active, slot)
                        done[slot] = done[self.active]
                continue  # rows that end on their very first token leave before any step
            if self.S >= self.cap:
                self._compact()
            A, S = self.active, self.S
            self.valid[:A, S] = True
            out = self.base(input_ids=self.pending[:A].unsqueeze(1), attention_mask=self.valid[:A, : S + 1].long(),
                            position_ids=self.pos[:A].unsqueeze(1), **{self.kw: cache})
            self.S += 1
            self.pos[:A] += 1
            slots = torch.arange(A, device=dev)
            tok = self._draw(self._logits(out.last_hidden_state[:, -1]), slots, gen)
            self.pending[:A] = tok
            done = torch.zeros(W, dtype=torch.bool, device=dev)
            done[:A] = self._stops(tok, slots)
            tokens += A
        self.stats.add("decode", tokens, tokens, time.perf_counter() - t0)
        self.buf, self.layers, self.pres = [], [], {}  # the buffers go; the prefixes stay for the next round
        return results  # type: ignore[return-value]

    def _finish(self, slots: list[int], results: list[dict[str, Any] | None]) -> None:
        for slot in slots:
            k = int(self.n_gen[slot])
            toks = self.tok[slot, :k].tolist()
            end = "length" if k > self.max_new else "eos" if toks[-1] == self.eos else "line"
            results[int(self.row[slot])] = {"tokens": toks[: self.max_new] if end == "length" else toks[:-1]
                                            if end == "eos" else toks, "end": end,
                                            "logp": self.lp[slot, :k].tolist(), "eos_logp": self.eos_lp[slot, :k].tolist()}
