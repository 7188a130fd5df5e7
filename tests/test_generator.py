"""Generator tuning (DawGen) and generation: losses by hand, meta-gradient by finite
differences, bi-level step, generation counts/determinism/filters/resume, CLI.  Offline, tiny models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from synthpt.core.io import write_jsonl
from synthpt.core.models import load_backbone
from synthpt.data import load_file
from synthpt.generator import GenerationConfig, GeneratorConfig, run_generation, run_generator_tuning
from synthpt.generator.generation import Filters, LineEnd, Sampler, first_text_line
from synthpt.generator.losses import disc_loss, dist_loss, token_weights, weighted_lm_loss
from synthpt.generator.trainer import GeneratorTrainer
from synthpt.tasks import Task, get_task


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    """A private model cache and one CPU thread (the machine is shared; tiny models gain nothing)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("SYNTHPT_CACHE", str(tmp_path_factory.getbasetemp() / "synthpt-cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    mp.undo()


WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "far", "away", "home", "fast"]


def _split(tmp: Path, n: int = 6) -> Path:
    """A small MRPC-shaped split (short texts keep byte-level sequences short)."""
    rows = []
    for i in range(2 * n):
        a = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(4))
        b = " ".join(WORDS[(3 * i + j) % len(WORDS)] for j in range(3))
        rows.append({"text1": a, "text2": b, "label": str(i % 2)})
    d = tmp / "split"
    for name in ("train", "dev", "test"):
        write_jsonl(d / f"{name}.jsonl", rows)
    return d


# ---- losses against hand computation --------------------------------------------------------
def test_token_weights_by_hand():
    scores = torch.tensor([[0.0, math.log(2)], [math.log(3), 5.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    w = token_weights(scores, mask)  # softmax over (1, 2, 3) -> (1/6, 2/6, 3/6), times N = 3
    assert torch.allclose(w, torch.tensor([[0.5, 1.0], [1.5, 0.0]]))
    assert float(w.sum()) == pytest.approx(3.0)


def test_weighted_lm_loss_by_hand():
    nll = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]])
    w = torch.tensor([[1.0, 0.5], [2.0, 1.0], [1.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 1], [1, 0]])
    y = torch.tensor([0, 1, 0])
    loss, per = weighted_lm_loss(nll, w, mask, y, 3)
    # label 0: (1*1 + 0.5*2 + 1*5) / 3 tokens = 7/3 ; label 1: (2*3 + 1*4) / 2 = 5 ; label 2 absent
    assert per[0].item() == pytest.approx(7 / 3) and per[1].item() == pytest.approx(5.0)
    assert math.isnan(per[2].item())
    assert loss.item() == pytest.approx((7 / 3 + 5) / 2)


def test_disc_loss_by_hand():
    p = torch.tensor([[[0.2, 0.5], [0.6, 0.5]]])  # (B=1, L=2, T=2) token probabilities
    loss = disc_loss(p.log(), torch.tensor([0]), torch.tensor([[1, 1]]))
    # token 0: 0.2 / 0.8 = 0.25 ; token 1: 0.5 / 1.0 = 0.5
    assert loss.item() == pytest.approx(-(0.25 + 0.5) / 2)
    loss1 = disc_loss(p.log(), torch.tensor([1]), torch.tensor([[1, 0]]))
    assert loss1.item() == pytest.approx(-0.75)


def test_dist_loss_by_hand():
    y = torch.tensor([0, 0, 1])
    e = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    # triplets (0,1,2): 1 - cos(e0,e1) + cos(e0,e2) = 1 - 0 + 1 = 2 ; (1,0,2): 1 - 0 + 0 = 1
    assert dist_loss(e, y).item() == pytest.approx(1.5)
    e_good = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    assert dist_loss(e_good, y).item() == pytest.approx(0.0)  # 1 - 1 + 0 = 0
    assert dist_loss(e, torch.tensor([0, 1, 2])).item() == 0.0  # no positives: no triplet


# ---- the bi-level step ------------------------------------------------------------------------
def _labelled_mrpc():
    """MRPC with a generator context per label (the ones tried on SmolLM2 in docs/real-cpu.md)."""
    import dataclasses

    return dataclasses.replace(get_task("mrpc"), gen_templates={
        "0": "Sentence 1: {text1}\nSentence 2, which says something different:",
        "1": "Sentence 1: {text1}\nSentence 2, which says the same thing in other words:"})


