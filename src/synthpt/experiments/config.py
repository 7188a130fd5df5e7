"""Experiment and run configuration: YAML in, validated settings out.

One schema serves ``synthpt run --config`` and ``synthpt experiment --config``::

    model: tiny-t5                 # backbone (built-in name, HF folder, .gguf, hub id)
    generator_model: tiny-gpt2     # generator LM of Stages 1-2
    k: 16                          # shots per class (train and dev)
    max_eval: 300                  # evaluate on a fixed subset of at most N test rows (null: all)
    judge_rows: 200                # synthetic.report.md: rows its judges score per set (null: all; 0: none)
    generator: {...}               # GeneratorConfig fields (Stage 1)
    generation: {...}              # GenerationConfig fields (Stage 2)
    prompt_tuning: {...}           # PromptTrainerConfig fields (Stage 3)
    options: {...}                 # free-form knobs for methods (ctx.options)
    method: ours                   # `run` only: the method (default ours)
    tasks: [rte, mrpc, my.yaml]    # experiment: built-in names or task-spec files (relative to the config)
    seeds: [13, 42]
    methods:                       # rows, in table order: a registry name, or a dict
      - pt
      - {name: ours-lr0.1, method: ours, display: "Ours (lr 0.1)", prompt_tuning: {lr: 0.1}}
    tables:                        # optional extra tables (table-<name>.md/.csv/.tex)
      - {name: main, title: "Main comparison on {model}", methods: [pt, ours]}
    sweep:                         # optional: the grid once per value (product over keys; sweep.py)
      generation.n_per_label: [64, 256, 1024]

Titles (and ``name``, the title of ``table.md``) may name the resolved settings, so a
``--set model=...`` run is not captioned with the config's model: ``{model}`` (the backbone's
display name, e.g. ``Gemma 3 270M``), ``{generator}``, ``{k}``, ``{max_eval}``, ``{seeds}``.
Every caption also names the backbone(s) and generator its rows used.

A row dict may set ``model``, ``generator_model``, ``generator``, ``generation``,
``prompt_tuning`` and ``options``; its values win over the top-level ones and over the
method's own.  Seeds of every stage follow the grid seed (``--seed`` for ``run``).
Unknown keys and wrong types fail with one line naming the key.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthpt.core.errors import fail
from synthpt.core.knobs import values_of

SECTIONS = ("generator", "generation", "prompt_tuning")
SCALARS: dict[str, Any] = {"name": str, "description": str, "model": str, "generator_model": str, "k": int,
                           "max_eval": int | None, "method": str, "data_dir": str, "judge_rows": int | None}
# grid axes: a config lists them; ``--set seeds=[13,21]`` replaces the list (``--seeds`` only narrows it)
AXES: dict[str, Any] = {"tasks": list[str], "seeds": list[int]}
TOP_KEYS = set(SCALARS) | set(SECTIONS) | set(AXES) | {"options", "methods", "tables", "plots", "sweep"}
ROW_KEYS = {"name", "method", "display", "model", "generator_model", "options", *SECTIONS}
TABLE_KEYS = {"name", "title", "methods"}
TITLE_FIELDS = ("model", "generator", "k", "max_eval", "seeds")  # placeholders a title may use


def check_title(title: str, where: str) -> str:
    """Refuse placeholders other than TITLE_FIELDS now, not when the tables are written."""
    import string

    try:
        names = [n for _, n, _, _ in string.Formatter().parse(title) if n is not None]
    except ValueError as e:
        raise fail(f"{where}: {title!r}: {e} (write a literal brace as {{{{ or }}}})") from None
    bad = [n for n in names if n not in TITLE_FIELDS]
    if bad:
        raise fail(f"{where}: {title!r} uses {{{bad[0]}}}; a title may use "
                   + ", ".join("{" + f + "}" for f in TITLE_FIELDS))
    return title

# `synthpt run` defaults: small enough that the whole method finishes in a few minutes on the
# tiny built-in models on a laptop CPU.  A --config file or flags override any of them.
RUN_DEFAULTS: dict[str, dict[str, Any]] = {
    "generator": {"max_steps": 50},
    "generation": {"n_per_label": 200},
    "prompt_tuning": {"max_steps": 100, "eval_every": 25, "checkpoint_every": 25, "max_length": 256},
}
RUN_MAX_EVAL = 500


def section_class(section: str) -> type:
    if section == "prompt_tuning":
        from synthpt.prompt_tuning.trainer import PromptTrainerConfig

        return PromptTrainerConfig
    from synthpt.methods.base import generator_api

    gen = generator_api()
    return gen.GeneratorConfig if section == "generator" else gen.GenerationConfig


def _type_name(typ: Any) -> str:
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(typ))
    if typ is type(None):
        return "null"
    if isinstance(typ, type) and issubclass(typ, enum.Enum):
        return "one of " + ", ".join(values_of(typ))
    return getattr(typ, "__name__", str(typ))


def coerce(value: Any, typ: Any, where: str) -> Any:
    """Check ``value`` against a type hint (int for float is fine; bool is never an int)."""
    if typ is Any:
        return value
    if isinstance(typ, types.UnionType) or typing.get_origin(typ) is typing.Union:
        for a in typing.get_args(typ):
            try:
                return coerce(value, a, where)
            except Exception:
                continue
        raise fail(f"{where}: expected {_type_name(typ)}, got {value!r} ({type(value).__name__})")
    if typ is type(None):
        if value is None:
            return None
    elif typ is bool:
        if isinstance(value, bool):
            return value
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif typ is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif typ is str:
        if isinstance(value, str):
            return value
    elif isinstance(typ, type) and issubclass(typ, enum.Enum):
        if isinstance(value, str) and value in values_of(typ):
            return str(typ(value).value)  # a plain string, as YAML wrote it
    elif typing.get_origin(typ) in (list, tuple) or typ in (list, tuple):
        if isinstance(value, list | tuple):
            args = typing.get_args(typ)
            inner = args[0] if args else Any
            out = [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
            return tuple(out) if (typing.get_origin(typ) or typ) is tuple else out
    elif typing.get_origin(typ) is dict or typ is dict:
        if isinstance(value, dict):
            return value
    else:
        return value
    raise fail(f"{where}: expected {_type_name(typ)}, got {value!r} ({type(value).__name__})")


def check_section(section: str, values: Any, where: str) -> dict[str, Any]:
    """Validate a ``generator:`` / ``generation:`` / ``prompt_tuning:`` mapping against its dataclass."""
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise fail(f"{where}: expected a mapping of {section} settings, got {type(values).__name__}")
    cls = section_class(section)
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for key, v in values.items():
        if key not in hints:
            raise fail(f"{where}.{key}: unknown key (known: {', '.join(names)})")
        out[key] = coerce(v, hints[key], f"{where}.{key}")
    return out


@dataclass
class MethodRow:
    """One method row of an experiment: a registry method plus overrides."""

    name: str
    method: str
    display: str | None = None
    model: str | None = None
    generator_model: str | None = None
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TableSpec:
    name: str
    title: str
    methods: list[str]


@dataclass
class Settings:
    """The resolved configuration of a run or an experiment."""

    source: str = "<defaults>"
    name: str = "experiment"
    description: str = ""
    model: str = "tiny-t5"
    generator_model: str = "tiny-gpt2"
    k: int = 16
    max_eval: int | None = None
    method: str = "ours"
    data_dir: str | None = None
    sections: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in SECTIONS})
    options: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    rows: list[MethodRow] = field(default_factory=list)
    tables: list[TableSpec] = field(default_factory=list)
    plots: bool = True
    judge_rows: int | None = 200  # rows per synthetic set its report's judges score (null: all; 0: no judge)
    sweep: dict[str, list[Any]] = field(default_factory=dict)  # knob -> values (experiments/sweep.py)
    # section values that win over a method's own knobs (``synthpt run`` flags, e.g. --pt-strategy)
    forced: dict[str, dict[str, Any]] = field(default_factory=lambda: {s: {} for s in SECTIONS})

    def set(self, dotted: str, value: Any, where: str | None = None, force: bool = False) -> None:
        """Set ``section.key``, a top-level scalar or a grid axis (what ``--set`` and flags use).

        ``force``: the value also wins over the method's own setting of that knob.
        """
        where = where or dotted
        if "." in dotted:
            section, key = dotted.split(".", 1)
            if section == "options":
                self.options[key] = value
                return
            if section not in SECTIONS:
                raise fail(f"{where}: unknown section {section!r} (known: {', '.join(SECTIONS)}, options)")
            prefix = (where[: -len(key) - 1] if where.endswith("." + key)
                      else where.split(".")[0] if "." in where else section)
            checked = check_section(section, {key: value}, prefix)
            self.sections[section].update(checked)
            if force:
                self.forced[section].update(checked)
            return
        if dotted in AXES:
            values = value if isinstance(value, list) else [value]  # --set seeds=13 means [13]
            if not values:
                raise fail(f"{where}: expected a non-empty list, e.g. {dotted}=[13,21,42]")
            setattr(self, dotted, coerce(values, AXES[dotted], where))
            return
        if dotted not in SCALARS:
            raise fail(f"{where}: unknown key (known: {', '.join(sorted([*SCALARS, *AXES]))} or SECTION.KEY)")
        setattr(self, dotted, coerce(value, SCALARS[dotted], where))
        if dotted == "name":
            check_title(self.name, where)


def _mapping(obj: Any, where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise fail(f"{where}: expected a mapping, got {type(obj).__name__}")
    return obj


def _unknown(obj: dict[str, Any], known: set[str], where: str) -> None:
    for key in obj:
        if key not in known:
            raise fail(f"{where}: unknown key {key!r} (known: {', '.join(sorted(known))})")


def parse_settings(raw: Any, source: str = "<config>", base: Settings | None = None) -> Settings:
    """Validate a parsed YAML document into :class:`Settings` (on top of ``base``)."""
    st = base or Settings()
    st.source = source
    raw = _mapping(raw if raw is not None else {}, source)
    _unknown(raw, TOP_KEYS, source)
    for key, typ in SCALARS.items():
        if key in raw:
            setattr(st, key, coerce(raw[key], typ, f"{source}: {key}"))
    check_title(st.name, f"{source}: name")
    for section in SECTIONS:
        if section in raw:
            st.sections[section].update(check_section(section, raw[section], f"{source}: {section}"))
    if "options" in raw:
        st.options.update(_mapping(raw["options"], f"{source}: options"))
    if "plots" in raw:
        st.plots = coerce(raw["plots"], bool, f"{source}: plots")
    if "tasks" in raw:
        tasks = coerce(raw["tasks"], list[str], f"{source}: tasks")
        base_dir = Path(source).parent if source not in ("<config>", "<defaults>") else Path(".")
        st.tasks = [str(base_dir / t) if t.endswith((".yaml", ".yml", ".json")) else t for t in tasks]
    if "seeds" in raw:
        st.seeds = coerce(raw["seeds"], list[int], f"{source}: seeds")
    if "methods" in raw:
        rows = raw["methods"]
        if not isinstance(rows, list) or not rows:
            raise fail(f"{source}: methods: expected a non-empty list of method names or mappings")
        st.rows = [parse_row(r, f"{source}: methods[{i}]") for i, r in enumerate(rows)]
        names = [r.name for r in st.rows]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise fail(f"{source}: methods: duplicate row names {dup}; give each a distinct `name:`")
    if "sweep" in raw:
        from synthpt.experiments.sweep import check_sweep

        st.sweep = check_sweep(raw["sweep"] or {}, f"{source}: sweep", st)
    if "tables" in raw:
        tables = raw["tables"]
        if not isinstance(tables, list):
            raise fail(f"{source}: tables: expected a list of mappings")
        st.tables = []
        for i, t in enumerate(tables):
            where = f"{source}: tables[{i}]"
            t = _mapping(t, where)
            _unknown(t, TABLE_KEYS, where)
            if "name" not in t or "methods" not in t:
                raise fail(f"{where}: needs `name` and `methods`")
            st.tables.append(TableSpec(coerce(t["name"], str, f"{where}.name"),
                                       check_title(coerce(t.get("title", t["name"]), str, f"{where}.title"),
                                                   f"{where}.title"),
                                       coerce(t["methods"], list[str], f"{where}.methods")))
        known = {r.name for r in st.rows}
        for t in st.tables:
            missing = [m for m in t.methods if m not in known]
            if missing and st.rows:
                raise fail(f"{source}: table {t.name!r} lists {missing}, which are not rows of `methods:`")
    return st


def parse_row(obj: Any, where: str) -> MethodRow:
    from synthpt.methods import get_method

    if isinstance(obj, str):
        get_method(obj)
        return MethodRow(name=obj, method=obj)
    obj = _mapping(obj, where)
    _unknown(obj, ROW_KEYS, where)
    name = obj.get("name") or obj.get("method")
    if not name:
        raise fail(f"{where}: needs `method:` (a registry name) or `name:`")
    name = coerce(name, str, f"{where}.name")
    method = coerce(obj.get("method", name), str, f"{where}.method")
    get_method(method)
    row = MethodRow(name=name, method=method)
    for key in ("display", "model", "generator_model"):
        if key in obj:
            setattr(row, key, coerce(obj[key], str, f"{where}.{key}"))
    for section in SECTIONS:
        if section in obj:
            row.sections[section] = check_section(section, obj[section], f"{where}.{section}")
    if "options" in obj:
        row.options = dict(_mapping(obj["options"], f"{where}.options"))
    return row


def load_settings(path: str | Path | None, base: Settings | None = None) -> Settings:
    """Read a YAML (or JSON) config file; ``None`` gives the defaults."""
    if path is None:
        return base or Settings()
    if base is not None:
        base.source = str(path)
    import yaml

    from synthpt.core.io import read_text

    p = Path(path)
    text = read_text(p)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        loc = f" at line {mark.line + 1}" if mark is not None else ""
        raise fail(f"{p}: invalid YAML{loc} ({getattr(e, 'problem', None) or e})") from None
    return parse_settings(raw, str(p), base)


def run_defaults() -> Settings:
    """The defaults of ``synthpt run`` (see :data:`RUN_DEFAULTS`)."""
    st = Settings(max_eval=RUN_MAX_EVAL, source="built-in `synthpt run` defaults")
    for section, values in RUN_DEFAULTS.items():
        try:
            st.sections[section].update(check_section(section, values, f"RUN_DEFAULTS.{section}"))
        except Exception:
            if section == "prompt_tuning":
                raise
            st.sections[section].update(values)  # generator stage not installed yet: checked on use
    return st


def parse_value(text: str) -> Any:
    """A ``--set KEY=VALUE`` value, read as YAML (``0.1``, ``true``, ``null``, ``[1, 2]``)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text
