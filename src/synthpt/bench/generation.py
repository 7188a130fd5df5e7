"""The Step 2 (generation) figures of ``synthpt bench``.

- :func:`generation_speedup`: examples/s of batched, KV-cached sampling of a batch of
  ``[Q_l ; context]`` rows over a per-example loop of the same sampler (target ≥ 3), on a tiny model.
- :func:`real_model_figures` (when ``smollm2-135m`` is available, else one ``skipped`` line):
  ``synthpt generate`` with configs/real-cpu.yaml's generation settings on SST-2 and on MRPC
  (conditioned on the 16-shot train split's first texts), with label prompts initialised as
  Step 1 initialises them (``init_label_prompts``; untuned), once per ``generation.dtype``
  (float32, then bfloat16; each line says which in ``dtype``):

  - ``generation_rows_per_s`` and ``generation_s_per_kept_row`` (target: 0.7 / 3 s, a third of
    run G's), with the seconds and tokens of prefill, decode and consistency scoring and the rows
    each filter dropped;
  - ``generation_vs_compute_limit``: the FLOP rate Step 2 achieves over this machine's matmul
    rate at the model's shapes in the run's dtype, measured in the same process (target ≥ 0.5;
    ``value_against`` names the rate; a bfloat16 run also carries ``vs_bfloat16_matmul`` and
    ``vs_float32_matmul``, its ratio to either rate).  FLOPs are counted
    for every token the model body reads (2 · body params) and every position the LM head scores
    (2 · vocab · d), in prefill, decode and scoring alike; attention's own products are left out;
  - ``generation_vs_hf_generate``: kept rows/s over what a user would write instead (target ≥ 2):
    ``model.generate(inputs_embeds=...)`` on the same ``[Q_l ; context]`` rows, batch size and
    sampling settings (stopping at a line end), then the same filters, every candidate scored
    under every label in one forward, the model in the run's dtype.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from synthpt.bench.common import REAL_MODEL, real_model_missing, result, skipped, sync
from synthpt.bench.generator import DATA_DIR, _mrpc_train
from synthpt.core import distributed as dist
from synthpt.core.models import Backbone, load_backbone
from synthpt.tasks import Task, get_task

REPO = Path(__file__).resolve().parents[3]
RUN_G_S_PER_ROW = 0.7  # run G (issue 22): 346 s for 4 x 128 kept rows, SmolLM2-135M, 2 threads


def generation_speedup(model: str = "tiny-gpt2", n: int = 32, max_new_tokens: int = 32,
                       data_dir: str | Path | None = None) -> dict[str, Any]:
    from synthpt.generator.generation import GenerationConfig, Sampler
    from synthpt.generator.trainer import init_label_prompts

    task = get_task("mrpc")
    train = _mrpc_train(data_dir)
    bb = load_backbone(model, device=dist.device())
    prompts = init_label_prompts(bb, task, 20, 0, True)
    # multi_line: rows run to EOS / max_new_tokens in both modes (no early line-end stop in the loop only)
    cfg = GenerationConfig(batch_size=n, max_new_tokens=max_new_tokens, multi_line=True)
    s = Sampler(bb, task, prompts, cfg, 128)
    context_ids = [s.enc.context(train[i % len(train)], max_new_tokens + 1) for i in range(n)]
    eos = s.enc.eos
    s._generate(0, context_ids[:2], 0)  # warm-up
    t = time.perf_counter()
    s._generate(0, context_ids, 1)
    t_batched = time.perf_counter() - t
    tok_batched = sum(len(r["tokens"]) + (r["end"] == "eos") for r in s.rows) if s.engine else 0
    t = time.perf_counter()
    tok_loop = 0
    for i, c in enumerate(context_ids):
        s._generate(0, [c], 100 + i)  # the same rows, one call each
        tok_loop += sum(len(r["tokens"]) + (r["end"] == "eos") for r in s.rows) if s.engine else 0
    t_loop = time.perf_counter() - t
    speed = t_loop / t_batched
    return {"name": "generation_speedup_vs_loop", "value": round(speed, 2), "target": 3.0, "holds": speed >= 3.0,
            "batched_examples_per_s": round(n / t_batched, 2), "loop_examples_per_s": round(n / t_loop, 2),
            "batched_tokens_per_s": round(tok_batched / t_batched, 1), "loop_tokens_per_s": round(tok_loop / t_loop, 1),
            "n": n, "max_new_tokens": max_new_tokens, "eos": eos, "model": model, "device": str(bb.device)}


# ---- the real model ----------------------------------------------------------------------------
def smollm2_available() -> str | None:
    """None when ``smollm2-135m`` loads without a download, else why not (one line)."""
    return real_model_missing(REAL_MODEL)


def real_cpu_settings() -> dict[str, Any]:
    """configs/real-cpu.yaml's ``generation`` and ``generator`` sections (the issue's defaults without it)."""
    import yaml

    p = REPO / "configs" / "real-cpu.yaml"
    gen = {"batch_size": 16, "max_new_tokens": 40, "temperature": 1.0, "top_p": 0.9, "min_words": 4, "max_words": 40}
    tun = {"prompt_length": 8, "max_length": 96}
    if p.is_file():
        doc = yaml.safe_load(p.read_text()) or {}
        gen.update({k: v for k, v in (doc.get("generation") or {}).items() if k != "n_per_label"})
        tun.update({k: v for k, v in (doc.get("generator") or {}).items() if k in tun})
    return {"generation": gen, "generator": tun}


def write_init_generator(bb: Backbone, task: Task, split: Path, out: Path, prompt_length: int,
                         max_length: int) -> Path:
    """A generator folder whose label prompts are Step 1's initialisation (no tuning)."""
    from synthpt.core.io import write_json
    from synthpt.generator.saving import save_generator
    from synthpt.generator.trainer import init_label_prompts

    out.mkdir(parents=True, exist_ok=True)
    save_generator(out, task, init_label_prompts(bb, task, prompt_length, 42, True), None)
    write_json(out / "generator.json", {"task": task.to_dict(), "model": REAL_MODEL, "data": str(split),
                                        "mode": "init", "config": {"max_length": max_length},
                                        "config_hash": f"init-{prompt_length}"})
    return out