def _trainer(tmp_path, mode="dawgen", task=None, **kw):
    task = task or get_task("mrpc")
    d = _split(tmp_path)
    from synthpt.data import load_split

    bb = load_backbone("tiny-gpt2")
    cfg = GeneratorConfig(mode=mode, prompt_length=4, batch_size=4, max_steps=5, **{"max_length": 64, **kw})
    return GeneratorTrainer(task, bb, cfg, load_split(d, task)["train"], progress=False)


def test_meta_gradient_matches_finite_differences(tmp_path):
    tr = _trainer(tmp_path, task=_labelled_mrpc(), inner_lr=5.0)  # per-label contexts in the lookahead too
    tr.bb.model.double()
    tr.Q.data = tr.Q.data.double()
    tr.W.double()
    with torch.no_grad():  # move off the zero init so every weight-net parameter matters
        for p in tr.W.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel()), dtype=p.dtype))

    def objective() -> torch.Tensor:
        return tr.lookahead_disc(*tr.forward_own(0))

    params = list(tr.W.parameters())
    grads = torch.autograd.grad(objective(), params, allow_unused=True)
    eps = 1e-5
    checked = 0
    for p, g in zip(params, grads):
        g = torch.zeros_like(p) if g is None else g
        for idx in [0, p.numel() - 1]:
            flat = p.data.view(-1)
            old = flat[idx].item()
            flat[idx] = old + eps
            up = objective().item()
            flat[idx] = old - eps
            down = objective().item()
            flat[idx] = old
            fd = (up - down) / (2 * eps)
            assert g.view(-1)[idx].item() == pytest.approx(fd, rel=1e-4, abs=1e-9)
            checked += 1
    assert checked == 2 * len(params)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


def test_one_bilevel_step_changes_q_and_w_and_lowers_loss(tmp_path):
    tr = _trainer(tmp_path, lr=0.05, meta_lr=0.05)
    q0 = tr.Q.detach().clone()
    w0 = [p.detach().clone() for p in tr.W.parameters()]
    rec = tr.train_step(0)
    assert set(rec) >= {"step", "L_wGen", "L_disc", "L_dist", "L_DawGen"}
    assert all(math.isfinite(rec[k]) for k in ("L_wGen", "L_disc", "L_dist", "L_DawGen"))
    assert not torch.equal(tr.Q.detach(), q0)
    assert any(not torch.equal(p.detach(), w) for p, w in zip(tr.W.parameters(), w0))
    after = tr.loss_at(0)  # L_DawGen(Q_new; W_new) vs L_DawGen(Q_old; W_new) on the same batch
    q_new = tr.Q.detach().clone()
    tr.Q.data.copy_(q0)
    before = tr.loss_at(0)
    tr.Q.data.copy_(q_new)
    assert after < before


def test_each_label_reads_its_own_context(tmp_path):
    """With a generator context per label, an example is encoded with its own label's
    text by default, with another label's when asked, and L_disc scores every example under every
    label with that label's prompt AND context (checked by hand at inner_lr 0, where Q' = Q)."""
    from synthpt.generator.encoding import score_targets
    from synthpt.generator.losses import disc_loss

    tr = _trainer(tmp_path, task=_labelled_mrpc(), inner_lr=0.0, max_length=160)  # room for the whole first text
    task, enc = tr.task, tr.enc
    assert task.gen_template_for("1") != task.gen_template_for("0")
    ex = dict(tr.train[0])
    own, other = ex["label"], next(lab for lab in task.labels if lab != ex["label"])
    tok = tr.bb.tokenizer
    assert enc.encode(ex) == enc.encode(ex, own)
    assert enc.encode(ex, other)[1] == enc.encode(ex)[1]  # the target does not depend on the label
    for lab in task.labels:
        text = tok.decode(enc.encode(ex, lab)[0])
        assert text == task.gen_template_for(lab).format(text1=ex["text1"])
    mine, tgt, y, s = tr.forward_own(0)
    got = tr.lookahead_disc(mine, tgt, y, s)
    rows = [(i, li) for i in mine for li in range(task.num_labels)]
    sd = score_targets(tr.bb, [enc.encode(tr.train[i], task.labels[li])[0] for i, li in rows],
                       [enc.encode(tr.train[i])[1] for i, _ in rows], tr.Q.detach()[[li for _, li in rows]])
    B, L, T = len(mine), task.num_labels, sd.token_logp.shape[1]
    want = disc_loss(sd.token_logp.view(B, L, T), y, sd.mask.view(B, L, T)[:, 0])
    assert float(got) == pytest.approx(float(want), rel=1e-5)
    # the same examples read with one shared context give another L_disc: the contexts matter
    shared = score_targets(tr.bb, [enc.encode(tr.train[i], task.labels[0])[0] for i, _ in rows],
                           [enc.encode(tr.train[i])[1] for i, _ in rows], tr.Q.detach()[[li for _, li in rows]])
    assert float(disc_loss(shared.token_logp.view(B, L, T), y, shared.mask.view(B, L, T)[:, 0])) != \
        pytest.approx(float(want), rel=1e-5)


