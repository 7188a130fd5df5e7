"""Stage 2: label-conditioned generation with the tuned prompts, filtered, resumable.

For each label l, rounds of ``batch_size`` candidates are sampled in one batched
``generate`` call with the KV cache: the rows are ``[Q_l ; context]`` embeddings (left padding
for causal LMs, so every row's last position is real), with Q_l's embeddings built once per
label and reused by every round.  For pair tasks the first text comes from
``first_texts``: ``"data"`` (default: the few-shot train split's first texts, cycled in a
seeded order — real, on-distribution conditions), a corpus file (one text per line), or
``"generator"`` (the label prompt writes the first text too, from the template's lead-in,
cut at the first line break).

Filters, in order (the report counts what each dropped): ``empty``; ``length`` (words
outside [min_words, max_words]); ``exact_duplicate`` (whitespace/case-normalised fields);
``near_duplicate`` (Jaccard similarity of word ``dedup_ngram``-gram sets of the generated
field ≥ ``near_dup_threshold`` against anything kept, via an inverted index);
``label_consistency``: mean per-token log-likelihood of the generated field under its own
label's prompt minus the best other label's must be ≥ ``consistency_margin`` (length
normalised so long and short texts face the same bar).  That margin is the row's ``score``.

Resumability: every round's kept rows are appended with fsync, then a small state file
(``<out>.state.json``: round, attempts, kept per label, drop counts, committed byte size)
is replaced atomically.  A rerun truncates the output to the committed size and
continues with the next round; each round's sampling seed is a pure function of (seed,
label, round), so a resumed run writes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import enum
import hashlib
import random
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from synthpt.core import distributed as dist
from synthpt.core.errors import fail
from synthpt.core.knobs import knob
from synthpt.core.models import Backbone
from synthpt.core.progress import progress_bar
from synthpt.generator.encoding import GenEncoder, generated_field, score_targets
from synthpt.tasks import Task

DROP_REASONS = ("empty", "length", "exact_duplicate", "near_duplicate", "label_consistency")


class FirstTexts(enum.StrEnum):
    """Where a pair task's first text comes from (``--first-texts``; any other value is a corpus FILE)."""

    DATA = "data"  # the few-shot train split's first texts, cycled in a seeded order
    GENERATOR = "generator"  # the label prompt writes it from the template's lead-in


