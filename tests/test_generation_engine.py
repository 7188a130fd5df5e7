"""Step 2's engine (generator/decoding.py, sampling.py): what continuous batching with shared
prefixes computes equals a plain forward of each row; sampling follows nucleus sampling's
distribution; the line-end stop agrees with the old criterion; the consistency score reused
from generation equals the one computed afresh; BOS where the tokenizer puts one.  Tiny models."""

from __future__ import annotations

import random

import pytest
import torch

from synthpt.core.models import Backbone, load_backbone
from synthpt.generator.decoding import Engine
from synthpt.generator.generation import GenerationConfig, LineEnd, Sampler
from synthpt.generator.sampling import line_end_flags, nucleus_sample
from synthpt.tasks import get_task


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def bos_tokenizer():
    """A word-level tokenizer that puts <s> before every text (as Gemma's and Llama's do)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = ["<pad>", "<s>", "</s>", "<unk>", "\n", "Movie", "review:", "Sentence", "1:", "2:", "the", "cat", "sat",
             "on", "a", "mat", "dog", "ran", "far", "away", "good", "bad", "film", "great", "awful", "negative",
             "positive", ".", "it", "was"]
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")


def tiny_llama(tok, seed: int = 0) -> Backbone:
    """A random Llama (rotary positions, grouped KV heads), frozen, as Backbone."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Backbone(model=model, tokenizer=tok, name_or_path="tiny-llama-bos", is_seq2seq=False)


def _full_logp(bb: Backbone, prompt: torch.Tensor, ctx: list[int], toks: list[int]) -> torch.Tensor:
    """(len(toks) + 1, V) log-probs after [prompt ; ctx ; toks[:i]] for i = 0..len(toks): no cache, no padding."""
    ids = torch.tensor([ctx + toks])
    emb = torch.cat([prompt.unsqueeze(0), bb.embed(ids)], 1)
    logits = bb.model(inputs_embeds=emb).logits[0].float()
    return torch.log_softmax(logits[prompt.shape[0] + len(ctx) - 1:], -1)


@pytest.mark.parametrize("which", ["tiny-gpt2", "tiny-llama"])
def test_engine_rows_equal_a_plain_forward(which):
    """Rows decoded 3 at a time with refills, shifts for longer contexts and compactions of the
    buffer: every drawn token's log-prob (and EOS's) equals a plain forward of that row alone."""
    bb = load_backbone("tiny-gpt2") if which == "tiny-gpt2" else tiny_llama(bos_tokenizer())
    V = bb.model.get_output_embeddings().weight.shape[0]
    torch.manual_seed(1)
    prompts = torch.randn(2, 4, bb.hidden_size) * 0.5
    rng = random.Random(0)
    # short rows, then a long context admitted just after the buffer was compacted: it needs a shift
    ctxs = [[rng.randrange(4, V) for _ in range(n)] for n in [1, 2] * 12 + [20, 3, 9, 2]]
    eng = Engine(bb, prompts, max_new_tokens=3, top_p=0.95, multi_line=True, eos=bb.tokenizer.eos_token_id, slack=1)
    rows = eng.generate(1, ctxs, seed=3, width=2)
    assert eng.shifts > 0 and eng.compactions > 0  # the layout was exercised, not only the simple case
    assert eng.generate(1, ctxs, seed=3, width=2) == rows  # bitwise reproducible
    assert eng.generate(1, ctxs, seed=4, width=2) != rows
    wide = Engine(bb, prompts, max_new_tokens=10, top_p=0.95, multi_line=True, eos=bb.tokenizer.eos_token_id)
    rows += wide.generate(0, ctxs[:7], seed=5, width=3)  # longer rows, refills, no compaction
    ctxs = ctxs + ctxs[:7]
    eos = bb.tokenizer.eos_token_id
    for i, (c, r) in enumerate(zip(ctxs, rows)):
        drawn = r["tokens"] + ([eos] if r["end"] == "eos" else [])
        assert len(r["logp"]) == len(drawn) + (r["end"] == "length")
        full = _full_logp(bb, prompts[1] if len(ctxs) - i > 7 else prompts[0], c, drawn)
        want = full[torch.arange(len(drawn)), torch.tensor(drawn)]
        assert torch.allclose(torch.tensor(r["logp"][: len(drawn)]), want, atol=1e-4)
        n_eos = len(r["eos_logp"])
        assert torch.allclose(torch.tensor(r["eos_logp"]), full[:n_eos, eos], atol=1e-4)