def test_modes_log_their_terms(tmp_path):
    for mode in ("fewgen", "plain"):
        rec = _trainer(tmp_path, mode=mode).train_step(0)
        assert rec["L_dist"] is None and math.isfinite(rec["L_DawGen"])
        assert (rec["L_disc"] is None) == (mode == "plain")


def test_saved_generator_loads_back(tmp_path):
    """prompts.safetensors and weight_net.safetensors read back exactly what was trained."""
    from synthpt.core.errors import SynthptError
    from synthpt.generator.saving import load_prompts, load_weight_net, save_generator
    from synthpt.generator.trainer import WeightNet

    tr = _trainer(tmp_path)
    tr.train_step(0)
    save_generator(tmp_path / "gen", tr.task, tr.Q, tr.W)
    assert torch.equal(load_prompts(tmp_path / "gen", tr.task), tr.Q.detach())
    w = WeightNet(tr.bb.hidden_size, tr.cfg.weight_hidden, tr.cfg.proj_dim, seed=99)
    load_weight_net(tmp_path / "gen", w)
    assert all(torch.equal(v, tr.W.state_dict()[k]) for k, v in w.state_dict().items())
    with pytest.raises(SynthptError, match="does not fit this weight net"):
        load_weight_net(tmp_path / "gen", WeightNet(tr.bb.hidden_size, 8, 8))


# ---- generation ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gen")
    d = _split(tmp)
    out = tmp / "gen"
    cfg = GeneratorConfig(mode="dawgen", prompt_length=4, batch_size=4, max_length=64, max_steps=2)
    s = run_generator_tuning(get_task("mrpc"), d, "tiny-gpt2", out, cfg, progress=False)
    assert s["steps"] == 2
    return out


def _gcfg(**kw):
    base = dict(n_per_label=6, batch_size=8, max_new_tokens=12, consistency_margin=-1e9)
    base.update(kw)
    return GenerationConfig(**base)


def test_generation_counts_labels_determinism(tuned, tmp_path):
    a = run_generation(tuned, tmp_path / "a.jsonl", _gcfg(), progress=False)
    run_generation(tuned, tmp_path / "b.jsonl", _gcfg(), progress=False)
    assert a["kept"] == {"0": 6, "1": 6}
    rows = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and {r["label"] for r in rows} == {"0", "1"}
    assert all(set(r) >= {"text1", "text2", "label", "score", "provenance"} for r in rows)
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
    c = run_generation(tuned, tmp_path / "c.jsonl", _gcfg(seed=7), progress=False)
    assert c["kept"] == a["kept"] and (tmp_path / "c.jsonl").read_text() != (tmp_path / "a.jsonl").read_text()
    assert len(load_file(tmp_path / "a.jsonl", "mrpc")) == 12
    assert json.loads((tmp_path / "a.jsonl.report.json").read_text())["dropped"].keys() >= {
        "empty", "length", "exact_duplicate", "near_duplicate", "label_consistency"}


def test_filters_drop_what_they_should():
    f = Filters(GenerationConfig(min_words=2, max_words=6, near_dup_threshold=0.5, dedup_ngram=2,
                                 consistency_margin=0.1), get_task("mrpc"))
    ok = {"text1": "a", "text2": "one two three four five", "label": "0"}
    assert f.check(ok, 1.0) is None
    f.add(ok)
    assert f.check({**ok, "text2": "  "}, 1.0) == "empty"
    assert f.check({**ok, "text2": "single"}, 1.0) == "length"
    assert f.check({**ok, "text2": "w " * 7}, 1.0) == "length"
    assert f.check({**ok, "text2": "One  two three four FIVE"}, 1.0) == "exact_duplicate"
    assert f.check({**ok, "text1": "b", "text2": "one two three four six"}, 1.0) == "near_duplicate"
    assert f.check({**ok, "text2": "completely different words here"}, 0.05) == "label_consistency"
    assert f.check({**ok, "text2": "completely different words here"}, 0.2) is None


