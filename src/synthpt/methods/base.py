"""What a method sees (:class:`Context`) and what it is (:class:`Method`)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthpt.core.cache import StageResult, run_stage
from synthpt.core.errors import fail
from synthpt.core.knobs import key_of
from synthpt.tasks import Task


def generator_api() -> Any:
    """The generator stage (Stages 1-2), imported on first use."""
    import importlib

    try:
        gen = importlib.import_module("synthpt.generator")
    except ModuleNotFoundError as e:
        if e.name and e.name.startswith("synthpt.generator"):
            raise fail("this method needs the generator stage (synthpt.generator), which is not installed") from None
        raise
    return gen


def _with(cfg: Any, **values: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cfg)}
    return dataclasses.replace(cfg, **{k: v for k, v in values.items() if k in names})


def file_fingerprint(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@dataclass
class Context:
    """Everything a method needs for one (task, seed) cell, plus shared, cached stages.

    ``layout`` is ``"cache"`` in experiments (stages live under ``cache_dir/<kind>/<name>-<hash>``
    and are shared by every method and cell with the same config) or ``"run"`` for
    ``synthpt run`` (fixed names in the output folder: ``split/``, ``generator/``,
    ``synthetic.jsonl``, ``prompt/``).
    """

    task: Task
    seed: int
    k: int
    data_dir: Path | None
    model: str  # backbone
    generator_model: str
    cache_dir: Path
    generator_knobs: dict[str, Any] = field(default_factory=dict)  # GeneratorConfig values
    generation_knobs: dict[str, Any] = field(default_factory=dict)  # GenerationConfig values
    pt_knobs: dict[str, Any] = field(default_factory=dict)  # PromptTrainerConfig values
    forced: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-row overrides, applied last
    options: dict[str, Any] = field(default_factory=dict)  # method-specific knobs
    max_eval: int | None = None
    layout: str = "cache"
    progress: bool = True
    stages: list[StageResult] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)  # prompt-tuning runs of this cell
    _split: StageResult | None = None

    # ---- layout ---------------------------------------------------------------------------
    def _paths(self, kind: str, slug: str, key_cfg: dict[str, Any], run_target: str) -> tuple[Path, Path]:
        if self.layout == "run":
            return self.cache_dir / run_target, self.cache_dir / ".stages" / f"{kind}.json"
        from synthpt.core.runinfo import config_hash

        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", slug)
        base = self.cache_dir / kind / f"{slug}-{config_hash(key_cfg)}"
        return base, base / "stage.json"

    def stage(self, kind: str, slug: str, key_cfg: dict[str, Any], run_target: str, fn: Any,
               file_target: str | None = None, extra: tuple[str, ...] = ()) -> StageResult:
        """Run (or read back) the stage ``kind``: ``fn(target, restart)`` builds ``target``; the
        result is cached by ``key_cfg`` and recorded in ``self.stages``."""
        base, marker = self._paths(kind, slug, key_cfg, run_target)
        target = base / file_target if (file_target and self.layout == "cache") else base
        res = run_stage(kind, target, marker, key_cfg, lambda restart: fn(target, restart),
                        extra_paths=tuple(Path(str(target) + e) for e in extra))
        self.stages.append(res)
        return res

    # ---- stage: the few-shot split ------------------------------------------------------
    @property
    def split(self) -> StageResult:
        if self._split is None:
            from synthpt.data import make_split

            key_cfg = {"task": self.task.to_dict(), "files": dict(self.task.files), "k": self.k, "seed": self.seed,
                       "data_dir": str(Path(self.data_dir).resolve()) if self.data_dir else None}

            def build(target: Path, restart: bool) -> dict[str, Any]:
                meta = make_split(self.task, self.k, self.seed, self.data_dir, target)
                files = [target / n for n in ("train.jsonl", "dev.jsonl", "test.jsonl")]
                return {"fingerprint": file_fingerprint(files), "counts": meta.get("counts"),
                        "source": meta.get("source")}

            self._split = self.stage("split", f"{self.task.name}-k{self.k}-s{self.seed}", key_cfg, "split", build)
        return self._split

    @property
    def split_dir(self) -> Path:
        return self.split.target

    # ---- configs ----------------------------------------------------------------------------
    def generator_config(self, mode: str, **overrides: Any) -> Any:
        gen = generator_api()
        cfg = gen.GeneratorConfig(**self.generator_knobs)
        return _with(cfg, **{"mode": mode, "seed": self.seed, **overrides, **self.forced.get("generator", {})})

    def generation_config(self, **overrides: Any) -> Any:
        gen = generator_api()
        cfg = gen.GenerationConfig(**self.generation_knobs)
        return _with(cfg, **{"seed": self.seed, **overrides, **self.forced.get("generation", {})})

    def prompt_tuning_config(self, **overrides: Any) -> Any:
        from synthpt.prompt_tuning.trainer import PromptTrainerConfig

        cfg = PromptTrainerConfig(**self.pt_knobs)
        return _with(cfg, **{"seed": self.seed, **overrides, **self.forced.get("prompt_tuning", {})})

    # ---- stages 1-2: generator tuning and generation (shared across methods) -------------
    def generator_dir(self, mode: str, **overrides: Any) -> StageResult:
        gen = generator_api()
        cfg = self.generator_config(mode, **overrides)
        key_cfg = {"split": self.split.result["fingerprint"], "task": self.task.to_dict(),
                   "generator_model": self.generator_model, "config": key_of(cfg)}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            res = gen.run_generator_tuning(self.task, str(self.split_dir), self.generator_model, str(target), cfg,
                                           restart=restart, progress=self.progress)
            if self.progress and res.get("dev_probe"):  # Stage 1's own verdict, before hours of Step 2
                from tqdm import tqdm

                from synthpt.generator.probe import describe

                tqdm.write(f"generator {self.task.name} s{self.seed}: {describe(res['dev_probe'])}", file=sys.stderr)
            return res

        return self.stage("generator", f"{self.task.name}-{mode}-s{self.seed}", key_cfg, "generator", build)

    def synthetic(self, mode: str, generator_knobs: dict[str, Any] | None = None,
                  generation_knobs: dict[str, Any] | None = None) -> Path:
        """Tune the ``mode`` generator (``dawgen`` / ``fewgen`` / ``plain``) and generate: the JSONL path."""
        gen = generator_api()
        g = self.generator_dir(mode, **(generator_knobs or {}))
        cfg = self.generation_config(**(generation_knobs or {}))
        key_cfg = {"generator": g.key, "config": key_of(cfg)}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            target.parent.mkdir(parents=True, exist_ok=True)
            return gen.run_generation(str(g.target), str(target), cfg, data=str(self.split_dir), restart=restart,
                                      progress=self.progress)

        res = self.stage("synthetic", f"{self.task.name}-{mode}-s{self.seed}", key_cfg, "synthetic.jsonl", build,
                          file_target="synthetic.jsonl", extra=(".report.json",))
        return res.target

    def heldout(self, n_per_label: int, shuffled_labels: bool = False) -> Path:
        """``n_per_label`` gold rows per label from the training pool, outside the split: the JSONL path.

        The oracle of the synthetic-data methods (method ``pt+gold``): what a perfect generator
        would write, so PT on it bounds what Stages 1-2 can add on this backbone and budget.  Test
        rows are excluded too: a user task whose train and test files overlap must not leak them.
        ``shuffled_labels``: the same rows with their labels permuted (``pt+gold-shuffled``, the
        oracle's control: text without correct labels; :func:`synthpt.data.shuffle_labels`).
        """
        from synthpt.core.io import write_jsonl
        from synthpt.data import load_split, sample_heldout, shuffle_labels, training_pool

        key_cfg = {"split": self.split.result["fingerprint"], "task": self.task.to_dict(),
                   "n_per_label": n_per_label, "seed": self.seed,
                   "data_dir": str(Path(self.data_dir).resolve()) if self.data_dir else None}
        if shuffled_labels:  # only then: the oracle's own key (and cache) stays what it was
            key_cfg["labels"] = "shuffled"

        def build(target: Path, restart: bool) -> dict[str, Any]:
            split = load_split(self.split_dir, self.task)
            rows = sample_heldout(training_pool(self.task, self.data_dir), self.task, n_per_label, self.seed,
                                  exclude=split["train"] + split["dev"] + split["test"], source=f"{self.task.name} training pool")
            if shuffled_labels:
                rows = shuffle_labels(rows, self.seed)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(target, rows)
            return {"rows": len(rows), "fingerprint": file_fingerprint([target])}

        kind = "heldout-shuffled" if shuffled_labels else "heldout"
        res = self.stage("synthetic", f"{self.task.name}-{kind}-s{self.seed}", key_cfg, f"{kind}.jsonl", build,
                          file_target="synthetic.jsonl")
        return res.target

    def few_shot_prompt(self) -> Path:
        """The prompt of plain prompt tuning on the few-shot rows (method ``pt``'s stage, shared with
        it by key): the classifier a user has before any synthetic data, used as a judge."""
        cfg = self.prompt_tuning_config(strategy="real", gradient_surgery=False)
        # experiments: method pt's own cached stage; `synthpt run`: its own folder beside prompt/
        self.run_prompt_tuning(cfg, kind="prompt" if self.layout == "cache" else "judge-prompt")
        return Path(self.runs.pop()["dir"])  # a judge, not one of this cell's training runs

    def judged(self, path: Path, judge: Path) -> Path:
        """The rows of ``path`` whose label the prompt in ``judge`` predicts, balanced over labels
        (:func:`synthpt.data.keep_agreeing`): the JSONL path.  The report records how many rows each
        label had and kept, so a user sees how much of the generator's output the judge trusted."""
        from synthpt.core.classify import predict
        from synthpt.core.io import write_jsonl
        from synthpt.core.saving import load_peft_prompt
        from synthpt.core.scoring import Encoder
        from synthpt.data import keep_agreeing, load_file
        from synthpt.methods.baselines.common import frozen_backbone

        cfg = self.prompt_tuning_config()
        key_cfg = {"rows": file_fingerprint([path]), "judge": file_fingerprint(sorted(judge.glob("adapter_*"))),
                   "model": self.model, "task": self.task.to_dict(), "max_length": cfg.max_length,
                   "seed": self.seed}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            rows = load_file(path, self.task)
            prompt = load_peft_prompt(judge)[0]
            bb = frozen_backbone(self.model)
            enc = Encoder(self.task, bb, max_length=cfg.max_length, prompt_length=prompt.shape[0])
            best = predict(enc, rows, prompt, cfg.eval_batch_size, progress=self.progress, desc="judge").argmax(-1)
            predicted = [self.task.labels[i] for i in best.tolist()]
            kept = keep_agreeing(rows, predicted, self.seed)
            if not kept:
                raise fail(f"{self.task.name} s{self.seed}: the few-shot judge agrees with no row of some label "
                           f"in {path}; nothing left to train on")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(target, kept)
            agree = {lab: sum(p == lab for p, r in zip(predicted, rows) if r["label"] == lab) for lab in self.task.labels}
            return {"rows": len(rows), "kept": len(kept), "agreeing": agree,
                    "agreement": sum(agree.values()) / len(rows), "source": str(path)}

        kind = "synthetic" if self.layout == "cache" else "judged"  # `synthpt run`: its own stage record
        return self.stage(kind, f"{self.task.name}-judged-s{self.seed}", key_cfg, "judged.jsonl", build,
                          file_target="synthetic.jsonl").target

    def label_shuffled(self, path: Path) -> Path:
        """The rows of ``path`` with their labels permuted (seeded, :func:`synthpt.data.shuffle_labels`):
        the JSONL path.

        Why: the control of a synthetic set (method ``ours-shuffled``).  Its rows keep their text,
        count per label and training steps but lose what their labels say, so Ours − control is
        what the generated labels are worth and control − PT what the generated text alone is worth.
        """
        from synthpt.core.io import write_jsonl
        from synthpt.data import load_file, shuffle_labels

        key_cfg = {"rows": file_fingerprint([path]), "task": self.task.to_dict(), "labels": "shuffled",
                   "seed": self.seed}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            rows = shuffle_labels(load_file(path, self.task), self.seed)
            target.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(target, rows)
            return {"rows": len(rows), "source": str(path)}

        kind = "synthetic" if self.layout == "cache" else "shuffled"  # `synthpt run`: its own stage record
        return self.stage(kind, f"{self.task.name}-shuffled-s{self.seed}", key_cfg, "shuffled.jsonl", build,
                          file_target="synthetic.jsonl").target

    def published_subset(self, path: Path, n_per_label: int) -> Path:
        """``n_per_label`` rows per label of a published synthetic set (seeded): the JSONL path.

        Why: ``options.published_per_label`` puts FewGen's published rows at the same N as Ours and
        the oracle, so a data-scale curve compares the data, not the amount of it."""
        from synthpt.core.io import write_jsonl
        from synthpt.data import load_file
        from synthpt.prompt_tuning.recipe import balanced_subset

        key_cfg = {"file": file_fingerprint([path]), "task": self.task.to_dict(), "n_per_label": n_per_label,
                   "seed": self.seed}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            rows = load_file(path, self.task)
            counts = {lab: sum(r["label"] == lab for r in rows) for lab in self.task.labels}
            short = {lab: c for lab, c in counts.items() if c < n_per_label}
            if short:
                raise fail(f"{path}: labels {short} have fewer than options.published_per_label = {n_per_label} rows")
            target.parent.mkdir(parents=True, exist_ok=True)
            write_jsonl(target, balanced_subset(rows, self.task, n_per_label * self.task.num_labels, self.seed))
            return {"rows": n_per_label * self.task.num_labels, "source": str(path)}

        return self.stage("synthetic", f"{self.task.name}-published-n{n_per_label}-s{self.seed}", key_cfg,
                           "published.jsonl", build, file_target="synthetic.jsonl").target

    def cached(self, kind: str, slug: str, key_cfg: dict[str, Any], build: Any) -> StageResult:
        """A method's own content-addressed stage, ``build(target, restart) -> dict`` (the dict is kept):
        shared by every cell and sweep point whose key is the same."""
        return self.stage(kind, slug, key_cfg, kind, build)

    # ---- stage 3: prompt tuning -----------------------------------------------------------
    def run_prompt_tuning(self, cfg: Any, synthetic: str | Path | None = None, init_prompt: str | Path | None = None,
                          tag: str | None = None, kind: str = "prompt") -> dict[str, Any]:
        """:func:`synthpt.prompt_tuning.recipe.run_prompt_tuning` as a cached stage (keyed by its config):
        its metrics."""
        from synthpt.prompt_tuning.recipe import run_prompt_tuning

        syn_fp = None
        if synthetic is not None:
            syn = Path(synthetic)
            if not syn.is_file():
                raise fail(f"{syn}: synthetic data file not found")
            syn_fp = file_fingerprint([syn])
        init_fp = None
        if init_prompt is not None:
            init_fp = file_fingerprint(sorted(Path(init_prompt).glob("adapter_*")))
        from synthpt.prompt_tuning.steps import config_key

        key_cfg = {"split": self.split.result["fingerprint"], "task": self.task.to_dict(), "model": self.model,
                   "config": config_key(cfg), "synthetic": syn_fp, "init_prompt": init_fp,
                   "max_eval": self.max_eval}

        def build(target: Path, restart: bool) -> dict[str, Any]:
            return run_prompt_tuning(self.task, self.split_dir, self.model, target, cfg,
                                     synthetic=str(synthetic) if synthetic else None, init_prompt=init_prompt,
                                     max_eval=self.max_eval, restart=restart, progress=self.progress)

        slug = f"{self.task.name}-{tag or cfg.strategy}{'-gs' if cfg.gradient_surgery else ''}-s{self.seed}"
        res = self.stage(kind, slug, key_cfg, kind, build)
        self.runs.append({"dir": str(res.target), "strategy": cfg.strategy,
                          "gradient_surgery": cfg.gradient_surgery, "synthetic": str(synthetic) if synthetic else None})
        return res.result


@dataclass
class Method:
    """A row of the paper's tables.  Subclass and override :meth:`run` for new kinds of methods."""

    name: str
    display: str
    description: str = ""

    def run(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError

    def trainable_parameters(self, ctx: Context) -> int | None:
        """How many weights the method trains (None: unknown until it runs; metrics may say)."""
        return None

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this method's behaviour in cache keys (its dataclass fields)."""
        return {"class": type(self).__name__, **dataclasses.asdict(self)}


def hidden_size(model: str) -> int:
    from transformers import AutoConfig

    from synthpt.core.models import resolve_model

    cfg = AutoConfig.from_pretrained(resolve_model(model))
    for key in ("d_model", "hidden_size", "n_embd"):
        v = getattr(cfg, key, None)
        if isinstance(v, int):
            return v
    raise fail(f"cannot tell the hidden size of {model}")


GOLD_SETS = ("heldout", "heldout-shuffled")  # the oracle's rows; the same with their labels permuted
FIXED_SETS = ("published", *GOLD_SETS)  # synthetic sets no generator of ours wrote


@dataclass
class PromptTuningMethod(Method):
    """Soft prompt tuning with a data strategy and, optionally, synthetic data.

    ``synthetic``: ``None`` (real only), a generator mode (``dawgen`` / ``fewgen`` / ``plain``:
    tuned and generated by the pipeline, cached), ``published`` (FewGen's released set
    ``<data_dir>/fewgen-synthetic/<TASK>/gen-train.json``) or ``heldout`` (gold rows from the
    training pool outside the split, ``generation.n_per_label`` per label: the oracle) or
    ``heldout-shuffled`` (those rows with their labels permuted: the oracle's control).
    """

    strategy: str = "real"
    gradient_surgery: bool = False
    synthetic: str | None = None
    pt_knobs: dict[str, Any] = field(default_factory=dict)  # the method's own PT knobs
    judge: str | None = None  # "pt": keep the synthetic rows the few-shot PT prompt labels as their own
    labels: str | None = None  # "shuffled": the generated rows with their labels permuted (a control)

    def fingerprint(self) -> dict[str, Any]:
        fp = super().fingerprint()
        for knob in ("judge", "labels"):  # cells cached before these knobs existed keep their keys
            if fp[knob] is None:
                fp.pop(knob)
        return fp

    @property
    def tunes_generator(self) -> bool:
        """Its synthetic rows come from Stages 1-2 (not a published or gold set): a table names the generator."""
        return self.synthetic not in (None, *FIXED_SETS)

    def synthetic_path(self, ctx: Context) -> Path | None:
        if self.synthetic is None:
            return None
        if self.synthetic == "published":
            if ctx.data_dir is None:
                raise fail(f"{self.name}: needs --data-dir (FewGen's published synthetic sets live there)")
            p = Path(ctx.data_dir) / "fewgen-synthetic" / ctx.task.name.upper() / "gen-train.json"
            if not p.is_file():
                raise fail(f"{p}: FewGen's published synthetic set for {ctx.task.name} not found")
            per_label = ctx.options.get("published_per_label")
            if per_label is None:
                return p
            n = ctx.generation_config().n_per_label if per_label == "generation" else per_label
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise fail(f"options.published_per_label: expected a positive integer or 'generation', got {per_label!r}")
            return ctx.published_subset(p, n)
        if self.synthetic in GOLD_SETS:
            return ctx.heldout(ctx.generation_config().n_per_label, shuffled_labels=self.synthetic == GOLD_SETS[1])
        path = ctx.synthetic(self.synthetic)
        if self.judge is not None:
            if self.judge != "pt":
                raise fail(f"{self.name}: unknown judge {self.judge!r} (known: pt)")
            path = ctx.judged(path, ctx.few_shot_prompt())
        if self.labels is not None:
            if self.labels != "shuffled":
                raise fail(f"{self.name}: unknown labels {self.labels!r} (known: shuffled)")
            path = ctx.label_shuffled(path)
        return path

    def run(self, ctx: Context) -> dict[str, Any]:
        syn = self.synthetic_path(ctx)
        cfg = ctx.prompt_tuning_config(strategy=self.strategy, gradient_surgery=self.gradient_surgery,
                                       **self.pt_knobs)
        return ctx.run_prompt_tuning(cfg, syn)

    def trainable_parameters(self, ctx: Context) -> int | None:
        cfg = ctx.prompt_tuning_config(**self.pt_knobs)
        return cfg.prompt_length * hidden_size(ctx.model)