def test_nucleus_sampling_distribution_by_hand():
    """p = (.5, .3, .1, .06, .04), top_p .85: the nucleus is {0, 1, 2} (the mass above token 3 is
    .9 ≥ .85), renormalised to (5, 3, 1) / 9; with top-k 2 then top-p: (5, 3) / 8."""
    p = torch.tensor([0.5, 0.3, 0.1, 0.06, 0.04])
    R = 40000
    logits = p.log().repeat(R, 1)
    lse = torch.zeros(R)
    gen = torch.Generator().manual_seed(0)
    for tries in (8, 0):  # rejection, and the sorted path it falls back to
        got = torch.bincount(nucleus_sample(logits, lse, 0.85, 0, gen, tries=tries), minlength=5).float() / R
        assert torch.allclose(got, torch.tensor([5, 3, 1, 0, 0]) / 9, atol=0.01), (tries, got)
    got = torch.bincount(nucleus_sample(logits, lse, 0.85, 2, gen), minlength=5).float() / R
    assert torch.allclose(got, torch.tensor([5, 3, 0, 0, 0]) / 8, atol=0.01)
    got = torch.bincount(nucleus_sample(logits, lse, 1.0, 0, gen), minlength=5).float() / R
    assert torch.allclose(got, p, atol=0.01)


def test_line_end_flags_stop_where_line_end_does():
    """The token-level stop rule ends a row at the same token as the old text-level criterion."""
    tok = load_backbone("tiny-gpt2").tokenizer
    flags = line_end_flags(tok, len(tok))
    pieces = [tok(x, add_special_tokens=False)["input_ids"][0] for x in ("a", " ", "\n", "b")]
    crit = LineEnd(tok)
    rng = random.Random(1)
    for _ in range(200):
        seq = [rng.choice(pieces) for _ in range(8)]
        seen, mine = False, None
        for i, t in enumerate(seq):
            if (seen and flags[1, t]) or flags[2, t]:
                mine = i
                break
            seen |= bool(flags[0, t])
        theirs = next((i for i in range(8) if crit(torch.tensor([seq[: i + 1]]), None)[0]), None)
        assert mine == theirs, (seq, mine, theirs)


def test_consistency_reuses_generation_and_agrees_with_rescoring():
    """The own label's mean log-lik taken from generation's log-probs equals scoring the text afresh
    (engine, and one plain forward of every row under every label)."""
    task = get_task("sst-2")
    bb = tiny_llama(bos_tokenizer(), seed=3)  # word-level: a text re-encodes to the tokens that wrote it
    torch.manual_seed(2)
    prompts = torch.randn(2, 4, bb.hidden_size) * 0.5
    cfg = GenerationConfig(batch_size=4, max_new_tokens=8, multi_line=True)
    s = Sampler(bb, task, prompts, cfg, 64)
    cands = [c for c in s.candidates(1, [{}] * 12, seed=5) if c["text"]]
    assert sum(s._own_from_generation(c, c["_gen"][0], s.enc.target(c["text"])) is not None for c in cands) >= 3
    before = s.engine.stats.tokens["score"]
    reused = s.consistency(cands)
    fed_reused = s.engine.stats.tokens["score"] - before
    fresh = s.consistency([{k: v for k, v in c.items() if k != "_gen"} for c in cands])
    fed_fresh = s.engine.stats.tokens["score"] - before - fed_reused
    assert fed_reused < fed_fresh  # the own label's tokens were not fed again
    s.engine = None
    plain = s.consistency(cands)  # one plain forward of every row under every label
    assert reused == pytest.approx(fresh, abs=1e-4) and reused == pytest.approx(plain, abs=1e-4)