@dataclass
class GenerationConfig:
    """Every knob of Stage 2.  Length bounds default loose (1..100 words) so byte-level toy
    models produce output; for real runs raise ``min_words`` (e.g. 4 for MRPC)."""

    n_per_label: int = knob(5000, 'examples to keep per label (after filtering)')
    batch_size: int = knob(32, 'candidates sampled per generate call')
    max_new_tokens: int = knob(64, 'maximum tokens of a generated text')
    temperature: float = knob(1.0, 'sampling temperature')
    top_p: float = knob(0.9, 'nucleus sampling mass')
    top_k: int = knob(0, 'top-k sampling (0 = off)')
    repetition_penalty: float = knob(1.0, 'HF repetition penalty (1 = off)')
    min_words: int = knob(1, 'drop texts with fewer words')
    max_words: int = knob(100, 'drop texts with more words')
    dedup_ngram: int = knob(3, 'word n-gram size of the near-duplicate filter')
    near_dup_threshold: float = knob(
        0.8, 'Jaccard similarity at which a text counts as a near duplicate (>1 = off)')
    consistency_margin: float = knob(
        0.0, "keep a text only if its own label's prompt beats the others by this mean token log-lik")
    max_attempts_factor: int = knob(10, 'stop a label after n_per_label x this many candidates (then warn)')
    seed: int = knob(42, 'sampling seed')
    first_texts: str = knob(
        FirstTexts.DATA.value, 'pair tasks: where the first text comes from: data (few-shot train split) | '
        'generator (the label prompt writes it) | FILE (a corpus, one text per line)')
    multi_line: bool = knob(
        False, 'keep generated texts past their first line (default: each text ends at its first line end)')

    def validate(self) -> None:
        for name in ("n_per_label", "batch_size", "max_new_tokens", "max_words", "dedup_ngram", "max_attempts_factor"):
            if getattr(self, name) < 1:
                raise fail(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.min_words < 0 or self.min_words > self.max_words:
            raise fail(f"--min-words {self.min_words} must be between 0 and --max-words {self.max_words}")
        if not 0 < self.temperature < float("inf"):
            raise fail(f"--temperature must be > 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise fail(f"--top-p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.repetition_penalty <= 0:
            raise fail("--top-k must be >= 0 and --repetition-penalty > 0")


# ---- filters (pure) -----------------------------------------------------------------------
def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def shingles(text: str, n: int) -> frozenset:
    words = normalise(text).split()
    if len(words) < n:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


class NearDupIndex:
    """Jaccard near-duplicate detection over n-gram sets with an inverted index."""

    def __init__(self, n: int, threshold: float) -> None:
        self.n, self.threshold = n, threshold
        self.sets: list[frozenset] = []
        self.postings: dict[tuple, list[int]] = {}

    def is_dup(self, text: str) -> bool:
        if self.threshold > 1:
            return False
        a = shingles(text, self.n)
        if not a:
            return False
        shared: Counter = Counter()
        for g in a:
            shared.update(self.postings.get(g, ()))
        for j, c in shared.items():
            if c / (len(a) + len(self.sets[j]) - c) >= self.threshold:
                return True
        return False

    def add(self, text: str) -> None:
        a = shingles(text, self.n)
        j = len(self.sets)
        self.sets.append(a)
        for g in a:
            self.postings.setdefault(g, []).append(j)


class Filters:
    """Stateful filters over the kept set; ``check`` returns the drop reason or None."""

    def __init__(self, cfg: GenerationConfig, task: Task) -> None:
        self.cfg, self.task = cfg, task
        self.field = generated_field(task)
        self.exact: set[tuple[str, ...]] = set()
        self.near = NearDupIndex(cfg.dedup_ngram, cfg.near_dup_threshold)

    def _key(self, ex: dict[str, Any]) -> tuple[str, ...]:
        return tuple(normalise(str(ex[f])) for f in self.task.fields)

    def check(self, ex: dict[str, Any], score: float) -> str | None:
        if any(not str(ex[f]).strip() for f in self.task.fields):
            return "empty"
        words = len(str(ex[self.field]).split())
        if not self.cfg.min_words <= words <= self.cfg.max_words:
            return "length"
        if self._key(ex) in self.exact:
            return "exact_duplicate"
        if self.near.is_dup(str(ex[self.field])):
            return "near_duplicate"
        if not score >= self.cfg.consistency_margin:
            return "label_consistency"
        return None

    def add(self, ex: dict[str, Any]) -> None:
        self.exact.add(self._key(ex))
        self.near.add(str(ex[self.field]))


# ---- generation -------------------------------------------------------------------------------
def round_seed(seed: int, label_index: int, round_index: int, rank: int = 0) -> int:
    blob = f"{seed}/{label_index}/{round_index}/{rank}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


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
    """Batched, KV-cached sampling of one label's candidates."""

    def __init__(self, bb: Backbone, task: Task, prompts: torch.Tensor, cfg: GenerationConfig, max_length: int) -> None:
        self.bb, self.task, self.cfg = bb, task, cfg
        self.enc = GenEncoder(task, bb, max_length + cfg.max_new_tokens, prompts.shape[1])
        self.enc.max_target = cfg.max_new_tokens + 1
        self.prompts = prompts.to(bb.device, bb.model.dtype)  # built once, reused by every round
        self.pad = bb.tokenizer.pad_token_id

    def _generate(self, label_index: int, context_ids: list[list[int]], seed: int) -> list[str]:
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
            lead_ids = self.enc._ids(lead.rstrip(" ")) + ([self.enc.eos] if self.bb.is_seq2seq else [])
            texts = self._generate(label_index, [lead_ids or [self.enc.eos]] * len(rows), seed ^ 0x5EED)
            for r, t in zip(rows, texts):
                r[task.fields[0]] = first_text_line(t)
        lab = task.labels[label_index]
        context_ids = [self.enc.context(r, self.cfg.max_new_tokens + 1, lab) for r in rows]
        texts = self._generate(label_index, context_ids, seed)
        cut = (lambda t: t.strip()) if self.cfg.multi_line and not task.is_pair else first_text_line
        return [{**{f: r[f] for f in task.fields[:-1]}, field: cut(t), "label": lab} for r, t in zip(rows, texts)]

    @torch.no_grad()
    def consistency(self, examples: list[dict[str, Any]]) -> list[float]:
        """Own-label minus best-other-label mean token log-lik of the generated field."""
        if not examples:
            return []
        L = self.task.num_labels
        # each example under each label's prompt AND context (row = i·L + l)
        enc = [self.enc.encode(ex, lab) for ex in examples for lab in self.task.labels]
        context_ids = [c for c, _ in enc]
        tgt = [t for _, t in enc]
        rows = self.prompts.repeat(len(examples), 1, 1)
        s = score_targets(self.bb, context_ids, tgt, rows)
        mean = (s.token_logp.sum(1) / s.mask.sum(1).clamp(min=1)).view(len(examples), L)
        own = torch.tensor([self.task.label_index(ex["label"]) for ex in examples], device=mean.device)
        own_lp = mean.gather(1, own.view(-1, 1)).squeeze(1)
        other = mean.masked_fill(torch.nn.functional.one_hot(own, L).bool(), float("-inf")).max(1).values
        return (own_lp - other).tolist()


def _first_text_pool(task: Task, cfg: GenerationConfig, data: str | Path | None) -> list[dict[str, Any]]:
    if not task.is_pair:
        return [{}]
    f0 = task.fields[0]
    if cfg.first_texts == FirstTexts.GENERATOR:
        return [{f0: ""}]
    if cfg.first_texts == FirstTexts.DATA:
        from synthpt.data import load_split

        if data is None:
            raise fail("no split folder to take first texts from: pass --data or --first-texts FILE")
        texts = list(dict.fromkeys(ex[f0] for ex in load_split(data, task)["train"]))
    else:
        p = Path(cfg.first_texts)
        if not p.is_file():
            raise fail(f"{p}: --first-texts must be 'data', 'generator' or a corpus file (one text per line)")
        from synthpt.core.io import read_text

        texts = [ln.strip() for ln in read_text(p).splitlines() if ln.strip()]
        if not texts:
            raise fail(f"{p}: corpus file has no non-empty lines")
    return [{f0: t} for t in texts]


def run_generation(generator: str | Path, out: str | Path, cfg: GenerationConfig, data: str | Path | None = None,
                   restart: bool = False, progress: bool = True, trust_remote_code: bool = False) -> dict:
    """Generate ``n_per_label`` filtered examples per label into ``out`` (JSONL); returns the report."""
    from synthpt.core.io import read_json_object, write_json
    from synthpt.core.models import load_backbone
    from synthpt.core.runinfo import config_hash
    from synthpt.core.saving import ResumableJsonl, already_done, load_label_prompts, sidecar
    from synthpt.generator.tuning import read_generator_meta

    cfg.validate()
    gdir, out = Path(generator), Path(out)
    meta = read_generator_meta(gdir)
    try:
        task = Task.from_dict(meta["task"])
    except (KeyError, TypeError, AttributeError) as e:
        raise fail(f"{gdir / 'generator.json'}: not a valid generator description (bad task: {e!r})") from None
    data = data if data is not None else meta.get("data")
    key = config_hash({"generator": meta["config_hash"], "generation": asdict(cfg),
                       "data": str(data) if cfg.first_texts == FirstTexts.DATA else None})
    report_path = sidecar(out, ".report.json")
    output = ResumableJsonl(out, "unreadable generation state")
    if out.is_dir():
        raise fail(f"{out}: is a directory; give a .jsonl file path")
    state = None if restart else output.read_state(("bytes", "labels", "dropped"))  # restart: old files go below
    if state is not None:
        if set(state["labels"]) != set(task.labels):
            raise fail(f"{output.state_path}: unreadable generation state (other labels); rerun with --restart")
        if state.get("config_hash") != key:
            raise fail(f"{out}: an unfinished generation with another configuration; use --restart or another --out")
    elif not restart and out.is_file():
        done = already_done(report_path, key, out, "a finished generation",
                            read=lambda p: read_json_object(p, "unreadable generation report", "rerun with --restart"))
        if done is not None:
            return done
    if state is None and not restart and out.exists():
        raise fail(f"{out}: exists and was not written by this generation; use --restart or another --out")
    bb = load_backbone(meta["model"], device=dist.device(), trust_remote_code=trust_remote_code)
    prompts = load_label_prompts(gdir, task.labels)  # (L, n, d)
    if prompts.shape[-1] != bb.hidden_size:
        raise fail(f"{gdir}: prompts have width {prompts.shape[-1]}, model has {bb.hidden_size}")
    pool = _first_text_pool(task, cfg, data)
    if restart and dist.is_main():
        for p in (out, output.state_path, report_path):
            p.unlink(missing_ok=True)
    dist.barrier()
    if state is None:
        state = {"config_hash": key, "bytes": 0, "dropped": dict.fromkeys(DROP_REASONS, 0),
                 "labels": {lab: {"round": 0, "attempts": 0, "kept": 0} for lab in task.labels}}
        if dist.is_main():  # before the first append: a kill during round one must find its state
            output.write_state(state)
    filters = Filters(cfg, task)
    for row in output.rewind(state):  # drops what an interrupted round appended after the last commit
        filters.add(row)
    sampler = Sampler(bb, task, prompts, cfg, int(meta["config"].get("max_length", 128)))
    prov = {"model": meta["model"], "mode": meta["mode"], "seed": cfg.seed}
    field = generated_field(task)
    total = cfg.n_per_label * task.num_labels
    bar = progress_bar(total=total, initial=sum(s["kept"] for s in state["labels"].values()), desc=f"generate {task.name}",
               disable=not progress or not dist.is_main(), dynamic_ncols=True)
    warns: list[str] = []
    try:
        for li, lab in enumerate(task.labels):
            st = state["labels"][lab]
            limit = cfg.n_per_label * cfg.max_attempts_factor
            while st["kept"] < cfg.n_per_label and st["attempts"] < limit:
                r = st["round"]
                order = random.Random(round_seed(cfg.seed, li, r)).choices(range(len(pool)), k=cfg.batch_size)
                mine = dist.shard(order)
                cands = sampler.candidates(li, [pool[i] for i in mine], round_seed(cfg.seed, li, r, dist.rank()))
                scores = sampler.consistency([c for c in cands if all(str(c[f]).strip() for f in task.fields)])
                it = iter(scores)
                scored = [(c, next(it) if all(str(c[f]).strip() for f in task.fields) else float("nan")) for c in cands]
                scored = [x for part in dist.gather_objects(scored) for x in part]
                kept = []
                for c, s in scored:
                    if st["kept"] + len(kept) >= cfg.n_per_label:
                        break
                    reason = filters.check(c, s)
                    if reason:
                        state["dropped"][reason] += 1
                        continue
                    filters.add(c)
                    kept.append({**{f: c[f] for f in task.fields}, "label": lab, "score": round(float(s), 4),
                                 "provenance": prov})
                st["round"] = r + 1
                st["attempts"] += len(scored)
                st["kept"] += len(kept)
                if dist.is_main():
                    output.commit(kept, state)
                bar.update(len(kept))
            if st["kept"] < cfg.n_per_label:
                msg = (f"label {lab!r}: kept {st['kept']} of {cfg.n_per_label} after {st['attempts']} candidates "
                       f"(--max-attempts-factor {cfg.max_attempts_factor}); loosen the filters or tune longer")
                warns.append(msg)
                warnings.warn(msg, stacklevel=2)
    finally:
        bar.close()
    report = {"out": str(out), "task": task.name, "generator": str(gdir), "field": field,
              "n_per_label": cfg.n_per_label, "kept": {lab: s["kept"] for lab, s in state["labels"].items()},
              "attempts": {lab: s["attempts"] for lab, s in state["labels"].items()},
              "dropped": dict(state["dropped"]), "warnings": warns, "provenance": prov,
              "config": asdict(cfg), "config_hash": key}
    if dist.is_main():
        if not out.exists():
            out.touch()
        write_json(report_path, report)
        output.finish()
    dist.barrier()
    return report