def matmul_rate(bb: Backbone, rows: int = 256, reps: int = 5, clock: Any = time.perf_counter) -> float:
    """FLOP/s of ``rows`` x the model's own weight matrices in their dtype, weighted as a token meets them
    (every layer's linear maps, then the LM head); the best of ``reps`` after a warm-up (the
    machine's rate, not its noise)."""
    import torch.nn.functional as F

    lin = [m.weight for m in bb.model.base_model.layers[0].modules() if isinstance(m, torch.nn.Linear)]
    head = bb.model.get_output_embeddings().weight
    n_layers = len(bb.model.base_model.layers)
    x = {w.shape[1]: torch.randn(rows, w.shape[1], dtype=w.dtype, device=w.device) for w in [*lin, head]}
    flops = 2 * rows * (n_layers * sum(w.numel() for w in lin) + head.numel())
    with torch.no_grad():
        t_layer = min(_time(lambda: [F.linear(x[w.shape[1]], w) for w in lin], clock) for _ in range(reps + 1))
        t_head = min(_time(lambda: F.linear(x[head.shape[1]], head), clock) for _ in range(reps + 1))
    return flops / (n_layers * t_layer + t_head)


def _time(fn: Any, clock: Any = time.perf_counter) -> float:
    """Seconds of ``fn`` on ``clock``, the device's queued work finished before each read."""
    sync()
    t = clock()
    fn()
    sync()
    return clock() - t


def model_flops(bb: Backbone) -> tuple[int, int]:
    """(FLOPs per token through the body, FLOPs per position through the LM head)."""
    emb = bb.model.get_input_embeddings().weight
    head = bb.model.get_output_embeddings().weight
    total = sum(p.numel() for p in bb.model.parameters())
    body = total - emb.numel() - (0 if head.data_ptr() == emb.data_ptr() else head.numel())
    return 2 * body, 2 * head.numel()


def _split(task: Task, out: Path, data_dir: Path) -> Path:
    from synthpt.data import make_split

    make_split(task, 16, 42, data_dir, out)
    return out


