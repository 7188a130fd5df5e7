"""Stage 2 precision (``generation.dtype``): bfloat16 generation runs, writes rows and repeats itself
for a fixed seed; sampling reads float32 logits; the default keeps every earlier cache key.  Tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from synthpt.core.io import write_json
from synthpt.core.knobs import key_of
from synthpt.core.runinfo import config_hash
from synthpt.generator import GenerationConfig, run_generation
from synthpt.tasks import get_task


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One CPU thread: the machine is shared and tiny models gain nothing (conftest isolates the cache)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def gen_dir(tmp_path_factory) -> Path:
    """An SST-2 generator on tiny-gpt2 whose label prompts are Step 1's initialisation (no tuning)."""
    from synthpt.core.models import load_backbone
    from synthpt.generator.saving import save_generator
    from synthpt.generator.trainer import init_label_prompts

    out = tmp_path_factory.mktemp("dtype") / "gen"
    out.mkdir()
    task = get_task("sst-2")
    bb = load_backbone("tiny-gpt2")
    save_generator(out, task, init_label_prompts(bb, task, 4, 0, True), None)
    write_json(out / "generator.json", {"task": task.to_dict(), "model": "tiny-gpt2", "data": None, "mode": "init",
                                        "config": {"max_length": 64}, "config_hash": "init-4"})
    return out


def _cfg(**kw) -> GenerationConfig:
    base = dict(n_per_label=5, batch_size=4, max_new_tokens=10, consistency_margin=-1e9, max_words=100)
    base.update(kw)
    return GenerationConfig(**base)


def test_default_dtype_keeps_the_cache_keys_of_earlier_runs():
    """Pinned: these hashes were computed before ``dtype`` and ``markup_tokens`` existed (``asdict`` of
    the config then); ``markup_tokens: true`` is what those runs did, and its new default gives new keys."""
    assert config_hash({"generation": key_of(GenerationConfig(markup_tokens=True))}) == "706b8a8d1c52"
    assert config_hash({"generation": key_of(GenerationConfig())}) != "706b8a8d1c52"
    old = _cfg(n_per_label=6, batch_size=8, max_new_tokens=12, max_words=GenerationConfig().max_words,
               markup_tokens=True)
    assert config_hash({"generation": key_of(old)}) == "c94d90a19c6e"
    bf = key_of(_cfg(dtype="bfloat16"))
    assert bf["dtype"] == "bfloat16" and "dtype" not in key_of(_cfg())
    assert config_hash(bf) != config_hash(key_of(_cfg()))


def test_bfloat16_generation_runs_repeats_and_resumes(gen_dir, tmp_path, monkeypatch):
    import synthpt.core.models as models

    seen: list[torch.dtype] = []
    load = models.load_backbone

    def spy(*a, **k):
        bb = load(*a, **k)
        seen.append(bb.model.dtype)
        return bb

    monkeypatch.setattr(models, "load_backbone", spy)
    a = run_generation(gen_dir, tmp_path / "a.jsonl", _cfg(dtype="bfloat16"), progress=False)
    b = run_generation(gen_dir, tmp_path / "b.jsonl", _cfg(dtype="bfloat16"), progress=False)
    assert b["kept"] == a["kept"] and b["config_hash"] == a["config_hash"]
    assert seen == [torch.bfloat16, torch.bfloat16]
    assert a["kept"] == {"0": 5, "1": 5} and a["config"]["dtype"] == "bfloat16"
    text = (tmp_path / "a.jsonl").read_text()
    rows = [json.loads(x) for x in text.splitlines()]
    assert len(rows) == 10 and all(r["text"].strip() and r["score"] == r["score"] for r in rows)
    assert text == (tmp_path / "b.jsonl").read_text()  # bit for bit, same seed
    f = run_generation(gen_dir, tmp_path / "f.jsonl", _cfg(), progress=False)
    assert seen[-1] == torch.float32 and f["config_hash"] != a["config_hash"]
    again = run_generation(gen_dir, tmp_path / "a.jsonl", _cfg(dtype="bfloat16"), progress=False)
    assert again == a and len(seen) == 3  # finished: read back, no model loaded


def test_bfloat16_engine_samples_from_float32_logits(gen_dir):
    from synthpt.core.models import load_backbone
    from synthpt.generator.generation import Sampler
    from synthpt.generator.saving import load_prompts

    task = get_task("sst-2")
    bb = load_backbone("tiny-gpt2", dtype=torch.bfloat16)
    s = Sampler(bb, task, load_prompts(gen_dir, task), _cfg(dtype="bfloat16"), 64)
    assert s.prompts.dtype == torch.bfloat16  # Q_l cast once, at use
    h = torch.randn(3, bb.hidden_size, dtype=torch.bfloat16)
    assert s.engine._logits(h).dtype == torch.float32
    cands = s.candidates(0, [{}] * 4, 1)
    assert all(torch.isfinite(torch.tensor(r["logp"])).all() for r in s.rows)
    scores = s.consistency(cands)
    assert len(scores) == 4 and all(x == x for x in scores)


def test_dtype_flag_and_set(tmp_path, capsys):
    from synthpt.cli import main
    from synthpt.experiments.config import run_defaults

    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    assert "--dtype {float32,bfloat16,float16}" in capsys.readouterr().out
    assert main(["generate", "--generator", str(tmp_path), "--out", str(tmp_path / "x.jsonl"),
                 "--dtype", "int8"]) == 2
    st = run_defaults()
    st.set("generation.dtype", "bfloat16", where="--set generation.dtype")
    assert st.sections["generation"]["dtype"] == "bfloat16"
    cfg = GenerationConfig(**{**st.sections["generation"], "dtype": "bfloat16"})
    cfg.validate()
    assert cfg.dtype == "bfloat16"


def test_half_precision_attention_runs_in_float32_on_cpu():
    """A bfloat16 model's attention goes through attention.py (products in float32): its logits stay
    those of the model (up to bfloat16 rounding); a float32 model is left alone, bit for bit."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from synthpt.generator.attention import NAME, float32_attention

    cfg = LlamaConfig(vocab_size=64, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128)
    torch.manual_seed(0)
    ref = LlamaForCausalLM(cfg).eval()
    ids = torch.randint(0, 64, (3, 12))
    mask = torch.ones_like(ids)
    mask[0, :4] = 0  # a padded row
    with torch.no_grad():
        want = ref(input_ids=ids, attention_mask=mask).logits
        assert not float32_attention(ref) and ref.config._attn_implementation == "sdpa"
        assert torch.equal(ref(input_ids=ids, attention_mask=mask).logits, want)
        half = LlamaForCausalLM(cfg).eval()
        half.load_state_dict(ref.state_dict())
        half.to(torch.bfloat16)
        stock = half(input_ids=ids, attention_mask=mask).logits.float()
        assert float32_attention(half) and half.config._attn_implementation == NAME
        got = half(input_ids=ids, attention_mask=mask).logits.float()
    keep = mask.bool()
    err, stock_err = (got - want)[keep].abs().max(), (stock - want)[keep].abs().max()
    assert not torch.equal(got, stock) and err < 0.1 and err <= 2 * stock_err
