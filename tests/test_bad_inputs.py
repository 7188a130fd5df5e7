"""A catalogue of bad inputs: each gives ONE line on stderr, exit code 2, and touches nothing.

Every CLI case runs in-process through ``synthpt.cli.main`` and checks
- exit code 2 (argparse errors included);
- stderr is exactly one line, starting ``synthpt: error:``, matching the case's pattern
  (what is wrong and where: the file, and the row where it applies), no traceback;
- earlier outputs are intact: every file that existed under the test's folder before the
  call has the same bytes after it (prompt-tune cases pass ``--restart`` over a finished
  run, so a restart that deletes before validating its inputs would show up), and no
  temporary file is left behind.
A few cases go through ``python -m synthpt`` for the real process exit code, and a table of
Python-API cases checks the library raises :class:`SynthptError` with the same messages.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from synthpt.cli import main
from synthpt.core.errors import SynthptError

# ---------------------------------------------------------------------------- environment


class Env:
    """Paths a case builds its command from; files are written on demand under ``tmp``."""

    def __init__(self, tmp: Path, split: Path, adapter: Path) -> None:
        self.tmp, self.split, self.adapter = tmp, split, adapter
        self.prev = tmp / "prev"  # a finished prompt-tune run that a failing run must not touch
        self.prev.mkdir()
        (self.prev / "metrics.json").write_text('{"config_hash": "earlier", "test": {"accuracy": 0.5}}\n')
        (self.prev / "log.jsonl").write_text('{"step": 1, "loss": 0.7}\n')
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy2(adapter / name, self.prev / name)

    def file(self, name: str, content: bytes | str) -> str:
        p = self.tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
        return str(p)

    def spec(self, body: str, name: str = "spec.yaml") -> str:
        return self.file(name, body)

    def split_with(self, name: str, **files: str | None) -> str:
        """A copy of the RTE split with some files replaced (text) or removed (None)."""
        d = self.tmp / name
        shutil.copytree(self.split, d)
        for fname, content in files.items():
            target = d / f"{fname}.jsonl"
            if content is None:
                target.unlink()
            else:
                target.write_text(content)
        return str(d)

    def generator(self, name: str = "gen", meta: str | None = None, prompts: bytes | None = None) -> str:
        """A generator folder; ``meta`` / ``prompts`` replace its files (default: a valid meta)."""
        from synthpt.tasks import get_task

        d = self.tmp / name
        d.mkdir()
        if meta is None:
            meta = json.dumps({"task": get_task("rte").to_dict(), "model": "tiny-gpt2", "data": str(self.split),
                               "mode": "plain", "config": {"max_length": 64}, "config_hash": "x"})
        (d / "generator.json").write_text(meta)
        if prompts is not None:
            (d / "prompts.safetensors").write_bytes(prompts)
        return str(d)

    def pt(self, *extra: str, out: str | None = None, restart: bool = True) -> list[str]:
        return ["prompt-tune", "--task", "rte", "--data", str(self.split), "--model", "tiny-t5", "--max-steps", "2",
                "--prompt-length", "4", "--max-length", "64", "--max-eval", "20",
                "--out", out or str(self.prev), *(["--restart"] if restart else []), *extra]

    def syn(self, name: str, content: bytes | str, *extra: str) -> list[str]:
        return self.pt("--strategy", "paired", "--synthetic", self.file(name, content), *extra)

    def gtune(self, *extra: str, out: str | None = None) -> list[str]:
        return ["generator", "tune", "--task", "rte", "--data", str(self.split), "--model", "tiny-gpt2",
                "--max-steps", "2", "--prompt-length", "4", "--max-length", "64",
                "--out", out or str(self.tmp / "gtune"), *extra]

    def generate(self, generator: str, *extra: str, out: str | None = None) -> list[str]:
        return ["generate", "--generator", generator, "--out", out or str(self.tmp / "syn-out.jsonl"),
                "--n-per-label", "2", "--batch-size", "2", "--max-new-tokens", "4", *extra]

    def evaluate(self, prompt: str, *extra: str) -> list[str]:
        return ["evaluate", "--task", "rte", "--data", str(self.split), "--prompt", prompt, "--split", "dev",
                "--max-eval", "8", "--max-length", "64", *extra]


@pytest.fixture(scope="module")
def adapter(tiny_t5, tmp_path_factory) -> Path:
    """A valid tiny-t5 prompt adapter (4 tokens)."""
    from synthpt.core.saving import save_peft_prompt
    from synthpt.core.soft_prompt import init_from_vocab

    d = tmp_path_factory.mktemp("adapter")
    save_peft_prompt(d, init_from_vocab(tiny_t5, 4, 0), tiny_t5)
    return d


@pytest.fixture
def env(tmp_path, rte_split, adapter) -> Env:
    return Env(tmp_path, rte_split, adapter)


def _adapter_variant(env: Env, name: str, tensor: torch.Tensor | None = None, weights: bytes | None = None,
                     config: str | None = None) -> str:
    """A copy of the valid adapter with its weights or config replaced."""
    d = env.tmp / name
    shutil.copytree(env.adapter, d)
    if tensor is not None:
        save_file({"prompt_embeddings": tensor.contiguous()}, str(d / "adapter_model.safetensors"))
        cfg = json.loads((d / "adapter_config.json").read_text())
        cfg.update(num_virtual_tokens=tensor.shape[0], token_dim=tensor.shape[1])
        (d / "adapter_config.json").write_text(json.dumps(cfg))
    if weights is not None:
        (d / "adapter_model.safetensors").write_bytes(weights)
    if config is not None:
        (d / "adapter_config.json").write_text(config)
    return str(d)


def _enospc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulate a full disk: every fsync fails with ENOSPC."""
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)


