"""Stage 2: label-conditioned generation with the tuned prompts, filtered, resumable.

For each label l, rounds of candidates (``round_size``) are sampled after ``[Q_l ; context]``
(:mod:`~synthpt.generator.candidates`): on causal LMs by :mod:`~synthpt.generator.decoding`,
which runs Q_l and each distinct context once, decodes ``batch_size`` rows at a time and lets a
finished row's slot take the next candidate; on seq2seq LMs by ``generate``.  For pair tasks the first text comes from
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
Rows the other filters drop are never scored; the own label's term comes from the log-probs
generation drew, so scoring feeds each text only under the other labels.

Resumability: every round's kept rows are appended with fsync, then a small state file
(``<out>.state.json``: round, attempts, kept per label, drop counts, committed byte size)
is replaced atomically.  A rerun truncates the output to the committed size and
continues with the next round; each round's sampling seed is a pure function of (seed,
label, round), so a resumed run writes exactly what an uninterrupted one would.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from synthpt.core import distributed as dist
from synthpt.core.errors import fail
from synthpt.core.knobs import choose, key_of, knob
from synthpt.core.models import DTYPES, DType
from synthpt.core.progress import progress_bar
from synthpt.generator.candidates import LineEnd, Sampler, first_text_line
from synthpt.generator.config import FirstTexts
from synthpt.generator.encoding import generated_field
from synthpt.generator.filters import DROP_REASONS, Filters
from synthpt.tasks import Task

__all__ = ["DROP_REASONS", "Filters", "FirstTexts", "GenerationConfig", "LineEnd", "Sampler", "first_text_line",
           "run_generation"]


@dataclass
class GenerationConfig:
    """Every knob of Stage 2.  Length bounds default loose (1..100 words) so byte-level toy
    models produce output; for real runs raise ``min_words`` (e.g. 4 for MRPC)."""

    n_per_label: int = knob(5000, 'examples to keep per label (after filtering)')
    batch_size: int = knob(32, 'rows decoded at once (a finished row leaves and the next candidate takes its place)')
    round_size: int = knob(
        0, 'candidates per round, the unit that is committed to disk and resumed (0 = 4 x batch size; '
           'fewer near the end of a label, as many as its acceptance rate so far says are needed)')
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
    markup_tokens: bool = knob(
        False, "let the generator write the tokenizer's added tokens that are neither special nor whitespace, "
        "which decoding keeps in the text (Gemma's <start_of_image>, <em>, <table>...); off: never sampled",
        late=True, was=True)  # runs before it sampled them: they keep their keys, a default run gets a new one
    dtype: DType = knob(
        DType.FLOAT32.value, "precision of the generator LM, its label prompts and the consistency scoring "
        "(sampling stays float32): bfloat16 matmuls run ~2.5x float32 on CPUs with AVX512-BF16/AMX and on "
        "GPUs; its rows differ from float32 ones but are as reproducible for a fixed seed on one machine",
        late=True)  # float32 is what runs before it did: their cache keys stay

    def validate(self) -> None:
        self.dtype = choose(DType, self.dtype, "--dtype")  # a plain string, also when given a member
        if self.round_size < 0:
            raise fail(f"--round-size must be >= 0, got {self.round_size}")
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


# ---- generation -------------------------------------------------------------------------------
def round_seed(seed: int, label_index: int, round_index: int, rank: int = 0) -> int:
    blob = f"{seed}/{label_index}/{round_index}/{rank}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") & ((1 << 63) - 1)


def _scored(sampler: Sampler, filters: Filters, cands: list[dict[str, Any]], task: Task,
            chunk: int) -> Iterator[tuple[dict[str, Any], float]]:
    """(candidate, consistency score) in order, over every rank's candidates.  Rows the score-free
    filters drop already (against the kept set before this round) are never scored; in one
    process the others are scored ``chunk`` at a time, only as far as the caller reads (once a
    label is full, the rest of its last round is not scored)."""
    need = [i for i, c in enumerate(cands) if filters.precheck(c) is None]
    bare = [{f: c[f] for f in (*task.fields, "label")} for c in cands]
    if dist.world_size() > 1:
        got = dict(zip(need, sampler.consistency([cands[i] for i in need])))
        yield from (x for part in dist.gather_objects([(b, got.get(i, math.nan)) for i, b in enumerate(bare)])
                    for x in part)
        return
    scores: dict[int, float] = {}
    at = 0
    for i, b in enumerate(bare):
        if i in need[at: at + 1]:
            batch = need[at: at + chunk]
            at += len(batch)
            scores.update(zip(batch, sampler.consistency([cands[j] for j in batch])))
        yield b, scores.get(i, math.nan)


def round_count(cfg: GenerationConfig, st: dict[str, Any], limit: int) -> int:
    """Candidates in the next round of a label: ``round_size`` (default 4 x batch); the first round
    ``n_per_label`` (at least a batch), and near the end of a label no more than its acceptance rate
    so far says are needed (+20%), so little is generated past ``n_per_label``.  A function of the saved state only: a resumed run agrees."""
    size = cfg.round_size or 4 * cfg.batch_size
    if not st["attempts"]:  # no acceptance rate yet: the quota, but at least one full decode batch
        size = min(size, max(cfg.n_per_label, cfg.batch_size))
    elif st["kept"]:
        need = cfg.n_per_label - st["kept"]
        size = min(size, math.ceil(1.2 * need * st["attempts"] / st["kept"]))
    return max(1, min(size, limit - st["attempts"]))


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
    from synthpt.generator.saving import read_generator_meta

    cfg.validate()
    gdir, out = Path(generator), Path(out)
    meta = read_generator_meta(gdir)
    try:
        task = Task.from_dict(meta["task"])
    except (KeyError, TypeError, AttributeError) as e:
        raise fail(f"{gdir / 'generator.json'}: not a valid generator description (bad task: {e!r})") from None
    data = data if data is not None else meta.get("data")
    key = config_hash({"generator": meta["config_hash"], "generation": key_of(cfg),
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
    bb = load_backbone(meta["model"], device=dist.device(), trust_remote_code=trust_remote_code,
                       dtype=DTYPES[cfg.dtype])
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
    t0, c0 = time.perf_counter(), time.process_time()
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
                k = round_count(cfg, st, limit)
                order = random.Random(round_seed(cfg.seed, li, r)).choices(range(len(pool)), k=k)
                mine = dist.shard(order)
                cands = sampler.candidates(li, [pool[i] for i in mine], round_seed(cfg.seed, li, r, dist.rank()))
                scored = _scored(sampler, filters, cands, task, max(16, cfg.batch_size))
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
                st["attempts"] += len(order)
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
              "config": asdict(cfg), "config_hash": key,
              "timing": {"wall_s": round(time.perf_counter() - t0, 3),  # this process's share (a resumed run: its part)
                         "cpu_s": round(time.process_time() - c0, 3),
                         **(asdict(sampler.engine.stats) if sampler.engine else {})}}
    if dist.is_main():
        write_json(report_path, report)
        output.finish()
    dist.barrier()
    return report