def test_sampler_without_engine_generates_and_scores_like_the_engine():
    """``use_engine=False`` (the benchmark's Hugging Face baseline) samples with ``generate`` and scores
    every row under every label in one forward: the same scores as the engine's."""
    task = get_task("sst-2")
    bb = tiny_llama(bos_tokenizer(), seed=3)
    torch.manual_seed(2)
    prompts = torch.randn(2, 4, bb.hidden_size) * 0.5
    cfg = GenerationConfig(batch_size=4, max_new_tokens=8, multi_line=True)
    hf, eng = Sampler(bb, task, prompts, cfg, 64, use_engine=False), Sampler(bb, task, prompts, cfg, 64)
    assert hf.engine is None and eng.engine is not None
    assert len(hf.candidates(0, [{}] * 3, seed=1)) == 3
    cands = [{k: v for k, v in c.items() if k != "_gen"} for c in eng.candidates(1, [{}] * 8, seed=5) if c["text"]]
    assert cands and hf.consistency(cands) == pytest.approx(eng.consistency(cands), abs=1e-4)


def test_bos_starts_the_context_after_the_prompt_in_steps_1_and_2(tmp_path):
    """A tokenizer that starts every text with BOS gets it at the start of the generator's context
    (after the soft prompt) in Step 1 and in Step 2; one that does not (tiny-gpt2, SmolLM2) gets none."""
    from synthpt.generator import GeneratorConfig, GeneratorTrainer
    from synthpt.generator.encoding import GenEncoder

    tok = bos_tokenizer()
    bb = tiny_llama(tok)
    task = get_task("mrpc")
    ex = {"text1": "the cat sat on a mat", "text2": "a dog ran far away", "label": "1"}
    enc = GenEncoder(task, bb, 64, 4)
    ctx, tgt = enc.encode(ex)
    assert ctx[0] == tok.bos_token_id and tok.bos_token_id not in ctx[1:] + tgt
    assert tok.convert_ids_to_tokens(ctx[1:]) == ["Sentence", "1:", "the", "cat", "sat", "on", "a", "mat",
                                                  "Sentence", "2:"]  # (this toy tokenizer drops line ends)
    plain = GenEncoder(task, load_backbone("tiny-gpt2"), 128, 4)
    assert plain.bos == [] and plain.encode(ex)[0] == plain._ids("Sentence 1: the cat sat on a mat\nSentence 2:")
    # Step 1 reads the examples through the same encoder
    rows = [dict(ex, label=str(i % 2)) for i in range(4)]
    tr = GeneratorTrainer(task, bb, GeneratorConfig(mode="plain", prompt_length=4, batch_size=2, max_length=64),
                          rows, progress=False)
    assert all(tr._encoded(i)[0][0] == tok.bos_token_id for i in range(4))
    # Step 2: every context the engine continues starts with BOS
    seen = []
    s = Sampler(bb, task, torch.zeros(2, 4, bb.hidden_size), GenerationConfig(batch_size=2, max_new_tokens=4), 64)
    real = s.engine.generate
    s.engine.generate = lambda label, ctxs, seed, width: seen.extend(ctxs) or real(label, ctxs, seed, width)
    out = s.candidates(0, [{"text1": "the dog sat"}] * 3, seed=1)
    assert len(out) == 3 and len(seen) == 3 and all(c[0] == tok.bos_token_id for c in seen)


def test_round_sizes_by_hand():
    """First round: the quota, at least one batch; then what the acceptance rate says (+20%), capped
    by round_size and by the attempts left."""
    from synthpt.generator.generation import round_count

    cfg = GenerationConfig(n_per_label=10, batch_size=4)  # round_size 0: 16
    assert round_count(cfg, {"kept": 0, "attempts": 0}, 100) == 10
    assert round_count(GenerationConfig(n_per_label=3, batch_size=4), {"kept": 0, "attempts": 0}, 100) == 4
    assert round_count(cfg, {"kept": 5, "attempts": 10}, 100) == 12  # 1.2 * 5 needed * 10 / 5
    assert round_count(cfg, {"kept": 1, "attempts": 10}, 100) == 16  # 108 capped by round_size
    assert round_count(cfg, {"kept": 0, "attempts": 10}, 100) == 16
    assert round_count(cfg, {"kept": 1, "attempts": 95}, 100) == 5  # the attempts left