def test_consistency_filter_counts_in_report(tuned, tmp_path):
    rep = run_generation(tuned, tmp_path / "m.jsonl", _gcfg(consistency_margin=1e9, max_attempts_factor=1),
                         progress=False)
    assert rep["kept"] == {"0": 0, "1": 0} and rep["dropped"]["label_consistency"] > 0
    assert len(rep["warnings"]) == 2


def test_candidates_and_consistency_use_label_contexts(tuned):
    """A label's candidates continue that label's context; the consistency score compares the
    own label (prompt + context) with the other label's (prompt + context), as computed by hand."""
    from synthpt.generator.encoding import score_targets
    from synthpt.generator.saving import load_prompts

    task = _labelled_mrpc()
    prompts = load_prompts(tuned, task)
    assert Task.from_dict(task.to_dict()).gen_templates == task.gen_templates  # a saved generator keeps them
    bb = load_backbone("tiny-gpt2")
    s = Sampler(bb, task, prompts, _gcfg(), 200)  # room for the whole first text
    seen = []
    real = s._generate
    s._generate = lambda li, ctx, seed: seen.append((li, ctx)) or real(li, ctx, seed)
    first = {"text1": "the cat sat on a mat"}
    for li, lab in enumerate(task.labels):
        ex = s.candidates(li, [first], seed=1)[0]
        assert ex["label"] == lab
        assert bb.tokenizer.decode(seen[-1][1][0]) == task.gen_template_for(lab).format(**first)
    ex = {"text1": "the cat sat", "text2": "a dog ran far away", "label": "1"}
    got = s.consistency([ex])[0]
    lp = []
    for li, lab in enumerate(task.labels):
        c, t = s.enc.encode(ex, lab)
        sc = score_targets(bb, [c], [t], s.prompts[li:li + 1])
        lp.append(float(sc.token_logp.sum() / sc.mask.sum()))
    assert got == pytest.approx(lp[1] - lp[0], abs=1e-5)


def test_interrupted_generation_resumes_without_loss_or_duplicates(tuned, tmp_path, monkeypatch):
    ref = tmp_path / "ref.jsonl"
    run_generation(tuned, ref, _gcfg(n_per_label=10, batch_size=4, round_size=4), progress=False)
    out = tmp_path / "part.jsonl"
    real = Sampler.candidates
    calls = {"n": 0}

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Sampler, "candidates", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_generation(tuned, out, _gcfg(n_per_label=10, batch_size=4, round_size=4), progress=False)
    monkeypatch.setattr(Sampler, "candidates", real)
    assert out.is_file() and Path(str(out) + ".state.json").is_file()
    with open(out, "a") as fh:  # a torn round appended after the last committed state
        fh.write('{"text1": "x", "text2": "torn", "label": "0"}\n{"text1": "x", "te')
    run_generation(tuned, out, _gcfg(n_per_label=10, batch_size=4, round_size=4), progress=False)
    assert out.read_text() == ref.read_text()
    assert not Path(str(out) + ".state.json").exists()


# ---- CLI ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("model,mode", [("tiny-gpt2", "dawgen"), ("tiny-t5", "fewgen")])
def test_cli_tune_and_generate(tmp_path, model, mode, capsys):
    from synthpt.cli import main

    d = _split(tmp_path)
    gen = tmp_path / "gen"
    args = ["generator", "tune", "--task", "mrpc", "--data", str(d), "--model", model, "--mode", mode,
            "--max-steps", "2", "--prompt-length", "4", "--max-length", "64", "--checkpoint-every", "1",
            "--out", str(gen)]
    assert main(args) == 0
    log = [json.loads(x) for x in (gen / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2] and all("L_disc" in r and "L_dist" in r for r in log)
    assert {p.name for p in gen.iterdir()} >= {"prompts.safetensors", "weight_net.safetensors", "generator.json"}
    assert main(args) == 0  # finished: returns at once
    syn = tmp_path / "syn.jsonl"
    assert main(["generate", "--generator", str(gen), "--n-per-label", "4", "--batch-size", "8",
                 "--max-new-tokens", "12", "--consistency-margin=-1e9", "--out", str(syn)]) == 0
    rows = load_file(syn, "mrpc")
    assert len(rows) == 8 and sorted(r["label"] for r in rows) == ["0"] * 4 + ["1"] * 4
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(syn), split="train")
    assert ds.num_rows == 8 and {"text1", "text2", "label"} <= set(ds.column_names)
    assert main(["generator", "tune", "--task", "mrpc", "--data", str(d), "--model", model, "--mode", "bogus",
                 "--out", str(tmp_path / "x")]) == 2


