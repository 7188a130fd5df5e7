"""PPT (Gu et al., 2022): pre-train the soft prompt with self-supervised classification on an
unlabeled corpus, then prompt-tune it on the few-shot data.

Corpus and documents
    ``options.ppt_corpus``: a UTF-8 text file; documents are separated by blank lines, each
    non-empty line is a sentence.  Default: the unlabeled texts of the tasks' training pools
    in ``--data-dir`` (labels dropped): for each task of ``ppt_tasks`` (default: every
    built-in task) whose pool is there, in a fixed order, the first ``ppt_rows_per_task`` rows
    (default all); every row contributes its text fields in order (``text1`` then ``text2``);
    the sentences are cut into "documents" of ``ppt_doc_sentences`` (default 8) consecutive
    sentences.  Consecutive pool rows are unrelated, so "next sentence" here mostly means
    "the other half of the same row" (premise→hypothesis, question→question, ...), which is
    the kind of relation the target pair tasks ask about; it is a stand-in for PPT's 10 GB
    OpenWebText, not a reproduction of it.

Pre-training tasks (:func:`build_pair_examples`)
    Pair format (PPT's sentence-pair task; used for pair targets): three classes in the
    stated proportions ``ppt_proportions`` (default 1/3 each):
    ``next`` (s_i, s_i+1 of one document, word "Yes"), ``same`` (s_i, s_j of one document,
    |i - j| >= 2, "Maybe"), ``different`` (sentences of two different documents, "No").
    Single-sentence targets use the binary next-sentence-or-not format (``next`` vs
    ``different``, 1/2 each).  PPT's rating-style format needs a sentiment rater and is not
    built.  Template: ``Sentence 1: {text1}\\nSentence 2: {text2}\\nHow are the sentences
    related? Answer:{mask}`` (answer last, so causal LMs work too).

Pre-training: plain prompt tuning of a vocabulary-initialised prompt (the cell's prompt
length, lr, batch size and max length) on ``ppt_examples`` (default 4000) built examples for
``ppt_steps`` (default 1000) steps, seed ``source_seed`` (default 42), last prompt kept.  The
prompt is cached by (backbone, corpus fingerprint, format, config) and reused by every
target and seed; its cost is in ``metrics["source"]``.  Then few-shot prompt tuning on the
target starts from it.  Trainable parameters: the prompt, n·d.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail
from synthpt.methods import register
from synthpt.methods.base import Context
from synthpt.methods.baselines.common import (
    TransferMethod,
    data_dir_key,
    option,
    pt_key,
    source_pt_config,
    source_stage,
    train_source_prompt,
)
from synthpt.tasks import Task

PAIR_LABELS = ("next", "same", "different")
PPT_PAIR_TASK = Task(
    name="ppt-pair", fields=("text1", "text2"), labels=PAIR_LABELS,
    label_words={"next": "Yes", "same": "Maybe", "different": "No"},
    template="Sentence 1: {text1}\nSentence 2: {text2}\nHow are the sentences related? Answer:{mask}",
    description="PPT pre-training: next sentence / same document / different document",
)
PPT_NSP_TASK = Task(
    name="ppt-nsp", fields=("text1", "text2"), labels=("next", "different"),
    label_words={"next": "Yes", "different": "No"},
    template="Sentence 1: {text1}\nSentence 2: {text2}\nDoes sentence 2 follow sentence 1? Answer:{mask}",
    description="PPT pre-training: next sentence or not",
)
CORPUS_TASKS = ("mnli", "qnli", "qqp", "snli", "rte", "mrpc", "sick", "sst-2")


def read_corpus_file(path: str | Path) -> list[list[str]]:
    p = Path(path)
    if not p.is_file():
        raise fail(f"{p}: PPT corpus file not found (options.ppt_corpus)")
    docs: list[list[str]] = [[]]
    for line in p.read_text(encoding="utf-8").splitlines():
        if line.strip():
            docs[-1].append(line.strip())
        elif docs[-1]:
            docs.append([])
    return [d for d in docs if d]


def pool_sentences(data_dir: str | Path, per_task: int | None = None,
                   tasks: tuple[str, ...] = CORPUS_TASKS) -> list[str]:
    """Text fields of the built-in tasks' training pools, in a fixed order (labels dropped)."""
    from synthpt.data import load_official
    from synthpt.tasks import get_task

    out: list[str] = []
    for name in tasks:
        task = get_task(name)
        try:
            rows = load_official(task, "train", data_dir)
        except Exception:  # a pool that is not there is skipped
            continue
        for r in rows[:per_task]:
            out += [str(r[f]).strip() for f in task.fields if str(r[f]).strip()]
    return out


