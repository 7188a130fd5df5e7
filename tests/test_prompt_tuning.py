"""Stage 3 on tiny models: scoring, the one-backward gradient split, strategies, PEFT export."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from synthpt.core.errors import SynthptError
from synthpt.core.io import write_jsonl
from synthpt.core.saving import load_peft_prompt, save_peft_prompt
from synthpt.core.scoring import Encoder, label_logprobs
from synthpt.core.soft_prompt import init_from_vocab
from synthpt.prompt_tuning import STRATEGIES, PromptTrainer, PromptTrainerConfig, run_prompt_tuning
from synthpt.tasks import Task, get_task

TOY = Task(
    name="toy", fields=("text",), labels=("0", "1"), label_words={"0": "no", "1": "yes"},
    template="Text: {text}\nAnswer:{mask}",
)


def toy_examples(n: int, offset: int = 0) -> list[dict]:
    words = ["good", "bad"]
    return [{"text": f"{words[i % 2]} {i + offset}", "label": str(1 - i % 2)} for i in range(n)]


@pytest.fixture(params=["tiny-t5", "tiny-gpt2"])
def backbone(request, tiny_t5, tiny_gpt2):
    return tiny_t5 if request.param == "tiny-t5" else tiny_gpt2


def _reference_logprob(bb, enc: Encoder, ids: list[int], word_ids: list[int]) -> float:
    """log p(word | input) from a plain full forward pass of the HF model."""
    with torch.no_grad():
        if bb.is_seq2seq:
            head = [bb.model.config.decoder_start_token_id] + enc.sentinel
            dec = torch.tensor([head + word_ids])
            logits = bb.model(input_ids=torch.tensor([ids]), decoder_input_ids=dec).logits[0]
            lp = F.log_softmax(logits, -1)
            return sum(float(lp[len(head) - 1 + j, t]) for j, t in enumerate(word_ids))
        seq = torch.tensor([ids + word_ids])
        lp = F.log_softmax(bb.model(input_ids=seq).logits[0], -1)
        return sum(float(lp[len(ids) - 1 + j, t]) for j, t in enumerate(word_ids))


@pytest.mark.parametrize("task_name", ["rte", "mnli"])
def test_label_logprobs_match_plain_forward(backbone, task_name):
    """Batched, padded scoring (single- and multi-token label words) equals a plain forward."""
    task = get_task(task_name)
    enc = Encoder(task, backbone, max_length=128)
    exs = [{"text1": "A man plays a guitar on stage.", "text2": "A man plays."},
           {"text1": "Short.", "text2": "Nobody is here at all, the room is empty."}]
    ids = enc.encode_many(exs)
    with torch.no_grad():
        got = label_logprobs(enc, ids)
    for i, seq in enumerate(ids):
        for li, word in enumerate(enc.label_ids):
            assert got[i, li].item() == pytest.approx(_reference_logprob(backbone, enc, seq, word), abs=1e-4)


def test_template_truncates_fields_not_template(tiny_gpt2):
    task = get_task("rte")
    enc = Encoder(task, tiny_gpt2, max_length=80)
    with pytest.warns(UserWarning, match="truncated"):
        ids = enc.encode({"text1": "x" * 500, "text2": "the hypothesis"})
    text = tiny_gpt2.tokenizer.decode(ids)
    assert len(ids) <= 80
    assert text.endswith("Answer:") and "the hypothesis" in text


def test_t5_input_has_sentinel(tiny_t5):
    enc = Encoder(get_task("sst-2"), tiny_t5, max_length=64)
    ids = enc.encode({"text": "fine film"})
    assert enc.sentinel and enc.sentinel[0] in ids and ids[-1] == tiny_t5.tokenizer.eos_token_id


def test_one_backward_gives_both_gradients(backbone):
    """Row-wise gradient of the broadcast prompt = separate real and synthetic backward passes."""
    enc = Encoder(TOY, backbone, max_length=64, prompt_length=3)
    P = torch.nn.Parameter(init_from_vocab(backbone, 3, seed=0))
    real, syn = toy_examples(3), toy_examples(2, offset=7)
    y = torch.tensor([int(e["label"]) for e in real + syn])
    ids = enc.encode_many(real + syn)
    rows = P.unsqueeze(0).expand(5, -1, -1)
    ce = F.cross_entropy(label_logprobs(enc, ids, rows), y, reduction="none")
    loss = ce[:3].mean() + ce[3:].mean()
    (g,) = torch.autograd.grad(loss, rows)
    d_real, d_syn = g[:3].sum(0), g[3:].sum(0)
    ref_real = torch.autograd.grad(F.cross_entropy(label_logprobs(enc, ids[:3], P), y[:3]), P)[0]
    ref_syn = torch.autograd.grad(F.cross_entropy(label_logprobs(enc, ids[3:], P), y[3:]), P)[0]
    assert torch.allclose(d_real, ref_real, atol=1e-6) and torch.allclose(d_syn, ref_syn, atol=1e-6)


def _train_loss(trainer: PromptTrainer, rows: list[dict]) -> float:
    with torch.no_grad():
        scores = label_logprobs(trainer.encoder, trainer.encoder.encode_many(rows), trainer.prompt)
        y = torch.tensor([TOY.label_index(e["label"]) for e in rows])
        return float(F.cross_entropy(scores, y))


@pytest.mark.parametrize("variant", [*STRATEGIES, "paired+surgery", "mixed+ls"])
def test_each_strategy_lowers_training_loss(tiny_t5, variant):
    strategy, _, extra = variant.partition("+")
    cfg = PromptTrainerConfig(strategy=strategy, gradient_surgery=extra == "surgery",
                             label_smoothing=0.1 if extra == "ls" else 0.0, prompt_length=4, lr=0.3,
                             batch_size=8, max_steps=40, eval_every=40, max_length=48, seed=0)
    train, syn = toy_examples(16), toy_examples(32, offset=100)
    trainer = PromptTrainer(TOY, tiny_t5, cfg, train, train[:4], syn, progress=False)
    before = _train_loss(trainer, train + syn)
    result = trainer.fit()
    after = _train_loss(trainer, train + syn)
    assert after < before - 0.05, (variant, before, after)
    assert len(result.history) == 40
    if strategy == "paired":
        assert all("cosine" in r for r in result.history)


def test_surgery_conflict_rate_is_logged(tiny_t5):
    cfg = PromptTrainerConfig(strategy="paired", gradient_surgery=True, prompt_length=4, max_steps=12,
                             eval_every=12, max_length=48, seed=1)
    # real says "yes" for everything, synthetic says "no": the two gradients must fight
    train = [{"text": f"item {i}", "label": "1"} for i in range(16)]
    syn = [{"text": f"item {i}", "label": "0"} for i in range(16)]
    res = PromptTrainer(TOY, tiny_t5, cfg, train, train[:4], syn, progress=False).fit()
    assert res.stats["conflict_rate"] > 0.5
    assert sum(r["conflict"] for r in res.history) / 12 == pytest.approx(res.stats["conflict_rate"])


def test_balanced_synthetic_batches_deal_labels_in_turn():
    """Every synthetic batch of a balanced plan holds each label equally (when the batch size is a
    multiple of the label count); each epoch still visits every row once; the real half is untouched."""
    from collections import Counter

    from synthpt.prompt_tuning.strategies import BatchPlan

    labels = [0] * 20 + [1] * 20  # grouped, so that random batches would often be one-label
    plain = BatchPlan("paired", 8, 40, 4, 4, 30, seed=3)
    bal = BatchPlan("paired", 8, 40, 4, 4, 30, seed=3, syn_labels=labels)
    counts = [Counter(labels[r.index] for r in bal.rows(s) if r.source == "syn") for s in range(30)]
    assert all(c == {0: 2, 1: 2} for c in counts)
    assert any(Counter(labels[r.index] for r in plain.rows(s) if r.source == "syn") != {0: 2, 1: 2} for s in range(30))
    epoch = [r.index for s in range(10) for r in bal.rows(s) if r.source == "syn"]
    assert sorted(epoch) == list(range(40))
    assert [r for r in bal.rows(4) if r.source == "real"] == [r for r in plain.rows(4) if r.source == "real"]
    assert bal.rows(7) == BatchPlan("paired", 8, 40, 4, 4, 30, seed=3, syn_labels=labels).rows(7)  # seeded
    uneven = BatchPlan("syn", 0, 6, 2, 2, 9, seed=0, syn_labels=[0, 0, 0, 0, 1, 1])
    assert sorted(r.index for s in range(3) for r in uneven.rows(s)) == list(range(6))
    with pytest.raises(SynthptError, match="3 synthetic labels for 40 synthetic rows"):
        BatchPlan("paired", 8, 40, 4, 4, 30, seed=3, syn_labels=[0, 1, 0])


def test_trainer_balances_synthetic_batches_when_asked(tiny_t5):
    syn = [{"text": f"item {i}", "label": "1" if i < 12 else "0"} for i in range(24)]
    train = toy_examples(8)
    for flag in (False, True):
        cfg = PromptTrainerConfig(strategy="paired", prompt_length=4, batch_size=4, syn_batch_size=4, max_steps=6,
                                 eval_every=6, max_length=48, seed=0, balance_synthetic=flag)
        tr = PromptTrainer(TOY, tiny_t5, cfg, train, train[:4], syn, progress=False)
        mixes = [sorted(tr.labels["syn"][r.index] for r in tr.plan.rows(s) if r.source == "syn") for s in range(6)]
        assert all(m == [0, 0, 1, 1] for m in mixes) == flag, (flag, mixes)


def _peft_predictions(bb, adapter_dir, enc: Encoder, rows):
    """Labels predicted by a PeftModel loaded from synthpt's adapter: the label word with the
    highest summed log-probability, computed with PEFT's own forward pass."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(bb.model, str(adapter_dir))
    preds = []
    with torch.no_grad():
        for ids in enc.encode_many(rows):
            scores = []
            for word in enc.label_ids:
                if bb.is_seq2seq:
                    head = [bb.model.config.decoder_start_token_id] + enc.sentinel
                    x = torch.tensor([ids])
                    dec = torch.tensor([head + word[:-1]])
                    logits = model(input_ids=x, attention_mask=torch.ones_like(x), decoder_input_ids=dec).logits[0]
                    lp = F.log_softmax(logits, -1)[len(head) - 1 :]
                else:
                    x = torch.tensor([ids + word])
                    logits = model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]
                    n = logits.shape[0] - x.shape[1]  # PEFT returns logits for the virtual tokens too
                    lp = F.log_softmax(logits[n:], -1)[len(ids) - 1 :]
                scores.append(sum(float(lp[j, t]) for j, t in enumerate(word)))
            preds.append(max(range(len(scores)), key=scores.__getitem__))
    return preds


