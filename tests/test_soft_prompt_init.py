"""Soft prompts start where real tokens enter the model: from the embedding *module's* output.

Gemma multiplies token vectors by √d inside its embedding module; a prompt copied from the
rows of the embedding table would start √d times too small (25× on Gemma 3 270M)."""

from __future__ import annotations

import math

import torch

from synthpt.core.soft_prompt import embed_tokens, init_from_vocab
from synthpt.tasks import get_task


def _token_norm(bb) -> float:
    """Mean norm of the vectors a real sentence enters the model with."""
    ids = torch.tensor([bb.tokenizer("a fine, moving film about friendship")["input_ids"]])
    return bb.embed(ids)[0].norm(dim=-1).mean().item()


def test_tiny_gemma_scales_its_embedding(tiny_gemma):
    """The premise: the module's output is √d times the table's rows (else this file tests nothing)."""
    ids = torch.tensor([[5, 17, 40]])
    table = tiny_gemma.model.get_input_embeddings().weight[ids[0]]
    ratio = (tiny_gemma.embed(ids)[0].norm(dim=-1) / table.norm(dim=-1)).mean().item()
    assert math.isclose(ratio, math.sqrt(64), rel_tol=1e-2)


def test_embed_tokens_is_the_module_output(tiny_gemma, tiny_gpt2):
    for bb in (tiny_gemma, tiny_gpt2):
        ids = [3, 9, 27]
        out = embed_tokens(bb, ids)
        assert out.shape == (3, bb.hidden_size) and out.dtype == torch.float32 and not out.requires_grad
        assert torch.allclose(out, bb.embed(torch.tensor([ids]))[0].float())


def test_vocab_init_matches_embedded_tokens_norm(tiny_gemma):
    prompt = init_from_vocab(tiny_gemma, 20, seed=0)  # (20, d)
    ratio = prompt.norm(dim=-1).mean().item() / _token_norm(tiny_gemma)
    assert 0.7 < ratio < 1.4, ratio  # the table's rows would give 1/8


def test_vocab_init_unchanged_on_plain_embeddings(tiny_gpt2):
    """GPT-2 / Llama / T5 embed without a scale: the prompt is exactly the table's rows."""
    prompt = init_from_vocab(tiny_gpt2, 6, seed=3)
    ids = torch.randint(0, min(5000, tiny_gpt2.model.get_input_embeddings().weight.shape[0]), (6,),
                        generator=torch.Generator().manual_seed(3))
    assert torch.equal(prompt, tiny_gpt2.model.get_input_embeddings().weight[ids].float())


def test_label_prompts_start_from_embedded_label_words(tiny_gemma):
    from synthpt.generator.trainer import init_label_prompts

    task = get_task("sst-2")
    length = 12
    Q = init_label_prompts(tiny_gemma, task, length, seed=1, from_words=True)  # (L, n, d)
    assert Q.shape == (task.num_labels, length, tiny_gemma.hidden_size)
    for li, word in enumerate(task.words()):
        ids = tiny_gemma.tokenizer(" " + word, add_special_tokens=False)["input_ids"][-length:]
        assert torch.allclose(Q[li, length - len(ids):], embed_tokens(tiny_gemma, ids))
    ratio = Q.norm(dim=-1).mean().item() / _token_norm(tiny_gemma)
    assert 0.7 < ratio < 1.4, ratio


def test_embedding_scale_is_the_modules_factor(tiny_gemma, tiny_gpt2):
    from synthpt.core.soft_prompt import embedding_scale

    assert math.isclose(embedding_scale(tiny_gemma), math.sqrt(64), rel_tol=1e-2)
    assert embedding_scale(tiny_gpt2) == 1.0  # exactly: plain models keep their learning rate bit for bit


def test_generator_lr_moves_label_prompts_as_far_relative_to_tokens(tiny_gemma, tiny_gpt2):
    """Adam's first step moves each coordinate by ~lr: on a model that scales its embedding by s,
    Q must move s * lr to move as far relative to the vectors around it (issue 23: with the
    absolute lr, 12 DawGen steps left Gemma's label prompts where they started)."""
    from synthpt.generator.config import GeneratorConfig
    from synthpt.generator.trainer import GeneratorTrainer

    task = get_task("sst-2")
    rows = [{"text": t, "label": str(i % 2)} for i, t in enumerate(["a dull, tired film", "a warm and funny film",
                                                                       "nothing works here", "a small joy"])]

    def first_move(bb, relative: bool) -> float:
        cfg = GeneratorConfig(mode="plain", prompt_length=4, batch_size=4, max_length=64, lr=0.01, lr_relative=relative)
        tr = GeneratorTrainer(task, bb, cfg, rows, progress=False)
        before = tr.Q.detach().clone()
        tr.train_step(0)
        return (tr.Q.detach() - before).abs().max().item()

    assert math.isclose(first_move(tiny_gemma, True), 0.01 * math.sqrt(64), rel_tol=0.02)
    assert math.isclose(first_move(tiny_gemma, False), 0.01, rel_tol=0.02)
    assert math.isclose(first_move(tiny_gpt2, True), 0.01, rel_tol=0.02)