def test_texts_end_at_their_first_line():
    """Default generation keeps one line (as every real example is): the first non-blank one,
    and the stopping criterion ends a row only at a line end that follows some text."""
    assert first_text_line("\n\n  a good film \nMovie review: another") == "a good film"
    assert first_text_line("one line") == "one line" and first_text_line(" \n \n") == ""
    tok = load_backbone("tiny-gpt2").tokenizer
    rows = ["\nstill going", "done here\nand more", "no end yet"]
    ids = [tok(r, add_special_tokens=False)["input_ids"] for r in rows]
    width = max(map(len, ids))
    batch = torch.tensor([i + [tok.pad_token_id] * (width - len(i)) for i in ids])
    assert LineEnd(tok)(batch, torch.zeros(3, 1)).tolist() == [False, True, False]


def test_cli_user_task_with_label_contexts(tmp_path, monkeypatch):
    """A task spec's ``gen_templates`` reach the saved generator, and `synthpt generate` writes each
    label's texts after that label's context."""
    from synthpt.cli import main

    d = _split(tmp_path)
    spec = tmp_path / "para.yaml"
    spec.write_text("name: para\nfields: [text1, text2]\nlabels: ['0', '1']\nlabel_words: {'0': 'No', '1': 'Yes'}\n"
                    "template: '{text1} / {text2}? Answer:{mask}'\ngen_template: '{text1} /'\n"
                    "gen_templates: {'1': '{text1} / in other words:'}\n")
    gen = tmp_path / "gen"
    assert main(["generator", "tune", "--task-spec", str(spec), "--data", str(d), "--model", "tiny-gpt2",
                 "--max-steps", "1", "--prompt-length", "4", "--max-length", "96", "--out", str(gen)]) == 0
    saved = json.loads((gen / "generator.json").read_text())["task"]
    assert saved["gen_templates"] == {"1": "{text1} / in other words:"} and saved["gen_template"] == "{text1} /"
    contexts: dict[int, set[str]] = {0: set(), 1: set()}
    real = Sampler._generate

    def spy(self, li, ctx, seed):
        contexts[li] |= {self.bb.tokenizer.decode(c) for c in ctx}
        return real(self, li, ctx, seed)

    monkeypatch.setattr(Sampler, "_generate", spy)
    assert main(["generate", "--generator", str(gen), "--data", str(d), "--n-per-label", "2", "--batch-size", "4",
                 "--max-new-tokens", "8", "--min-words", "1", "--consistency-margin=-1e9",
                 "--out", str(tmp_path / "syn.jsonl")]) == 0
    assert contexts[0] and all(c.endswith(" /") for c in contexts[0])
    assert contexts[1] and all(c.endswith(" / in other words:") for c in contexts[1])


def test_only_the_forward_differentiated_twice_runs_on_the_math_kernel(tmp_path, monkeypatch):
    """The own-prompt forward (differentiated twice through the lookahead) runs on SDPA's math
    backend; the B·L-row forward of L_disc, differentiated once, keeps the fused kernels (faster:
    ``synthpt bench``'s dawgen_step_vs_plain_step), and the backbone keeps its SDPA attention."""
    from synthpt.generator import trainer as tuning

    tr = _trainer(tmp_path)
    assert tr.bb.model.config._attn_implementation == "sdpa"
    seen = []
    orig = tuning.score_targets

    def spy(bb, ctx, tgt, prompts):
        seen.append((len(ctx), torch.backends.cuda.flash_sdp_enabled()))
        return orig(bb, ctx, tgt, prompts)

    monkeypatch.setattr(tuning, "score_targets", spy)
    tr.train_step(0)
    B = len(tr.batch_rows(0))
    assert seen == [(B, False), (B * tr.L, True)]