def test_peft_round_trip_same_predictions(backbone, tmp_path):
    from peft import PeftConfig

    task = get_task("sst-2")
    prompt = init_from_vocab(backbone, 5, seed=3) + 0.5 * torch.randn(5, backbone.hidden_size)
    save_peft_prompt(tmp_path, prompt, backbone)
    cfg = PeftConfig.from_pretrained(str(tmp_path))
    assert cfg.base_model_name_or_path == backbone.name_or_path and cfg.num_virtual_tokens == 5
    loaded, _ = load_peft_prompt(tmp_path)
    assert torch.equal(loaded, prompt)
    enc = Encoder(task, backbone, max_length=64, prompt_length=5)
    rows = [{"text": t, "label": "0"} for t in ["awful, boring", "a delight", "fine", "not good", "superb"]]
    ours = label_logprobs(enc, enc.encode_many(rows), prompt).argmax(-1).tolist()
    from synthpt.core.models import load_backbone

    fresh = load_backbone(backbone.name_or_path)
    assert _peft_predictions(fresh, tmp_path, enc, rows) == ours


def test_run_prompt_tuning_writes_outputs_and_reuses_them(rte_split, tmp_path):
    syn = tmp_path / "syn.jsonl"
    write_jsonl(syn, [{"text1": f"premise {i}", "text2": f"hyp {i}", "label": ["entailment", "not_entailment"][i % 2]}
                      for i in range(40)])
    cfg = PromptTrainerConfig(strategy="paired", gradient_surgery=True, epsilon=0.5, prompt_length=4, max_steps=6,
                             eval_every=3, max_length=64, seed=1)
    out = tmp_path / "pt"
    m = run_prompt_tuning(get_task("rte"), rte_split, "tiny-t5", out, cfg, synthetic=syn, max_eval=40,
                          progress=False)
    assert m["test"]["n"] == 40 and 0 <= m["test"]["accuracy"] <= 1 and "conflict_rate" in m
    for name in ("adapter_config.json", "adapter_model.safetensors", "metrics.json", "log.jsonl", "config.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoint.pt").exists()
    assert len((out / "log.jsonl").read_text().splitlines()) == 6
    recorded = json.loads((out / "config.json").read_text())
    assert recorded["versions"]["torch"] and recorded["config"]["train"]["epsilon"] == 0.5
    stamp = (out / "adapter_model.safetensors").stat().st_mtime_ns
    again = run_prompt_tuning(get_task("rte"), rte_split, "tiny-t5", out, cfg, synthetic=syn, max_eval=40,
                              progress=False)
    assert again == m and (out / "adapter_model.safetensors").stat().st_mtime_ns == stamp