def hf_side(bb: Backbone, gdir: Path, cfg: Any, split: Path) -> dict[str, Any]:
    """What a user would write: ``model.generate(inputs_embeds=...)`` on batches of ``[Q_l ; context]``
    rows (the same draws of first texts, batch size and sampling), then the same filters, every
    candidate scored under every label (:meth:`Sampler.consistency` without the engine)."""
    from synthpt.generator.filters import Filters
    from synthpt.generator.generation import Sampler, _first_text_pool, round_seed
    from synthpt.generator.saving import load_prompts, read_generator_meta

    meta = read_generator_meta(gdir)
    task = Task.from_dict(meta["task"])
    s = Sampler(bb, task, load_prompts(gdir, task), cfg, int(meta["config"]["max_length"]), use_engine=False)
    pool = _first_text_pool(task, cfg, split)
    filters = Filters(cfg, task)
    kept = attempts = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for li in range(task.num_labels):
        k, r = 0, 0
        while k < cfg.n_per_label and r < cfg.max_attempts_factor * cfg.n_per_label:
            order = random.Random(round_seed(cfg.seed, li, r)).choices(range(len(pool)), k=cfg.batch_size)
            cands = s.candidates(li, [pool[i] for i in order], round_seed(cfg.seed, li, r))
            filled = [all(str(c[f]).strip() for f in task.fields) for c in cands]
            it = iter(s.consistency([c for c, ok in zip(cands, filled) if ok]))
            for c, ok in zip(cands, filled):
                sc = next(it) if ok else float("nan")
                if k < cfg.n_per_label and filters.check(c, sc) is None:
                    filters.add(c)
                    k += 1
            attempts += len(cands)
            r += 1
        kept += k
    return {"wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0, "kept": kept, "attempts": attempts}


def _ours(gdir: Path, cfg: Any, split: Path, out: Path) -> dict[str, Any]:
    from synthpt.generator.generation import run_generation

    rep = run_generation(gdir, out, cfg, data=split, restart=True, progress=False)
    return {"wall_s": rep["timing"]["wall_s"], "cpu_s": rep["timing"]["cpu_s"], "kept": sum(rep["kept"].values()),
            "attempts": sum(rep["attempts"].values()), "report": rep}


def _rates(bbs: dict[str, Backbone]) -> dict[str, tuple[float, float]]:
    """Per dtype: the matmul rate of the model's shapes on the wall clock and on the CPU clock."""
    return {d: (matmul_rate(b), matmul_rate(b, clock=time.process_time)) for d, b in bbs.items()}


def _one(name: str, dtype: str, bbs: dict[str, Backbone], gdir: Path, cfg: Any, split: Path, tmp: Path,
         common: dict[str, Any], with_hf: bool) -> list[dict[str, Any]]:
    """The figures of one task in one dtype (:func:`real_model_figures`)."""
    body, head = model_flops(bbs[dtype])
    # the machine's rates on the model's shapes, before and after (the best of both); on CPU time too,
    # which a shared machine's other processes do not inflate (one thread: CPU time = own work).  A
    # bfloat16 run is held against both the bfloat16 and the float32 rate
    before = _rates(bbs)
    ours = _ours(gdir, cfg, split, tmp / f"{name}-{dtype}.jsonl")
    after = _rates(bbs)
    rates = {d: (max(before[d][0], after[d][0]), max(before[d][1], after[d][1])) for d in bbs}
    rep = ours["report"]
    tim = rep["timing"]
    flops = sum(body * tim["tokens"][p] + head * tim["head_tokens"][p] for p in tim["tokens"])
    common = dict(common, dtype=dtype, kept=ours["kept"], attempts=ours["attempts"],
                  load_average=round(os.getloadavg()[0], 2))
    one = torch.get_num_threads() == 1
    res: list[dict[str, Any]] = []
    s_row = ours["wall_s"] / max(1, ours["kept"])
    parts = {p: round(tim["seconds"][p], 3) for p in tim["seconds"]}
    parts["other"] = round(ours["wall_s"] - sum(tim["seconds"].values()), 3)
    res.append(result("generation_rows_per_s", ours["kept"] / ours["wall_s"], None, True,
                       wall_s=round(ours["wall_s"], 2), cpu_s=ours["cpu_s"], seconds=parts, tokens=tim["tokens"],
                       head_tokens=tim["head_tokens"], dropped=rep["dropped"], **common))
    target = RUN_G_S_PER_ROW / 3
    res.append(result("generation_s_per_kept_row", s_row, round(target, 4), s_row <= target,
                       cpu_s_per_kept_row=round(ours["cpu_s"] / max(1, ours["kept"]), 4),
                       run_g_s_per_row=RUN_G_S_PER_ROW, **common))
    # the value: against the matmul rate of the run's own dtype; a bfloat16 run also against float32's
    ratios = {d: (flops / ours["wall_s"] / rates[d][0], flops / tim["cpu_s"] / rates[d][1]) for d in rates}
    # one thread: CPU seconds on both sides (a loaded machine's time slices cancel out);
    # more threads: wall seconds (CPU time would count every thread)
    ratio = ratios[dtype][1] if one else ratios[dtype][0]
    vs = {f"vs_{d}_matmul": {"ratio": round(ratios[d][1] if one else ratios[d][0], 4),
                             "wall_ratio": round(ratios[d][0], 4), "cpu_ratio": round(ratios[d][1], 4),
                             "matmul_gflop_per_s": round(rates[d][0] / 1e9, 2),
                             "matmul_gflop_per_cpu_s": round(rates[d][1] / 1e9, 2)} for d in rates}
    res.append(result("generation_vs_compute_limit", ratio, 0.5, ratio >= 0.5, value_against=f"{dtype} matmul rate",
                       clock="cpu" if one else "wall", wall_ratio=round(ratios[dtype][0], 4),
                       cpu_ratio=round(ratios[dtype][1], 4), cpu_s=tim["cpu_s"],
                       achieved_gflop_per_s=round(flops / ours["wall_s"] / 1e9, 2),
                       achieved_gflop_per_cpu_s=round(flops / tim["cpu_s"] / 1e9, 2),
                       matmul_gflop_per_s=round(rates[dtype][0] / 1e9, 2),
                       matmul_gflop_per_cpu_s=round(rates[dtype][1] / 1e9, 2), matmul_rows=256,
                       **(vs if len(vs) > 1 else {}), gflop=round(flops / 1e9, 1), **common))
    if with_hf:
        hf = hf_side(bbs[dtype], gdir, cfg, split)
        ours2 = _ours(gdir, cfg, split, tmp / f"{name}-{dtype}-2.jsonl")  # after, so both see the same load
        rate = {k: statistics.fmean([o["kept"] / o[k] for o in (ours, ours2)]) for k in ("wall_s", "cpu_s")}
        hf_rate = {k: hf["kept"] / hf[k] for k in ("wall_s", "cpu_s")}
        sp = {k: rate[k] / hf_rate[k] for k in rate}
        value = sp["cpu_s"] if one else sp["wall_s"]
        res.append(result("generation_vs_hf_generate", value, 2.0, value >= 2.0, clock="cpu" if one else "wall",
                           wall_ratio=round(sp["wall_s"], 4), cpu_ratio=round(sp["cpu_s"], 4),
                           synthpt_rows_per_s=round(rate["wall_s"], 3), hf_rows_per_s=round(hf_rate["wall_s"], 3),
                           synthpt_rows_per_cpu_s=round(rate["cpu_s"], 3),
                           hf_rows_per_cpu_s=round(hf_rate["cpu_s"], 3),
                           hf_wall_s=round(hf["wall_s"], 2), hf_cpu_s=round(hf["cpu_s"], 2),
                           hf_attempts=hf["attempts"], synthpt_wall_s=[ours["wall_s"], ours2["wall_s"]],
                           synthpt_cpu_s=[ours["cpu_s"], ours2["cpu_s"]],
                           how=f"synthpt generate, then HF generate ({dtype} model) + the same filters, then "
                               "synthpt generate again (mean of the two)", **common))
    return res


def real_model_figures(quick: bool = True, data_dir: str | Path | None = None,
                       tasks: tuple[str, ...] = ("sst-2", "mrpc"),
                       dtypes: tuple[str, ...] = ("float32", "bfloat16"), n: int | None = None) -> list[dict[str, Any]]:
    """The real-model figures (see the module's docstring); one ``skipped`` line without the model.
    Each figure once per task and ``generation.dtype`` (``dtype`` in its line)."""
    from synthpt.core.models import DTYPES
    from synthpt.generator.generation import GenerationConfig

    why = smollm2_available()
    d = Path(data_dir) if data_dir else DATA_DIR
    if why is None and not d.is_dir():
        why = f"benchmark data not found at {d}"
    if why is not None:
        return [skipped("generation_real_model", REAL_MODEL, why, None)]
    settings = real_cpu_settings()
    n = n or (32 if quick else 128)
    bb = load_backbone(REAL_MODEL, device=dist.device(), dtype=torch.float32)
    res: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in tasks:
            task = get_task(name)
            split = _split(task, Path(tmp) / f"{name}-split", d)
            gdir = write_init_generator(bb, task, split, Path(tmp) / f"{name}-gen", **settings["generator"])
            common = dict(task=name, model=REAL_MODEL, n_per_label=n, settings=settings["generation"], quick=quick,
                          torch=torch.__version__)
            for dtype in dtypes:
                bbs = {"float32": bb} if dtype == "float32" else {
                    dtype: load_backbone(REAL_MODEL, device=dist.device(), dtype=DTYPES[dtype]), "float32": bb}
                cfg = GenerationConfig(**{**settings["generation"], "n_per_label": n, "dtype": dtype})
                res += _one(name, dtype, bbs, gdir, cfg, split, Path(tmp), common, name == tasks[0])
    return res


if __name__ == "__main__":  # python -m synthpt.bench.generation: the real-model figures alone
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    for r in real_model_figures(quick=os.environ.get("QUICK", "1") == "1",
                                dtypes=tuple(os.environ.get("DTYPES", "float32,bfloat16").split(","))):
        print(json.dumps(r), flush=True)