def test_slot_layer_class_is_built_once():
    """Every Engine's slot buffer uses one class (not a new class per generate call)."""
    from synthpt.generator.decoding import _slot_layer_cls

    assert _slot_layer_cls() is _slot_layer_cls()


def test_markup_tokens_are_never_sampled_unless_asked():
    """Gemma's GGUF tokenizer has added tokens that are not special (``<start_of_image>``, ``<em>``):
    decoding keeps them in the text, so Step 2 must not draw them (``generation.markup_tokens``
    off, the default), while special tokens, EOS and whitespace tokens stay as they were."""
    from synthpt.core.knobs import key_of
    from synthpt.generator.sampling import markup_token_ids

    tok = bos_tokenizer()
    tok.add_tokens(["<start_of_image>", "<em>", "\t"])  # added, not special (as in Gemma's GGUF tokenizer)
    mk = tok.convert_tokens_to_ids(["<start_of_image>", "<em>"])
    assert markup_token_ids(tok, len(tok)) == mk  # not "\t", not <s> / </s> / <pad>
    assert markup_token_ids(load_backbone("tiny-gpt2").tokenizer, 384) == []  # nothing to ban: rows as before
    bb = tiny_llama(tok, seed=1)
    task = get_task("sst-2")
    prompts = torch.zeros(2, 4, bb.hidden_size)
    drawn = {}
    for allow in (True, False):
        s = Sampler(bb, task, prompts, GenerationConfig(batch_size=4, max_new_tokens=6, multi_line=True,
                                                        markup_tokens=allow), 64)
        raw = s.engine._logits

        def favour_markup(h, raw=raw):  # the markup tokens get most of the mass at every step
            out = raw(h)
            out[:, mk] += 8.0
            return out

        s.engine._logits = favour_markup
        s.candidates(1, [{}] * 8, seed=3)
        drawn[allow] = [t for r in s.rows for t in r["tokens"]]
    assert sum(t in mk for t in drawn[True]) > len(drawn[True]) / 2
    assert drawn[False] and not any(t in mk for t in drawn[False])
    # the knob's default changed what Step 2 does: default runs get a new cache key, `markup_tokens: true`
    # (what every earlier run did) keeps the old one
    assert "markup_tokens" in key_of(GenerationConfig()) and "markup_tokens" not in key_of(
        GenerationConfig(markup_tokens=True))
    hf = Sampler(bb, task, prompts, GenerationConfig(batch_size=4, max_new_tokens=6, multi_line=True), 64,
                 use_engine=False)
    assert hf.banned == mk


def test_banned_tokens_leave_log_probs_raw():
    """With tokens banned, every drawn token's log p (and EOS's) is still the raw model's, as the
    consistency filter reads it, and no banned token is drawn (both sampling paths: in place at
    temperature 1, on a copy otherwise)."""
    bb = load_backbone("tiny-gpt2")
    torch.manual_seed(1)
    prompts = torch.randn(2, 4, bb.hidden_size) * 0.5
    rng = random.Random(0)
    V = bb.model.get_output_embeddings().weight.shape[0]
    ctxs = [[rng.randrange(4, V) for _ in range(n)] for n in [1, 3, 2, 5]]
    banned = list(range(100, 260))  # most of the byte-level vocabulary: a banned draw would show
    eos = bb.tokenizer.eos_token_id
    for T in (1.0, 0.7):
        eng = Engine(bb, prompts, max_new_tokens=6, top_p=0.95, temperature=T, multi_line=True, eos=eos,
                     banned=banned)
        rows = eng.generate(0, ctxs, seed=2, width=2)
        assert sum(len(r["tokens"]) for r in rows) > 8 and not any(t in banned for r in rows for t in r["tokens"])
        for c, r in zip(ctxs, rows):
            drawn = r["tokens"] + ([eos] if r["end"] == "eos" else [])
            full = _full_logp(bb, prompts[0], c, drawn)
            want = full[torch.arange(len(drawn)), torch.tensor(drawn)]
            assert torch.allclose(torch.tensor(r["logp"][: len(drawn)]), want, atol=1e-4)