def test_bfloat16_backbone_trains_a_float32_prompt(rte_split, tmp_path):
    """``--dtype bfloat16`` (for GPUs; bf16 also runs on CPU): the prompt stays float32."""
    cfg = PromptTrainerConfig(prompt_length=4, max_steps=3, eval_every=3, max_length=64, seed=0)
    m = run_prompt_tuning(get_task("rte"), rte_split, "tiny-t5", tmp_path / "bf16", cfg, max_eval=20,
                          progress=False, dtype="bfloat16")
    prompt, _ = load_peft_prompt(tmp_path / "bf16")
    assert prompt.dtype == torch.float32 and torch.isfinite(prompt).all()
    assert m["test"]["n"] == 20
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["config"]["dtype"] == "bfloat16"


def test_zero_shot_filter_keeps_rows_zero_shot_agrees_with_and_is_gated_on_dev(tiny_t5):
    """Kept rows are exactly those whose zero-shot prediction (no prompt) is their label; a dev
    accuracy below the gate leaves every row in."""
    from synthpt.core.classify import evaluate, predict
    from synthpt.prompt_tuning.zero_shot_filter import zero_shot_filter

    syn, dev = toy_examples(24), toy_examples(8, offset=100)
    pred = predict(Encoder(TOY, tiny_t5, max_length=32), syn).argmax(-1).tolist()
    agree = [ex for ex, p in zip(syn, pred) if p == TOY.label_index(ex["label"])]
    assert 0 < len(agree) < len(syn)  # the random model agrees with some rows, not all: the check can fail
    kept, rep = zero_shot_filter(TOY, tiny_t5, dev, syn, 0.0, max_length=32)
    assert kept == agree and rep["applied"] and rep["before"] == 24 and rep["after"] == len(agree)
    assert rep["kept_per_label"] == {lab: sum(ex["label"] == lab for ex in agree) for lab in TOY.labels}
    dev_acc = evaluate(TOY, tiny_t5, dev, max_length=32)["accuracy"]
    assert rep["zero_shot_dev_accuracy"] == round(dev_acc, 4)
    kept, rep = zero_shot_filter(TOY, tiny_t5, dev, syn, dev_acc + 1e-6, max_length=32)
    assert kept == syn and not rep["applied"] and rep["after"] == 24 and "kept_per_label" not in rep