def _prepare_eval_out(env: Env) -> str:
    return env.file("old-metrics.json", '{"accuracy": 0.75}\n')


# ---------------------------------------------------------------------------- the catalogue


@dataclass
class Case:
    name: str
    argv: Callable[[Env], list[str]]
    error: str  # regex that the one error line must match (after "synthpt: error: ")
    patch: Callable[[pytest.MonkeyPatch], None] | None = None


CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RTE_ROW = '{"text1": "A man sleeps.", "text2": "A man rests.", "label": "entailment"}\n'
SPEC = ("name: weather\nfields: [sentence]\nlabels: [pos, neg]\nlabel_words: {pos: good, neg: bad}\n"
        "template: 'Weather: {sentence}\\nMood:{mask}'\n")

CASES: list[Case] = [
    # ---- data files (--synthetic goes through the same loader as user data)
    Case("empty file", lambda e: e.syn("syn.jsonl", b""), r"syn\.jsonl: file is empty"),
    Case("whitespace-only file", lambda e: e.syn("syn.csv", b"\n  \n"), r"syn\.csv: file is empty"),
    Case("header only", lambda e: e.syn("syn.csv", "text1,text2,label\n"), r"syn\.csv: header only, no data rows"),
    Case("wrong delimiter", lambda e: e.syn("syn.csv", "text1;text2;label\na;b;entailment\n"),
         r"syn\.csv: only one column found in the header; is the file ','-separated\?"),
    Case("missing column", lambda e: e.syn("syn.jsonl", '{"text1": "a", "label": "entailment"}\n'),
         r"syn\.jsonl: no column for field 'text2'"),
    Case("renamed column", lambda e: e.syn("syn.csv", "premise,hypo,label\na,b,entailment\n"),
         r"syn\.csv: no column for field 'text2' .*columns found: premise, hypo, label"),
    Case("no label column", lambda e: e.syn("syn.csv", "text1,text2,gold\na,b,entailment\n"),
         r"syn\.csv: no label column"),
    Case("label outside the task's set", lambda e: e.syn("syn.csv", "text1,text2,label\na,b,entailment\nc,d,neutral\n"),
         r"syn\.csv: row 2 \(line 3\): label 'neutral' is not one of entailment, not_entailment"),
    Case("numeric label out of range", lambda e: e.syn("syn.csv", "text1,text2,label\na,b,7\n"),
         r"syn\.csv: row 1 .*numeric label '7' out of range 0\.\.1"),
    Case("non-UTF-8 bytes", lambda e: e.syn("syn.csv", b"text1,text2,label\na,caf\xe9,entailment\n"),
         r"syn\.csv: not UTF-8 text \(byte 0xe9 at line 2\)"),
    Case("row with NaN", lambda e: e.syn("syn.jsonl", RTE_ROW + '{"text1": NaN, "text2": "b", "label": 0}\n'),
         r"syn\.jsonl: row 2 \(line 2\): field 'text1' .*empty or missing"),
    Case("row with the text 'nan'", lambda e: e.syn("syn.tsv", "text1\ttext2\tlabel\nnan\tb\tentailment\n"),
         r"syn\.tsv: row 1 .*field 'text1' .*empty or missing"),
    Case("invalid JSON line", lambda e: e.syn("syn.jsonl", RTE_ROW + '{"text1": \n'),
         r"syn\.jsonl: line 2: invalid JSON"),
    Case("synthetic JSON with a label the task lacks",
         lambda e: e.syn("gen.json", '[{"text1": "a", "text2": "b", "label": "contradiction"}]'),
         r"gen\.json: row 1: label 'contradiction' is not one of entailment, not_entailment"),
    Case("synthetic file not found", lambda e: e.pt("--strategy", "paired", "--synthetic", str(e.tmp / "none.jsonl")),
         r"none\.jsonl: file not found"),
    Case("unsupported file type", lambda e: e.syn("syn.xlsx", b"PK\x03\x04"), r"syn\.xlsx: unsupported file type"),
    # ---- split folders
    Case("split folder missing", lambda e: e.pt(out=str(e.tmp / "o")) + ["--data", str(e.tmp / "nosplit")],
         r"nosplit: split directory not found"),
    Case("split without test.jsonl", lambda e: [*e.pt(), "--data", e.split_with("s", test=None)],
         r"s/test\.jsonl: file not found; the split in .* is incomplete"),
    Case("split row with a bad label",
         lambda e: [*e.pt(), "--data", e.split_with("s", train=RTE_ROW * 2 + RTE_ROW.replace("entailment", "maybe"))],
         r"s/train\.jsonl: row 3 \(line 3\): label 'maybe' is not one of"),
    # ---- tasks and task specs
    Case("unknown task", lambda e: [*e.pt(), "--task", "nope"], r"unknown task 'nope'; built-in tasks: .*--task-spec"),
    Case("no task given", lambda e: ["prompt-tune", "--data", str(e.split), "--model", "tiny-t5", "--out", str(e.prev)],
         r"give --task NAME or --task-spec FILE"),
    Case("task spec with an unknown key", lambda e: ["sample", "--task-spec", e.spec(SPEC + "colour: red\n"),
                                                     "--out", str(e.tmp / "o")],
         r"spec\.yaml: unknown keys \['colour'\]"),
    Case("task spec: labels of the wrong type", lambda e: ["sample", "--task-spec",
                                                           e.spec(SPEC.replace("[pos, neg]", "5")), "--out", str(e.tmp / "o")],
         r"spec\.yaml: 'labels' must be a list"),
    Case("task spec: fields of the wrong type", lambda e: ["sample", "--task-spec",
                                                           e.spec(SPEC.replace("[sentence]", "sentence")), "--out", str(e.tmp / "o")],
         r"spec\.yaml: 'fields' must be a list"),
    Case("task spec: files of the wrong type", lambda e: ["sample", "--task-spec", e.spec(SPEC + "files: [a.csv]\n"),
                                                          "--out", str(e.tmp / "o")],
         r"spec\.yaml: 'files' must map"),
    Case("task spec: YAML syntax error", lambda e: ["sample", "--task-spec", e.spec("name: [unclosed\n"),
                                                    "--out", str(e.tmp / "o")],
         r"spec\.yaml: cannot parse task spec"),
    Case("task spec: template without {mask}", lambda e: ["sample", "--task-spec",
                                                          e.spec(SPEC.replace("Mood:{mask}", "Mood:")), "--out", str(e.tmp / "o")],
         r"task 'weather': template must contain \{mask\}"),
    # ---- few-shot sampling
    Case("K larger than a class", lambda e: ["sample", "--task-spec", e.spec(SPEC + "files: {train: t.jsonl, test: t.jsonl}\n"),
                                             "--k", "4", "--out", str(e.tmp / "o")],
         r"t\.jsonl: label 'pos' has only 3 examples, need 8"),
    Case("K = 0", lambda e: ["sample", "--task", "rte", "--k", "0", "--out", str(e.tmp / "o")],
         r"k must be a positive integer .* got 0"),
    Case("seed that is not an integer", lambda e: ["sample", "--task", "rte", "--seed", "4x2", "--out", str(e.tmp / "o")],
         r"argument --seed: invalid int value: '4x2'"),
    Case("unknown flag", lambda e: [*e.pt(), "--epsilom", "1"], r"unrecognized arguments: --epsilom 1"),
    Case("seed list with a non-integer", lambda e: ["experiment", "--config", str(CONFIGS / "smoke.yaml"),
                                                    "--seeds", "13,x", "--out", str(e.tmp / "o")],
         r"'x': expected a comma-separated list of int"),
    # ---- prompt-tuning configuration
    Case("unknown strategy", lambda e: e.pt("--strategy", "bogus"), r"unknown strategy 'bogus'; choose one of real, "),
    Case("epsilon < 0", lambda e: e.pt("--epsilon", "-0.5"), r"--epsilon must be >= 0, got -0\.5"),
    Case("epsilon NaN", lambda e: e.pt("--epsilon", "nan"), r"--epsilon must be >= 0, got nan"),
    Case("prompt length 0", lambda e: e.pt("--prompt-length", "0"), r"--prompt-length must be at least 1, got 0"),
    Case("max steps 0", lambda e: e.pt("--max-steps", "0"), r"--max-steps must be at least 1, got 0"),
    Case("learning rate NaN", lambda e: e.pt("--lr", "nan"), r"--lr must be a finite number > 0, got nan"),
    Case("label smoothing 1.5", lambda e: e.pt("--label-smoothing", "1.5"), r"--label-smoothing must be in \[0, 1\)"),
    Case("gradient surgery without paired batches", lambda e: e.pt("--gradient-surgery"),
         r"--gradient-surgery needs --strategy paired"),
    Case("phase split outside (0, 1)", lambda e: e.pt("--strategy", "real-then-syn", "--phase-split", "1.5",
                                                      "--synthetic", e.file("s.jsonl", RTE_ROW)),
         r"--phase-split must be in \(0, 1\)"),
    # ---- generator configuration
    Case("unknown generator mode", lambda e: e.gtune("--mode", "bogus"), r"unknown generator mode 'bogus'; choose"),
    Case("generator prompt length 0", lambda e: e.gtune("--prompt-length", "0"), r"--prompt-length must be at least 1"),
    Case("generation top-p 0", lambda e: e.generate(e.generator(), "--top-p", "0"), r"--top-p must be in \(0, 1\]"),
    Case("generation n-per-label 0", lambda e: e.generate(e.generator(), "--n-per-label", "0"),
         r"--n-per-label must be at least 1"),
    Case("generation first texts from a missing file", lambda e: e.generate(
        e.generator(prompts=_tiny_gpt2_prompts()), "--first-texts", str(e.tmp / "corpus.txt")),
        r"corpus\.txt: --first-texts must be 'data', 'generator' or a corpus file"),
    # ---- models
    Case("model path that does not exist", lambda e: e.pt("--model", "./no/such/model"),
         r"\./no/such/model: model path does not exist"),
    Case("model folder without config.json", lambda e: e.pt("--model", str(_mkdir(e.tmp / "emptymodel"))),
         r"emptymodel: not a Hugging Face model folder \(no config\.json\)"),
    Case("model folder with a corrupt config.json",
         lambda e: e.pt("--model", str(Path(e.file("badmodel/config.json", "{not json")).parent)),
         r"cannot load model .*badmodel"),
    Case("GGUF file that does not exist", lambda e: e.pt("--model", str(e.tmp / "m.gguf")), r"m\.gguf: GGUF file not found"),
    # ---- prompt adapters
    Case("corrupt safetensors adapter", lambda e: e.evaluate(_adapter_variant(e, "bad", weights=b"\x08\x00garbage")),
         r"bad/adapter_model\.safetensors: corrupt safetensors file"),
    Case("adapter config that is not JSON", lambda e: e.evaluate(_adapter_variant(e, "bad", config="{")),
         r"bad/adapter_config\.json: not valid JSON"),
    Case("folder that is not an adapter", lambda e: e.evaluate(str(_mkdir(e.tmp / "noadapter"))),
         r"noadapter: not a prompt adapter"),
    Case("PEFT prompt saved for another backbone",
         lambda e: e.evaluate(_adapter_variant(e, "narrow", torch.zeros(4, 32)), "--model", "tiny-gpt2"),
         r"narrow: prompt has width 32 but model .*tiny-gpt2 has hidden size 64 \(saved for another backbone\?\)"),
    Case("init prompt of another length", lambda e: e.pt("--init-prompt", _adapter_variant(e, "long", torch.zeros(8, 64))),
         r"initial prompt has 8 tokens, config asks for 4"),
    Case("init prompt containing inf", lambda e: e.pt("--init-prompt", _adapter_variant(e, "inf", torch.full((4, 64), float("inf")))),
         r"inf/adapter_model\.safetensors: prompt has non-finite values"),
    Case("unknown evaluation split", lambda e: e.evaluate(str(e.adapter), "--split", "valid"),
         r"unknown split 'valid'; choose train, dev or test"),
    # ---- output locations
    Case("output directory that is a file", lambda e: e.pt(out=e.file("outfile", "x")),
         r"outfile: output path exists and is a file"),
    Case("generator output that is a file", lambda e: e.gtune(out=e.file("outfile", "x")),
         r"outfile: output path exists and is a file"),
    Case("generation output that is a folder", lambda e: e.generate(e.generator(), out=str(_mkdir(e.tmp / "outdir"))),
         r"outdir: is a directory; give a \.jsonl file path"),
    Case("evaluation --out that is a folder", lambda e: e.evaluate(str(e.adapter), "--out", str(_mkdir(e.tmp / "m"))),
         r"m: is a directory, cannot write a file there"),
    Case("full disk writing evaluation metrics", lambda e: e.evaluate(str(e.adapter), "--out", _prepare_eval_out(e)),
         r"old-metrics\.json: cannot write file \(No space left on device\)", patch=_enospc),
    Case("full disk writing a checkpoint", lambda e: e.pt("--checkpoint-every", "1", "--max-steps", "3",
                                                          out=str(e.tmp / "run"), restart=False),
         r"run/checkpoint\.pt: cannot write file \(No space left on device\)", patch=_enospc),
    # ---- generators
    Case("generate --generator at a folder that is not a generator", lambda e: e.generate(str(e.adapter)),
         r"adapter\d*: not a tuned generator \(no generator\.json\)"),
    Case("generator.json that is not JSON", lambda e: e.generate(e.generator(meta="{oops")),
         r"gen/generator\.json: not a valid generator description"),
    Case("generator.json without its fields", lambda e: e.generate(e.generator(meta='{"task": {}}')),
         r"gen/generator\.json: not a valid generator description \(missing"),
    Case("corrupt generator prompts", lambda e: e.generate(e.generator(prompts=b"\x10\x00\x00\x00junk")),
         r"gen/prompts\.safetensors: corrupt safetensors file"),
    # ---- checkpoints and resume state
    Case("corrupt prompt-tuning checkpoint", lambda e: e.pt(restart=False, out=_with_file(e, "ck/checkpoint.pt", b"\x00junk")),
         r"ck/checkpoint\.pt: unreadable checkpoint .*rerun with --restart"),
    Case("corrupt generator checkpoint", lambda e: e.gtune(out=_with_file(e, "gck/checkpoint.pt", b"")),
         r"gck/checkpoint\.pt: unreadable checkpoint .*rerun with --restart"),
    Case("corrupt generation state file",
         lambda e: e.generate(e.generator(prompts=_tiny_gpt2_prompts()),
                              out=str(Path(_with_file(e, "g/syn.jsonl.state.json", b"{tor")) / "syn.jsonl")),
         r"syn\.jsonl\.state\.json: unreadable generation state .*--restart"),
    # ---- run / experiment configs (owned by the experiments stage; checked here end to end)
    Case("run config with an unknown key", lambda e: ["run", "--task", "rte", "--config", e.file("run.yaml", "colour: red\n"),
                                                      "--out", str(e.tmp / "o")], r"run\.yaml.*unknown key"),
    Case("run config with a wrong type", lambda e: ["run", "--task", "rte", "--config", e.file("run.yaml", "k: many\n"),
                                                    "--out", str(e.tmp / "o")], r"run\.yaml.*k.*expected int"),
]


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _with_file(env: Env, rel: str, content: bytes) -> str:
    """Create ``rel`` under tmp; return its folder."""
    return str(Path(env.file(rel, content)).parent)


