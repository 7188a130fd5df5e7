"""Figure 5 of ``synthpt bench``: batched verbalizer scoring (``synthpt.core.classify.predict``)
against batched greedy generate-then-parse, on the same model, inputs, soft prompt and batch
size, both under ``torch.inference_mode``.

Generation gets the fewest new tokens that can spell every label word (plus the sentinel on T5
and an end token), so the comparison is the least favourable to scoring.  Both sides read the
whole input once; what scoring saves is the decoding after it, and on a causal LM the soft
prompt's share of the input (run once as a KV prefix, not in front of every row).  Two models:
the T5-small shape with the byte-level tokenizer (SST-2's words are 8 tokens each) and
SmolLM2-135M with its own tokenizer (" negative" / " positive" are one token each).
"""

from __future__ import annotations

from typing import Any

import torch

from synthpt.bench.common import (
    INPUT_TOKENS,
    REAL_MODEL,
    bench_examples,
    interleaved,
    real_backbone,
    real_model_missing,
    result,
    skipped,
    t5_small_backbone,
)
from synthpt.core.models import Backbone

PROMPT = 20  # soft-prompt tokens on both sides (the configs' prompt_tuning.prompt_length)


def _generate_then_parse(bb: Backbone, enc: Any, examples: list[dict], prompt: torch.Tensor, batch_size: int,
                         max_new: int, words: list[str]) -> list[int]:
    """What a user would write instead of scoring: generate greedily with the soft prompt in front of
    the (right-padded on T5, left-padded on a causal LM) inputs, then find the first label word."""
    from synthpt.core.scoring import _with_prompt, pad_right

    ids = enc.encode_many(examples)
    pad = bb.tokenizer.pad_token_id
    preds = []
    for s in range(0, len(ids), batch_size):
        chunk = ids[s : s + batch_size]
        if bb.is_seq2seq:
            x, m = pad_right(chunk, pad)
        else:  # left padding: every row's continuation starts right after its last token
            x, m = pad_right([c[::-1] for c in chunk], pad)
            x, m = x.flip(1), m.flip(1)
        emb, att = _with_prompt(bb, x.to(bb.device), m.to(bb.device), prompt)
        out = bb.model.generate(inputs_embeds=emb, attention_mask=att, max_new_tokens=max_new,
                                do_sample=False, num_beams=1, pad_token_id=pad)
        for text in bb.tokenizer.batch_decode(out, skip_special_tokens=True):
            hits = [(text.find(w), li) for li, w in enumerate(words) if w in text]
            preds.append(min(hits)[1] if hits else -1)
    return preds


def _speedup(bb: Backbone, n: int, batch_size: int, reps: int, prompt_tokens: int = PROMPT,
             **details: Any) -> dict[str, Any]:
    from synthpt.core.classify import predict
    from synthpt.core.scoring import Encoder
    from synthpt.core.soft_prompt import init_from_vocab
    from synthpt.tasks import get_task

    task = get_task("sst2")
    prompt = init_from_vocab(bb, prompt_tokens, 0).to(bb.device)
    enc = Encoder(task, bb, max_length=prompt_tokens + INPUT_TOKENS, prompt_length=prompt_tokens)
    examples = bench_examples(n, n_words=20)
    longest = max(len(x) for x in enc.label_ids)
    max_new = (1 if bb.is_seq2seq else 0) + longest + 1  # (sentinel) + longest word + an end token
    gen = torch.inference_mode()(lambda: _generate_then_parse(bb, enc, examples, prompt, batch_size, max_new,
                                                              task.words()))
    lens = [len(x) for x in enc.encode_many(examples)]
    t = interleaved({"score": lambda: predict(enc, examples, prompt, batch_size).argmax(-1), "generate": gen}, reps)
    speed = t["generate"] / t["score"]
    return result("eval_speedup_vs_generate", speed, 2.0, speed >= 2.0,
                  scoring_examples_per_s=round(n / t["score"], 2), generate_examples_per_s=round(n / t["generate"], 2),
                  n=n, batch_size=batch_size, reps=reps, max_new_tokens=max_new, prompt_tokens=prompt_tokens,
                  input_tokens=[min(lens), max(lens)],
                  label_word_tokens=[len(x) for x in enc.label_ids], task="sst2", inference_mode=True, **details)


def eval_speedup_vs_generate(n: int = 64, batch_size: int = 32, dtype: torch.dtype | None = None,
                             reps: int = 3) -> dict[str, Any]:
    """T5-small shape, byte-level tokenizer: SST-2's label words are 8 tokens each."""
    return _speedup(t5_small_backbone(dtype), n, batch_size, reps, model="t5-small-shaped random (byte-level)")


def eval_speedup_vs_generate_real(n: int = 64, batch_size: int = 32, reps: int = 3,
                                  prompt_tokens: int = PROMPT) -> dict[str, Any]:
    """SmolLM2-135M and its tokenizer: one token per label word, scoring reads one position.

    ``prompt_tokens``: the configs' 20 or the library's default 100.  On a causal LM scoring runs
    the prompt once as a KV prefix while generate runs it in front of every row, so the longer the
    prompt, the more scoring saves: both lengths are printed, neither alone tells a user's case."""
    why = real_model_missing()
    if why:
        return skipped("eval_speedup_vs_generate", REAL_MODEL, why, 2.0)
    return _speedup(real_backbone(), n, batch_size, reps, prompt_tokens, model=REAL_MODEL)
