"""The paper's baselines (synthpt.methods.baselines): each runs on a real task with tiny budgets,
updates exactly the weights it claims to, and the building blocks behave as documented."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from synthpt.methods import get_method
from synthpt.methods.base import Context
from synthpt.tasks import get_task

TINY_PT = {"prompt_length": 4, "max_steps": 2, "eval_every": 2, "checkpoint_every": 2, "batch_size": 4,
           "max_length": 96, "eval_batch_size": 64}
TINY_OPTS = {"ft_steps": 2, "ft_eval_every": 2, "ft_batch_size": 4, "ft_lr": 1e-3, "icl_k": 2,
             "icl_max_length": 256, "source_steps": 2, "source_examples": 24, "ppt_steps": 2, "ppt_examples": 12,
             "ppt_rows_per_task": 20, "ppt_tasks": ["rte"], "optima_steps": 2, "optima_unlabeled": 16}


@pytest.fixture(scope="module")
def ctx_factory(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cache = tmp_path_factory.mktemp("baselines-cache")

    def make(task: str = "rte", **options) -> Context:
        return Context(task=get_task(task), seed=42, k=16, data_dir=data_dir, model="tiny-t5",
                       generator_model="tiny-gpt2", cache_dir=cache, pt_knobs=dict(TINY_PT),
                       options={**TINY_OPTS, **options}, max_eval=16, progress=False)

    return make


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _check_metrics(m: dict, task: str) -> None:
    assert 0.0 <= m["test"]["accuracy"] <= 1.0 and m["test"]["n"] == 16
    if task == "mrpc":
        assert "f1" in m["test"]


# ---------------------------------------------------------------------------- scoring only


def test_zero_shot_and_icl_never_update_weights(ctx_factory) -> None:
    from synthpt.methods.baselines.common import frozen_backbone

    ctx = ctx_factory("rte")
    bb = frozen_backbone(ctx.model)
    before = _snapshot(bb.model)
    for name in ("zero-shot", "icl"):
        m = get_method(name).run(ctx)
        _check_metrics(m, "rte")
        assert m["trainable_parameters"] == 0 == get_method(name).trainable_parameters(ctx)
    assert _same(before, _snapshot(bb.model))
    assert not any(p.requires_grad for p in bb.model.parameters())


def test_icl_demos_balanced_seeded_never_the_query() -> None:
    from synthpt.methods.baselines.icl import select_demos

    task = get_task("rte")
    train = [{"text1": f"p{i}", "text2": f"h{i}", "label": task.labels[i % 2]} for i in range(16)]
    demos = select_demos(train, task, 6, seed=13)
    assert sorted(d["label"] for d in demos).count(task.labels[0]) == 3
    assert demos == select_demos(train, task, 6, seed=13)
    assert demos != select_demos(train, task, 6, seed=14)
    for q in train:
        assert all(d is not q and (d["text1"], d["text2"]) != (q["text1"], q["text2"])
                   for d in select_demos(train, task, 16, seed=13, query=dict(q)))


def test_icl_encoder_keeps_the_query_and_fits(tiny_t5) -> None:
    from synthpt.core.scoring import Encoder
    from synthpt.methods.baselines.icl import ICLEncoder

    task = get_task("rte")
    rng = random.Random(0)
    train = [{"text1": "x" * rng.randrange(50, 300), "text2": "y" * 20, "label": task.labels[i % 2]}
             for i in range(8)]
    query = {"text1": "the query premise", "text2": "the query hypothesis", "label": task.labels[0]}
    plain = Encoder(task, tiny_t5, 200).encode(query)
    for max_len in (200, 400, 2000):
        enc = ICLEncoder(task, tiny_t5, max_len, train=train, k=4, seed=1, min_tokens=16)
        ids = enc.encode(query)
        assert len(ids) <= max_len
        assert ids[-len(plain):] == plain  # the query is intact and last
        n = len(enc.last_demos)
        assert (n == 0) == (len(ids) == len(plain))
    assert len(enc.last_demos) == 4  # with room, all K demonstrations are used


# ---------------------------------------------------------------------------- full fine-tuning


@pytest.mark.parametrize("kind", ["classifier", "prompt", "prompt+soft"])
def test_finetuning_updates_all_weights(ctx_factory, kind: str) -> None:
    from synthpt.methods.baselines.common import count_trainable, splits
    from synthpt.methods.baselines.finetune import FineTuneMethod, ft_options

    ctx = ctx_factory("mrpc")
    method = FineTuneMethod("x", "x", kind=kind)
    loop = method.loop(ctx)
    before = {k: v.detach().clone() for k, v in loop.model.named_parameters()}
    total = sum(p.numel() for p in {id(p): p for p in loop.model.parameters()}.values())
    assert count_trainable(loop.model) == total
    parts = splits(ctx)
    params = [{"params": list(loop.model.parameters()), "lr": ft_options(ctx)["lr"]}]
    loop.fit(loop.model, params, parts["train"], parts["dev"])
    unchanged = [k for k, v in loop.model.named_parameters() if torch.equal(v.detach(), before[k])]
    assert not unchanged, f"{kind}: weights not updated: {unchanged}"


def test_finetuning_methods_run(ctx_factory) -> None:
    ctx = ctx_factory("mrpc")
    d = 64
    counts = {}
    for name in ("ft", "pft", "pft+sp"):
        m = get_method(name).run(ctx)
        _check_metrics(m, "mrpc")
        counts[name] = m["trainable_parameters"]
    assert counts["pft+sp"] == counts["pft"] + TINY_PT["prompt_length"] * d
    assert counts["ft"] > 100_000 and counts["pft"] > 100_000


# ---------------------------------------------------------------------------- prompt-only methods


def test_prompt_methods_train_only_the_prompt(ctx_factory) -> None:
    from synthpt.core.models import load_backbone
    from synthpt.methods.baselines.common import frozen_backbone

    ctx = ctx_factory("rte")
    reference = _snapshot(load_backbone(ctx.model).model)
    for name in ("pt", "spot", "ppt", "optima"):
        m = get_method(name).run(ctx)
        _check_metrics(m, "rte")
        assert m["trainable_parameters"] == TINY_PT["prompt_length"] * 64 == get_method(name).trainable_parameters(ctx)
        if name != "pt":
            src = m["source"]
            assert src["seconds"] >= 0 and Path(src["dir"], "adapter_model.safetensors").is_file()
            card = Path(src["dir"], "README.md").read_text()  # every saved prompt has its card
            assert "transfer source" in card and "base_model: tiny-t5" in card and "real rows:" in card
        assert _same(reference, _snapshot(frozen_backbone(ctx.model).model))
    assert _same(reference, _snapshot(load_backbone(ctx.model).model))  # nothing written back to disk
    # source stages are cached: a second seed reuses them
    other = ctx_factory("rte")
    other.seed = 13
    m = get_method("spot").run(other)
    assert m["source"]["cached"] is True


# ---------------------------------------------------------------------------- PPT's data builder


def _docs(n_docs: int = 6, length: int = 6) -> list[list[str]]:
    return [[f"d{d}s{i}" for i in range(length)] for d in range(n_docs)]


@pytest.mark.parametrize("props", [(1 / 3, 1 / 3, 1 / 3), (0.5, 0.25, 0.25)])
def test_ppt_pair_builder_proportions_and_classes(props) -> None:
    from synthpt.methods.baselines.ppt import build_pair_examples

    n = 300
    rows = build_pair_examples(_docs(), n, seed=0, proportions=props)
    assert len(rows) == n
    for lab, p in zip(("next", "same", "different"), props):
        assert sum(r["label"] == lab for r in rows) == round(n * p)

    def where(s: str) -> tuple[int, int]:
        d, i = s[1:].split("s")
        return int(d), int(i)

    for r in rows:
        (da, ia), (db, ib) = where(r["text1"]), where(r["text2"])
        if r["label"] == "next":
            assert da == db and ib == ia + 1
        elif r["label"] == "same":
            assert da == db and abs(ia - ib) >= 2
        else:
            assert da != db
    assert rows == build_pair_examples(_docs(), n, seed=0, proportions=props)


def test_ppt_nsp_builder_and_corpus_file(tmp_path: Path) -> None:
    from synthpt.methods.baselines.ppt import build_pair_examples, read_corpus_file

    f = tmp_path / "corpus.txt"
    f.write_text("\n\n".join("\n".join(doc) for doc in _docs(3, 4)) + "\n")
    docs = read_corpus_file(f)
    assert docs == _docs(3, 4)
    rows = build_pair_examples(docs, 11, seed=1, proportions=(0.5, 0.5), labels=("next", "different"))
    assert {r["label"] for r in rows} == {"next", "different"}
    assert sum(r["label"] == "next" for r in rows) in (5, 6)


# ---------------------------------------------------------------------------- OPTIMA's regulariser


def _toy():
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 3)
    base = torch.randn(5, 4, 8)
    mask = torch.ones(5, 4)

    def score(delta: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(lin((base + delta).mean(1)), dim=-1)

    return base, mask, score


def test_optima_perturbation_is_adversarial() -> None:
    from synthpt.methods.baselines.optima import adversarial_delta, kl_rows

    base, mask, score = _toy()
    clean = score(torch.zeros_like(base)).detach()
    g = torch.Generator().manual_seed(0)
    delta = adversarial_delta(score, base, mask, eps=0.1, xi=1e-3, generator=g)
    norms = delta.flatten(1).norm(dim=1)
    assert torch.allclose(norms, 0.1 * base.flatten(1).norm(dim=1), rtol=1e-4)
    adv = kl_rows(clean, score(delta))
    assert (adv > 0).all()  # the loss increases under the perturbation
    rand = []
    for s in range(20):
        r = torch.randn(base.shape, generator=torch.Generator().manual_seed(100 + s))
        r = r / r.flatten(1).norm(dim=1).view(-1, 1, 1) * norms.view(-1, 1, 1)
        rand.append(kl_rows(clean, score(r)))
    assert (adv > torch.stack(rand).mean(0)).all()  # more than a random direction of the same size


def test_optima_regulariser_zero_without_perturbation() -> None:
    from synthpt.methods.baselines.optima import adversarial_delta, consistency

    base, mask, score = _toy()
    clean = score(torch.zeros_like(base))
    assert consistency(score, clean, torch.zeros_like(base)).item() == 0.0
    d0 = adversarial_delta(score, base, mask, eps=0.0)
    assert torch.count_nonzero(d0) == 0
    assert consistency(score, clean, d0, weights=torch.rand(5)).item() == 0.0
    assert consistency(score, clean, adversarial_delta(score, base, mask, eps=0.1)).item() > 0


def test_baselines_registered_with_table_names() -> None:
    names = {"zero-shot": "Prompting", "icl": "In-Context", "ft": "FT", "pft": "Prompt-based FT",
             "pft+sp": "PFT + soft prompt", "ppt": "PPT", "spot": "SPoT", "optima": "OPTIMA"}
    for name, display in names.items():
        assert get_method(name).display == display