def _tiny_gpt2_prompts() -> bytes:
    from safetensors.torch import save

    return save({f"prompt/{lab}": torch.zeros(4, 64) for lab in ("entailment", "not_entailment")})


_BAR = re.compile(r"\d+/\d+ \[|^\s*$")  # tqdm progress segments (a run that fails mid-way has drawn some)


def _message_lines(err: str) -> list[str]:
    """stderr without progress-bar redraws: what a user reads once the bars are gone."""
    return [seg.strip() for seg in re.split(r"[\r\n]", err) if not _BAR.search(seg)]


def _snapshot(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gives_one_line_and_exit_2(case: Case, env: Env, capsys, monkeypatch):
    if case.name == "K larger than a class":
        env.file("t.jsonl", "".join(json.dumps({"sentence": f"s{i}", "label": lab}) + "\n"
                                    for i in range(3) for lab in ("pos", "neg")))
    argv = case.argv(env)
    before = _snapshot(env.tmp)
    if case.patch is not None:
        case.patch(monkeypatch)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse errors
        code = e.code
    monkeypatch.undo()
    err = capsys.readouterr().err
    lines = _message_lines(err)
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("synthpt: error: "), err
    assert "Traceback" not in err
    assert re.search(case.error, lines[0]), lines[0]
    after = _snapshot(env.tmp)
    changed = [str(p) for p, data in before.items() if after.get(p) != data]
    assert not changed, f"earlier outputs changed or removed: {changed}"
    leftovers = [str(p) for p in after if p not in before and (".tmp" in p.name or p.name.startswith("tmp"))]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def test_catalogue_is_large_enough():
    assert len(CASES) >= 30


# ---------------------------------------------------------------------------- not errors


def test_text_far_longer_than_the_model_is_truncated_with_a_warning(env, capsys):
    """A 20k-character text and --max-length above tiny-gpt2's 1024 positions: a warning, not an error."""
    long = {"text1": "word " * 4000, "text2": "A short hypothesis.", "label": "entailment"}
    split = env.split_with("long", dev="".join(json.dumps(r) + "\n" for r in [long, json.loads(RTE_ROW)]))
    with pytest.warns(UserWarning, match="truncated"):
        code = main(["evaluate", "--task", "rte", "--data", split, "--model", "tiny-gpt2", "--split", "dev",
                     "--max-length", "4096"])
    assert code == 0, capsys.readouterr().err
    assert "rte dev (2 rows, zero-shot)" in capsys.readouterr().out


# ---------------------------------------------------------------------------- real exit codes


@pytest.mark.parametrize(("argv", "message"), [
    (["sample", "--task", "rte", "--k", "0", "--out", "{tmp}/o"], "k must be a positive integer"),
    (["sample", "--task", "rte", "--seed", "x", "--out", "{tmp}/o"], "invalid int value: 'x'"),
], ids=["library error", "argparse error"])
def test_python_dash_m_exit_code_is_2(tmp_path, argv, message):
    r = subprocess.run([sys.executable, "-m", "synthpt", *(a.format(tmp=tmp_path) for a in argv)],
                       capture_output=True, text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("synthpt: error: "), r.stderr
    assert message in lines[0]


# ---------------------------------------------------------------------------- Python API


def _api_cases():
    from synthpt.core.models import resolve_model
    from synthpt.core.saving import load_peft_prompt
    from synthpt.data import load_file, make_split, sample_kshot
    from synthpt.generator.generation import GenerationConfig, run_generation
    from synthpt.generator.tuning import GeneratorConfig
    from synthpt.prompt_tuning.trainer import PromptTrainerConfig
    from synthpt.tasks import get_task, load_task_spec

    rows = [{"text1": "a", "text2": "b", "label": lab} for lab in ("entailment", "not_entailment")] * 3
    return [
        ("unknown task", lambda t: get_task("glue"), r"unknown task 'glue'"),
        ("K = 0", lambda t: sample_kshot(rows, "rte", 0, 1), r"k must be a positive integer"),
        ("K larger than a class", lambda t: sample_kshot(rows, "rte", 2, 1), r"label 'entailment' has only 3 .*need 4"),
        ("K not an integer", lambda t: sample_kshot(rows, "rte", 1.5, 1), r"k must be a positive integer"),
        ("unknown strategy", lambda t: PromptTrainerConfig(strategy="both").validate(), r"unknown strategy 'both'"),
        ("epsilon < 0", lambda t: PromptTrainerConfig(epsilon=-1).validate(), r"--epsilon must be >= 0"),
        ("prompt length 0", lambda t: PromptTrainerConfig(prompt_length=0).validate(), r"--prompt-length must be at least 1"),
        ("zero-shot filter gate above 1", lambda t: PromptTrainerConfig(zero_shot_filter=1.5).validate(),
         r"--zero-shot-filter is a dev accuracy in \[0, 1\], got 1.5"),
        ("lr inf", lambda t: PromptTrainerConfig(lr=float("inf")).validate(), r"--lr must be a finite number > 0"),
        ("unknown generator mode", lambda t: GeneratorConfig(mode="x").validate(), r"unknown generator mode 'x'"),
        ("generator lr NaN", lambda t: GeneratorConfig(lr=float("nan")).validate(), r"--lr must be > 0"),
        ("generation temperature 0", lambda t: GenerationConfig(temperature=0).validate(), r"--temperature must be > 0"),
        ("missing file", lambda t: load_file(t / "nope.csv", "rte"), r"nope\.csv: file not found"),
        ("label outside the set", lambda t: load_file(_write(t / "x.jsonl", '{"text1": "a", "text2": "b", "label": "yes!"}\n'),
                                                       "rte"), r"x\.jsonl: row 1 \(line 1\): label 'yes!'"),
        ("task spec wrong type", lambda t: load_task_spec(_write(t / "s.yaml", SPEC.replace("{pos: good, neg: bad}", "[good, bad]"))),
         r"s\.yaml: 'label_words' must map"),
        ("task spec metrics wrong type", lambda t: load_task_spec(_write(t / "s.yaml", SPEC + "metrics: 3\n")),
         r"s\.yaml: 'metrics' must be a list"),
        ("task spec gen_templates for an unknown label",
         lambda t: load_task_spec(_write(t / "s.yaml", SPEC + "gen_templates: {meh: 'Meh review:'}\n")),
         r"gen_templates has labels \['meh'\] that the task does not have"),
        ("model path missing", lambda t: resolve_model(str(t / "no-model")), r"no-model: model path does not exist"),
        ("adapter missing", lambda t: load_peft_prompt(t), r"not a prompt adapter"),
        ("split output is a file", lambda t: make_split("rte", 16, 42, t, _write(t / "f", "x")), r"f: exists and is a file"),
        ("not a generator", lambda t: run_generation(t, t / "o.jsonl", GenerationConfig()), r"not a tuned generator"),
    ]


def _write(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


API_CASES = _api_cases()


@pytest.mark.parametrize(("name", "call", "message"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_raises_synthpt_error(tmp_path, name, call, message):
    with pytest.raises(SynthptError, match=message) as info:
        call(tmp_path)
    assert "\n" not in str(info.value)