def test_prompt_tune_with_zero_shot_filter_reports_it(rte_split, tmp_path, capsys):
    from synthpt.cli import main

    syn = tmp_path / "syn.jsonl"
    write_jsonl(syn, [{"text1": f"premise {i}", "text2": f"hyp {i}", "label": ["entailment", "not_entailment"][i % 2]}
                      for i in range(40)])
    out = tmp_path / "pt"
    assert main(["prompt-tune", "--task", "rte", "--data", str(rte_split), "--model", "tiny-t5", "--synthetic", str(syn),
                 "--strategy", "paired", "--gradient-surgery", "--zero-shot-filter", "0", "--max-steps", "2",
                 "--eval-every", "2", "--prompt-length", "4", "--max-length", "64", "--max-eval", "10",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    m = json.loads((out / "metrics.json").read_text())
    rep = m["zero_shot_filter"]
    assert rep["applied"] and rep["before"] == 40 and m["n_synthetic"] == rep["after"] == sum(rep["kept_per_label"].values())
    assert json.loads((out / "config.json").read_text())["config"]["train"]["zero_shot_filter"] == 0.0


def test_zero_shot_filter_that_keeps_nothing_says_so(rte_split, tmp_path):
    """Rows whose every label the zero-shot classifier contradicts leave nothing to train on: one
    clear error, not the strategy's 'needs synthetic data' for a file that was given."""
    from synthpt.core.classify import predict
    from synthpt.core.models import load_backbone

    task = get_task("rte")
    bb = load_backbone("tiny-t5")
    rows = [{"text1": f"premise {i}", "text2": f"hypothesis {i}", "label": "entailment"} for i in range(12)]
    pred = predict(Encoder(task, bb, max_length=64), rows).argmax(-1).tolist()
    wrong = [dict(r, label=task.labels[1 - p]) for r, p in zip(rows, pred)]  # each row labelled against zero-shot
    cfg = PromptTrainerConfig(strategy="paired", zero_shot_filter=0.0, prompt_length=4, max_steps=2, eval_every=2,
                             max_length=64)
    with pytest.raises(SynthptError, match=r"contradicts every one of the 12 synthetic rows"):
        run_prompt_tuning(task, rte_split, bb, tmp_path / "pt", cfg, synthetic=wrong, max_eval=8, progress=False)


def test_card_shows_the_steps_syn_epochs_resolved(rte_split, tmp_path):
    """With ``syn_epochs`` the run takes the steps the data asks for; the card says those, while the
    recorded config (and so its hash) keeps the ``max_steps`` that was asked for."""
    syn = [{"text1": f"premise {i}", "text2": f"hyp {i}", "label": ["entailment", "not_entailment"][i % 2]}
           for i in range(12)]
    cfg = PromptTrainerConfig(strategy="paired", batch_size=4, syn_batch_size=2, max_steps=50, syn_epochs=0.5,
                             prompt_length=4, eval_every=3, max_length=64, seed=0)
    out = tmp_path / "pt"
    m = run_prompt_tuning(get_task("rte"), rte_split, "tiny-t5", out, cfg, synthetic=syn, max_eval=8, progress=False)
    assert m["steps"] == 3  # ceil(0.5 * 12 / 2)
    card = (out / "README.md").read_text()
    assert "max_steps 3," in card and "max_steps 50" not in card and "of 3" in card
    assert json.loads((out / "config.json").read_text())["config"]["train"]["max_steps"] == 50


def test_card_names_the_split_source_and_survives_a_bad_record(tmp_path):
    from synthpt.prompt_tuning.card import render_card

    def source(split_json: str | None) -> str:
        d = tmp_path / f"d{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        if split_json is not None:
            (d / "split.json").write_text(split_json)
        card = render_card(get_task("rte"), "tiny-t5", "tiny-t5", (4, 8), data=d)
        return next(ln for ln in card.splitlines() if ln.startswith("- real rows:")).split("; from ", 1)[1]

    good = source('{"source": "lmbff", "k": 16, "seed": 13}')
    assert good.endswith(": LM-BFF's published split, K = 16 per class, seed 13")
    for bad in (None, "[1, 2]", '{"source": "lm'):
        assert source(bad).startswith("`") and source(bad).endswith("`"), bad  # the folder, nothing more