def documents(sentences: list[str], doc_sentences: int) -> list[list[str]]:
    return [sentences[i : i + doc_sentences] for i in range(0, len(sentences), doc_sentences)
            if len(sentences[i : i + doc_sentences]) >= 3]


def _counts(n: int, proportions: tuple[float, ...]) -> list[int]:
    total = sum(proportions)
    raw = [n * p / total for p in proportions]
    counts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def build_pair_examples(docs: list[list[str]], n: int, seed: int,
                        proportions: tuple[float, ...] = (1 / 3, 1 / 3, 1 / 3),
                        labels: tuple[str, ...] = PAIR_LABELS) -> list[dict[str, str]]:
    """``n`` examples whose labels follow ``proportions`` exactly (largest remainder rounding).

    ``labels`` is ``PAIR_LABELS`` (3-way) or ``("next", "different")`` (next-sentence-or-not)."""
    docs = [d for d in docs if len(d) >= 3]
    if len(docs) < 2:
        raise fail("PPT corpus: needs at least two documents of three or more sentences")
    if len(proportions) != len(labels):
        raise fail(f"PPT: {len(labels)} proportions needed, got {list(proportions)}")
    rng = random.Random(seed)
    out: list[dict[str, str]] = []
    for label, count in zip(labels, _counts(n, tuple(proportions))):
        for _ in range(count):
            d = rng.randrange(len(docs))
            doc = docs[d]
            if label == "next":
                i = rng.randrange(len(doc) - 1)
                a, b = doc[i], doc[i + 1]
            elif label == "same":
                i, j = sorted(rng.sample(range(len(doc)), 2))
                while j - i < 2:
                    i, j = sorted(rng.sample(range(len(doc)), 2))
                a, b = (doc[i], doc[j]) if rng.random() < 0.5 else (doc[j], doc[i])
            else:
                e = rng.randrange(len(docs) - 1)
                e += e >= d
                a, b = rng.choice(doc), rng.choice(docs[e])
            out.append({"text1": a, "text2": b, "label": label})
    rng.shuffle(out)
    return out


def ppt_source(ctx: Context) -> Any:
    pair = ctx.task.is_pair
    task = PPT_PAIR_TASK if pair else PPT_NSP_TASK
    default_props = [1 / 3, 1 / 3, 1 / 3] if pair else [0.5, 0.5]
    props = tuple(float(x) for x in option(ctx, "ppt_proportions", default_props))
    steps = int(option(ctx, "ppt_steps", 1000))
    n = int(option(ctx, "ppt_examples", 4000))
    seed = int(option(ctx, "source_seed", 42))
    doc_len = int(option(ctx, "ppt_doc_sentences", 8))
    per_task = option(ctx, "ppt_rows_per_task", None)
    pool_tasks = tuple(option(ctx, "ppt_tasks", CORPUS_TASKS))
    corpus = ctx.options.get("ppt_corpus")
    if corpus:
        corpus_key: Any = {"file": hashlib.sha256(Path(corpus).read_bytes()).hexdigest()[:16]} \
            if Path(corpus).is_file() else {"file": str(corpus)}
    else:
        if ctx.data_dir is None:
            raise fail("PPT needs options.ppt_corpus or --data-dir (the default corpus is the tasks' train pools)")
        corpus_key = {"pools": data_dir_key(ctx), "tasks": list(pool_tasks), "per_task": per_task}
    cfg = source_pt_config(ctx, steps, seed)
    key = {"model": ctx.model, "corpus": corpus_key, "doc_sentences": doc_len, "format": task.to_dict(),
           "proportions": props, "n": n, "config": pt_key(cfg)}

    def build(target: Any, restart: bool) -> dict[str, Any]:
        docs = read_corpus_file(corpus) if corpus else documents(
            pool_sentences(ctx.data_dir, int(per_task) if per_task else None, pool_tasks), doc_len)
        rows = build_pair_examples(docs, n, seed, props, task.labels)
        info = train_source_prompt(ctx, task, rows, cfg, target)
        return {**info, "documents": len(docs), "format": task.name}

    return source_stage(ctx, "ppt-pretrain", f"ppt-{task.name}-{ctx.model}", key, build)


register(TransferMethod("ppt", "PPT", "soft prompt pre-trained on self-supervised sentence-pair tasks, then few-shot PT",
                        source=ppt_source))
