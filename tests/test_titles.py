"""Table titles and captions name the models a grid actually ran with (``--set model=...`` too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from synthpt.core.errors import SynthptError
from synthpt.core.models import model_display
from synthpt.experiments import grid
from synthpt.experiments.config import MethodRow, Settings, TableSpec, load_settings

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
RECORDS = [
    {"task": "rte", "seed": 42, "method": m, "trainable_parameters": 100, "metrics": {"test": {"accuracy": a}}}
    for m, a in (("pt", 0.5), ("ours", 0.6), ("pt+gold", 0.7))
]


def test_model_display_names():
    assert model_display("gemma3-270m") == "Gemma 3 270M"
    assert model_display("smollm2-135m") == "SmolLM2-135M-Instruct"
    assert model_display("tiny-t5") == "tiny-t5"
    assert model_display("/models/gemma-3-270m-q4_k_m.gguf") == "gemma-3-270m-q4_k_m"
    assert model_display("./my-finetuned-t5") == "my-finetuned-t5"
    assert model_display("google/flan-t5-large") == "google/flan-t5-large"


def _settings() -> Settings:
    st = Settings(name="Grid on {model}", model="smollm2-135m", generator_model="smollm2-135m", k=16,
                  max_eval=200, seeds=[42], plots=False)
    st.rows = [MethodRow("pt", "pt"), MethodRow("ours", "ours"), MethodRow("pt+gold", "pt+gold")]
    st.tables = [TableSpec("main", "{model} ({k} shots, seeds {seeds}, {max_eval} test rows)", ["pt", "ours"]),
                 TableSpec("oracle", "Oracle", ["pt", "pt+gold"])]
    return st


def test_set_model_renames_titles_and_captions(tmp_path):
    st = _settings()
    st.set("model", "gemma3-270m", where="--set model")
    st.set("generator_model", "tiny-gpt2", where="--set generator_model")
    grid.write_outputs(st, RECORDS, ["rte"], st.rows, tmp_path)
    main = (tmp_path / "table-main.md").read_text()
    assert main.startswith("**Gemma 3 270M (16 shots, seeds 42, 200 test rows)**")
    assert "SmolLM2" not in main
    assert main.rstrip().endswith("Backbone: Gemma 3 270M; generator LM of Stages 1-2: tiny-gpt2.")
    assert "Gemma 3 270M (16 shots" in (tmp_path / "table-main.tex").read_text()
    assert (tmp_path / "table.md").read_text().startswith("**Grid on Gemma 3 270M**")
    # no row of the oracle table tunes a generator: its caption names none
    assert (tmp_path / "table-oracle.md").read_text().rstrip().endswith("Backbone: Gemma 3 270M.")


def test_rows_with_their_own_backbone_are_all_named(tmp_path):
    st = _settings()
    st.rows[0] = MethodRow("pt", "pt", model="tiny-t5")
    grid.write_outputs(st, RECORDS, ["rte"], st.rows, tmp_path)
    assert "Backbones: tiny-t5, SmolLM2-135M-Instruct; generator LM" in (tmp_path / "table-main.md").read_text()


def test_unknown_title_placeholder_fails_at_load(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("methods: [pt]\ntables:\n  - {name: main, title: 'PT on {backbone}', methods: [pt]}\n")
    with pytest.raises(SynthptError, match=r"tables\[0\]\.title: 'PT on \{backbone\}' uses \{backbone\}"):
        load_settings(p)
    p.write_text("name: 'grid {'\nmethods: [pt]\n")
    with pytest.raises(SynthptError, match="name: 'grid {'"):
        load_settings(p)


def test_real_cpu_config_follows_set_model(tmp_path):
    st = load_settings(CONFIGS / "real-cpu.yaml")
    st.set("model", "gemma3-270m", where="--set model")
    titles = [grid.fill_title(st.name, st)] + [grid.fill_title(t.title, st) for t in st.tables]
    assert all("Gemma 3 270M" in t and "SmolLM2" not in t for t in titles), titles
