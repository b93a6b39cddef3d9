"""Run configurations: YAML files with inheritance and command-line overrides, checked up front.

A configuration is a mapping with the sections of :data:`SECTIONS`. A file may name another with
``base: other.yaml`` (a path relative to the file): the base is loaded first and this file's values
are merged into it, mapping by mapping (a value that is not a mapping replaces the base's).
Overrides ``key.sub=value`` are applied last; the value is read as YAML, so ``training.epochs=3``
gives an int, ``model.flow=planar*6`` a string and ``grid.features=[E,pt]`` a list.

Every key is checked before any data is read, against one declarative table: :data:`SCHEMA` gives
the accepted values of each key of the fixed sections (a :class:`Rule`: type, range, choices; the
choices of a registry are that registry's names), :data:`MODEL_OPTIONS` the types of the model
options, :data:`CONSISTENCY` the rules between keys. A problem is a :class:`ConfigError` that names
the file (or the override) and the key, and says what the key accepts: a typo or a wrong type must
never be silently ignored nor fail deep inside training. Which model options a model type takes is
checked against the model class (:func:`tfp_anomaly.experiment.check_model`).
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import math
from pathlib import Path
from typing import Any, Callable

import yaml


class ConfigError(ValueError):
    """A configuration problem, naming the file or override and the key."""


class UnknownOptionError(ConfigError, TypeError):
    """An option that no constructor of the configured object takes (a flow step, a prior): a bad
    configuration and an unexpected keyword argument at once."""


# --------------------------------------------------------------------------- rules
def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Rule:
    """What one configuration key accepts: :meth:`accepts` a value, :meth:`describe` in words."""

    def accepts(self, value) -> bool:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def error(self, value, key: str) -> str | None:
        """None when ``value`` is accepted, else the problem in words, naming ``key``."""
        return None if self.accepts(value) else f"{key} = {_short(value)}: expected {self.describe()}"


@dataclasses.dataclass(frozen=True)
class Null(Rule):
    """``null`` (YAML ``null``, ``~`` or an empty value)."""

    def accepts(self, value):
        return value is None

    def describe(self):
        return "null"


@dataclasses.dataclass(frozen=True)
class Boolean(Rule):
    """``true`` or ``false`` (only: no 0/1, no strings)."""

    def accepts(self, value):
        return isinstance(value, bool)

    def describe(self):
        return "true or false"


@dataclasses.dataclass(frozen=True)
class Text(Rule):
    """A string; ``what`` names it (``"a file name"``)."""

    what: str = "a string"

    def accepts(self, value):
        return isinstance(value, str) and value != ""

    def describe(self):
        return self.what


def _bounds(low, high, above=None) -> str:
    if above is not None:
        return f" > {above:g}"
    if low is not None and high is not None:
        return f" from {low} to {high}"
    return f" >= {low:g}" if low is not None else ""


@dataclasses.dataclass(frozen=True)
class Integer(Rule):
    """A whole number (not a bool, not 2.0) in [min, max]."""

    min: int | None = None
    max: int | None = None

    def accepts(self, value):
        return (isinstance(value, int) and not isinstance(value, bool)
                and (self.min is None or value >= self.min) and (self.max is None or value <= self.max))

    def describe(self):
        return "a whole number" + _bounds(self.min, self.max)


@dataclasses.dataclass(frozen=True)
class Number(Rule):
    """A finite number (int or float, not a bool), ``>= min`` or ``> above``."""

    min: float | None = None
    above: float | None = None

    def accepts(self, value):
        return (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and (self.min is None or value >= self.min) and (self.above is None or value > self.above))

    def describe(self):
        return "a number" + _bounds(self.min, None, self.above)


@dataclasses.dataclass(frozen=True)
class OneOf(Rule):
    """One of ``names``, of ``extra`` and of the names of ``source``: ``"module:ATTRIBUTE"``, a
    :class:`tfp_anomaly.registry.Registry` (or any collection of names) imported when first needed, so
    that the choices are the registry's and a newly registered name is accepted at once."""

    names: tuple = ()
    source: str | None = None

    def choices(self) -> list:
        names = list(self.names)
        if self.source is not None:
            module, _, attribute = self.source.partition(":")
            names += [n for n in getattr(importlib.import_module(module), attribute) if n not in names]
        return names

    def accepts(self, value):
        try:
            return value in self.choices()
        except TypeError:  # an unhashable value
            return False

    def describe(self):
        names = [str(n) for n in self.choices()]
        return names[0] if len(names) == 1 else "one of " + ", ".join(names)


@dataclasses.dataclass(frozen=True)
class ListOf(Rule):
    """A list whose every item ``item`` accepts, of ``length`` items or at least ``min_length``."""

    item: Rule
    min_length: int = 0
    length: int | None = None

    def accepts(self, value):
        return (isinstance(value, (list, tuple)) and len(value) >= self.min_length
                and (self.length is None or len(value) == self.length) and all(self.item.accepts(v) for v in value))

    def error(self, value, key):
        if isinstance(value, (list, tuple)) and len(value) >= self.min_length \
                and (self.length is None or len(value) == self.length):
            for index, item in enumerate(value):  # name the first item refused
                problem = self.item.error(item, f"{key}[{index}]")
                if problem:
                    return problem
            return None
        return super().error(value, key)

    def describe(self):
        if self.length is not None:
            return f"a list of {self.length} ({self.item.describe()})"
        return f"{'a non-empty' if self.min_length else 'a'} list of ({self.item.describe()})"


@dataclasses.dataclass(frozen=True)
class Pair(Rule):
    """A list ``[first, second]``."""

    first: Rule
    second: Rule

    def accepts(self, value):
        return (isinstance(value, (list, tuple)) and len(value) == 2 and self.first.accepts(value[0])
                and self.second.accepts(value[1]))

    def error(self, value, key):
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return self.first.error(value[0], f"{key}[0]") or self.second.error(value[1], f"{key}[1]")
        return super().error(value, key)

    def describe(self):
        return f"[{self.first.describe()}, {self.second.describe()}]"


@dataclasses.dataclass(frozen=True)
class Mapping(Rule):
    """A mapping: with ``keys``, only those keys, each value accepted by its rule (an error names the
    nested key, ``training.early_stopping.patience``), the keys of ``required`` present; with ``values``,
    any string key (one ``names`` accepts, when given) whose value that rule accepts; with neither, any
    mapping (its keys checked elsewhere)."""

    keys: dict | None = None
    values: Rule | None = None
    what: str = "a mapping"
    names: Rule | None = None
    required: tuple = ()

    def error(self, value, key):
        if not isinstance(value, dict):
            return f"{key} = {_short(value)}: expected {self.describe()}"
        missing = [name for name in self.required if name not in value]
        if missing:
            return f"{key}: missing key {missing[0]} (required: {', '.join(self.required)})"
        for name, item in value.items():
            if self.keys is not None:
                if name not in self.keys:
                    return f"unknown key {key}.{name}; {key} keys: {', '.join(self.keys)}"
                problem = self.keys[name].error(item, f"{key}.{name}")
            elif self.values is not None:
                problem = (self.names.error(name, f"{key} key") if self.names is not None else None) \
                    or self.values.error(item, f"{key}.{name}")
            else:
                problem = None
            if problem:
                return problem
        return None

    def accepts(self, value):
        return self.error(value, "") is None

    def describe(self):
        if self.keys is not None:
            return f"{self.what} with keys {', '.join(self.keys)}"
        return self.what if self.values is None else f"{self.what} of names to {self.values.describe()}"


@dataclasses.dataclass(frozen=True)
class AnyOf(Rule):
    """Any value one of ``rules`` accepts. A mapping is checked against the mapping rule among them, so
    that the error names its nested key."""

    rules: tuple

    def accepts(self, value):
        return any(rule.accepts(value) for rule in self.rules)

    def error(self, value, key):
        if self.accepts(value):
            return None
        mappings = [rule for rule in self.rules if isinstance(rule, Mapping) and rule.keys is not None]
        if isinstance(value, dict) and len(mappings) == 1:
            return mappings[0].error(value, key)
        return f"{key} = {_short(value)}: expected {self.describe()}"

    def describe(self):
        return " or ".join(rule.describe() for rule in self.rules)


def anyof(*rules: Rule) -> AnyOf:
    return AnyOf(tuple(rules))


@dataclasses.dataclass(frozen=True)
class Satisfies(Rule):
    """A value ``test`` accepts, described as ``text``."""

    test: Callable[[Any], bool]
    text: str

    def accepts(self, value):
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def describe(self):
        return self.text


def _fractions(value) -> bool:
    return (ListOf(Number(min=0), length=3).accepts(value) and math.isclose(sum(value), 1.0, abs_tol=1e-9)
            and value[0] > 0 and value[1] > 0)


NULL, BOOL = Null(), Boolean()
FALSE = Satisfies(lambda value: value is False, "false")
FILES = anyof(Text("a file name"), ListOf(Text("a file name"), min_length=1))
OBJECT_CODE = OneOf(source="tfp_anomaly.data.objects:BY_CODE")
#: ``keras.callbacks.EarlyStopping`` options a configuration may give
EARLY_STOPPING = {"monitor": Text(), "min_delta": Number(min=0), "patience": Integer(min=0), "verbose": Integer(0, 1),
                  "mode": OneOf(("auto", "min", "max")), "baseline": anyof(NULL, Number()),
                  "restore_best_weights": BOOL, "start_from_epoch": Integer(min=0)}

BRANCH = Text("a branch name")
#: ``data.root``: the branches of a ROOT file (tfp_anomaly.data.root; the keys of a --root-mapping file)
ROOT_OPTIONS = Mapping({
    "tree": anyof(NULL, Text("a tree name")),
    "btag_bit": Integer(0, 63),
    "objects": Mapping(values=Mapping({f: BRANCH for f in ("pt", "eta", "phi", "e", "mass", "charge", "btag")},
                                      what="a mapping of features to branch names", required=("pt", "eta", "phi")),
                       names=OBJECT_CODE, what="a mapping of object codes"),
    "met": Mapping({"met": BRANCH, "phi": BRANCH}, required=("met", "phi")),
    "weight": anyof(NULL, BRANCH),
    "event_id": anyof(NULL, BRANCH),
    "unit": OneOf(source="tfp_anomaly.data.events:UNITS"),
}, what="a mapping of ROOT reading options")

#: ``section.key`` → the :class:`Rule` of its values, for every key of the fixed sections (the keys
#: a section may have are the ones listed here: :data:`SECTIONS`)
SCHEMA: dict[str, Rule] = {
    "data.dir": anyof(NULL, Text("a folder name")),
    "data.background": FILES,
    "data.signals": anyof(NULL, FILES, Mapping(values=FILES, what="a mapping")),
    "data.format": OneOf(("auto",), "tfp_anomaly.data.formats:FORMATS"),
    "data.unit": OneOf(source="tfp_anomaly.data.events:UNITS"),
    "data.max_events": anyof(NULL, Integer(min=1)),
    "data.subset": OneOf(source="tfp_anomaly.data.splits:SUBSETS"),
    "data.on_error": OneOf(source="tfp_anomaly.data.errors:ON_ERROR"),
    "data.features": Mapping({"drop": ListOf(Text("a column name")), "recompute_tau21": BOOL}),
    "data.nonfinite": OneOf(source="tfp_anomaly.data.lhco:NONFINITE_POLICIES"),
    "data.stream": anyof(OneOf(("auto",)), BOOL),
    "data.chunk_events": Integer(min=1),
    "data.fit_events": anyof(NULL, Integer(min=1)),
    "data.weights": BOOL,
    "data.cache_dir": anyof(NULL, Text("a folder name")),
    "data.root": ROOT_OPTIONS,
    "grid.blocks": ListOf(Pair(anyof(OBJECT_CODE, ListOf(OBJECT_CODE, min_length=1)), Integer(min=1)), min_length=1),
    "grid.met_row": BOOL,
    "grid.features": ListOf(OneOf(source="tfp_anomaly.data.representation:FEATURES"), min_length=1),
    "grid.preset": OneOf(source="tfp_anomaly.data.representation:PRESETS"),
    "observables.names": ListOf(OneOf(source="tfp_anomaly.data.observables:OBSERVABLES")),
    "observables.as": OneOf(source="tfp_anomaly.data.representation:PLACEMENTS"),
    "scaler.name": OneOf(source="tfp_anomaly.data.preprocessing:SCALERS"),
    "scaler.log_columns": ListOf(anyof(Integer(min=0), Text("a column name"))),
    "scaler.per_slot": BOOL,
    "scaler.n_quantiles": Integer(min=2),
    "scaler.bounds": OneOf(("edge", "middle")),
    "split.fractions": Satisfies(_fractions, "three numbers >= 0 summing to 1 (train, validation, test), "
                                             "train and validation > 0"),
    "split.seed": Integer(min=0),
    "training.epochs": Integer(min=1),
    "training.batch_size": Integer(min=1),
    "training.learning_rate": Number(above=0),
    "training.clipnorm": anyof(NULL, Number(above=0)),
    "training.seed": Integer(min=0),
    "training.early_stopping": anyof(NULL, FALSE, Integer(min=1),
                                     Mapping(EARLY_STOPPING,
                                             what="a mapping of keras.callbacks.EarlyStopping options")),
    "training.tensorboard": BOOL,
    "training.verbose": anyof(OneOf(("auto",)), Integer(0, 2)),
    "training.jit_compile": anyof(OneOf(("auto",)), BOOL),
    "training.steps_per_execution": Integer(min=1),
    "training.flow_training": OneOf(source="tfp_anomaly.models.strategies:FLOW_TRAINING"),
    "training.first_stage_epochs": anyof(NULL, Integer(min=0)),
    "training.strategy": OneOf(source="tfp_anomaly.distribute:STRATEGIES"),
    "report.style": OneOf(source="tfp_anomaly.report.styles:STYLES"),
}

#: the value of each model option, where a model class has it (which options a class takes is checked
#: against its signature: :func:`tfp_anomaly.experiment.check_model`)
MODEL_OPTIONS: dict[str, Rule] = {
    "model.type": Text("a model type name"),
    "model.latent_dim": Integer(min=1),
    "model.ensemble": Integer(min=1),
    "model.network": Mapping(what="a mapping {type: ..., options}"),
    "model.reconstruction": anyof(Text("a reconstruction name"), Mapping(what="a mapping {name: ..., options}")),
    "model.flow": anyof(NULL, Text("a flow spec such as planar*6"),
                        ListOf(anyof(Text("a flow name"), Mapping(what="a mapping {name: ..., options}")))),
    "model.flow_kwargs": anyof(NULL, Mapping()),
    "model.beta": Number(min=0),
    "model.kl_warmup_steps": Integer(min=0),
    "model.free_bits": Number(min=0),
    "model.iwae_samples": Integer(min=0),
    "model.darkflow_compat": BOOL,
    "model.prior": anyof(Text("a prior name"), Mapping(what="a saved distribution"),
                         Satisfies(lambda v: hasattr(v, "log_prob") and hasattr(v, "sample"), "a tfd.Distribution")),
    "model.prior_kwargs": anyof(NULL, Mapping()),
    "model.lam": Number(min=0),
    "model.num_projections": Integer(min=1),
    "model.p": Number(min=1),
}


def _first_stage(config: dict) -> str | None:
    training = config.get("training") or {}
    first, epochs = training.get("first_stage_epochs"), training.get("epochs")
    if isinstance(first, int) and isinstance(epochs, int) and first > epochs:
        return (f"training.first_stage_epochs = {first} exceeds training.epochs = {epochs}: "
                "expected a whole number from 0 to training.epochs")
    return None


def _scaler_options(config: dict) -> str | None:
    scaler = config.get("scaler") or {}
    if not isinstance(scaler.get("name", "standard"), str):
        return None
    from ._signature import constructor_keywords
    from .data.preprocessing import SCALERS

    name = scaler.get("name", "standard")
    taken = constructor_keywords(SCALERS.lookup(name, "scaler.name"))
    unknown = sorted(set(scaler) - taken - {"name"})
    if unknown:
        return (f"scaler.{unknown[0]}: not an option of the {name!r} scaler; its options: "
                f"{', '.join(sorted(taken))}")
    return None


def _root_mapping(config: dict) -> str | None:
    """``data.root`` as the ROOT readers read it: a branch mapping (``objects``) for the ``root-ntuple``
    format, each object type's branches consistent (:func:`tfp_anomaly.data.root.check_options`)."""
    data = config.get("data") or {}
    if not isinstance(data.get("root") or {}, dict):
        return None
    from .data.root import check_options

    try:
        check_options(data.get("root") or {}, data.get("format", "auto"), "data.root")
    except ValueError as err:
        return str(err)
    return None


def _observables_once(config: dict) -> str | None:
    names = (config.get("observables") or {}).get("names")
    if not isinstance(names, list):
        return None
    twice = [n for k, n in enumerate(names) if n in names[:k]]
    return f"observables.names: {twice[0]!r} named twice; name each observable once" if twice else None


#: rules between keys, checked on a complete configuration: each returns the problem or None
CONSISTENCY: list[Callable[[dict], str | None]] = [_first_stage, _scaler_options, _root_mapping,
                                                    _observables_once]

#: the allowed keys of each section (``None``: checked elsewhere, e.g. against a model's signature)
SECTIONS: dict[str, set | None] = {
    **{section: {key.split(".", 1)[1] for key in SCHEMA if key.startswith(section + ".")}
       for section in dict.fromkeys(key.split(".")[0] for key in SCHEMA)},
    "model": None,
    "search": None,  # checked by tuning.search (tfp-anomaly tune); ignored by tfp-anomaly train
}

#: the ``data`` values of a run written before the key existed, as that run read its data: its first
#: ``max_events`` events (``subset``), the scaler and the scores fitted on every training event
#: (``fit_events``), no event weights (``weights``)
LEGACY_DATA = {"subset": "first", "fit_events": None, "weights": False}

DEFAULTS = {
    "data": {"dir": None, "format": "auto", "unit": "GeV", "max_events": None, "subset": "random",
             "on_error": "raise", "nonfinite": "drop", "stream": "auto", "chunk_events": 1 << 18,
             "fit_events": 200_000, "weights": True, "cache_dir": None, "root": {"tree": None, "btag_bit": 0}},
    "observables": {"names": [], "as": "flat"},
    "scaler": {"name": "standard"},
    "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0},
    "training": {"epochs": 20, "batch_size": 256, "learning_rate": 1e-3, "clipnorm": None, "seed": 0,
                 "early_stopping": None, "tensorboard": False, "verbose": "auto", "jit_compile": "auto",
                 "steps_per_execution": 1, "flow_training": "joint", "first_stage_epochs": None,
                 "strategy": "none"},
    "report": {"style": "plain"},
}


# --------------------------------------------------------------------------- merging and reading
def merge(base: dict, update: dict) -> dict:
    """``base`` updated by ``update``, recursively for mappings (neither argument is modified). A
    mapping that names a different ``type`` than the base's (``model.network: {type: deepsets}`` over
    a conv network) replaces it: the base's options belong to the other type."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _retyped(out[key], value):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _retyped(base: dict, update: dict) -> bool:
    return "type" in base and "type" in update and base["type"] != update["type"]


def read_text(path, what: str = "config file") -> str:
    """The text of a configuration file; a :class:`ConfigError` naming it when it is a directory, not
    text (UTF-8) or unreadable, ``FileNotFoundError`` when it does not exist."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a {what}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not a text (YAML) {what}: byte {err.object[err.start]:#04x} at position "
                          f"{err.start} is not UTF-8") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the {what}: {err.strerror or err}") from None


def parse_yaml(text: str, where) -> object:
    """``text`` parsed as YAML; a :class:`ConfigError` naming ``where`` and the line when it is not."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML: {' '.join(str(err).split())}") from None


def read_yaml(path, _seen=()) -> dict:
    """One configuration file with its ``base`` chain resolved, every file checked (:func:`check`)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to this file")
    content = parse_yaml(read_text(path), path)
    content = {} if content is None else content
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a configuration must be a mapping, got {type(content).__name__}")
    for section, value in list(content.items()):  # an empty section (``training:``) is an empty mapping
        if value is None and section in SECTIONS and SECTIONS[section] is not None:
            content[section] = {}
    check(content, str(path), partial=True)
    base = content.pop("base", None)
    if base is None:
        return content
    if not isinstance(base, str) or not base:
        raise ConfigError(f"{path}: base = {_short(base)}: expected the name of another configuration file")
    if not (path.parent / base).exists():
        raise FileNotFoundError(f"{path}: base {base!r}: config file not found: {path.parent / base}")
    return merge(read_yaml(path.parent / base, _seen + (path,)), content)


# --------------------------------------------------------------------------- checking
def check_keys(config: dict, where: str) -> None:
    """Raise :class:`ConfigError` for an unknown section, a section that is not a mapping, or an
    unknown key of a fixed section."""
    for section, value in config.items():
        if section == "base":
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
        allowed = SECTIONS[section]
        if allowed is None or value is None:  # model: checked against its class; search: by tuning
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping, got {_short(value)}")
        unknown = sorted(set(value) - allowed, key=str)
        if unknown:
            raise ConfigError(f"{where}: unknown key {section}.{unknown[0]}; "
                              f"{section} keys: {', '.join(sorted(allowed))}")


def _related(key: str, only) -> bool:
    """Whether table key ``key`` lies on the path ``only`` (a list of keys) set by an override."""
    if only is None:
        return True
    prefix = ".".join(only)
    return key == prefix or key.startswith(prefix + ".") or prefix.startswith(key + ".")


def check_values(config: dict, where: str, only=None) -> None:
    """Raise :class:`ConfigError` for the first value of ``config`` that its :data:`SCHEMA` or
    :data:`MODEL_OPTIONS` rule refuses (only the keys on the path ``only`` when given)."""
    for key, rule in (*SCHEMA.items(), *MODEL_OPTIONS.items()):
        if not _related(key, only):
            continue
        section, name = key.split(".", 1)
        node = config.get(section)
        if isinstance(node, dict) and name in node:
            problem = rule.error(node[name], key)
            if problem:
                raise ConfigError(f"{where}: {problem}")


def check_consistency(config: dict, where: str) -> None:
    """Raise :class:`ConfigError` for the first rule of :data:`CONSISTENCY` a complete configuration breaks."""
    for rule in CONSISTENCY:
        problem = rule(config)
        if problem:
            raise ConfigError(f"{where}: {problem}")


def check(config: dict, where: str, partial: bool = False) -> None:
    """Check a configuration: every section and key known (:func:`check_keys`), every value one its
    key accepts (:func:`check_values`) and, unless ``partial`` (one file of a ``base`` chain), the rules
    between keys (:func:`check_consistency`). Raises :class:`ConfigError` naming ``where`` and the key."""
    check_keys(config, where)
    check_values(config, where)
    if not partial:
        check_consistency(config, where)


def parse_override(text: str) -> tuple[list[str], object]:
    """``"training.epochs=3"`` → (["training", "epochs"], 3)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {' '.join(str(err).split())}") from None
    return key.strip().split("."), parsed


def apply_overrides(config: dict, overrides=()) -> dict:
    """A copy of ``config`` with each ``dotted.key=yaml_value`` override set, its key and value
    checked (:func:`check_keys`, :func:`check_values` of the keys it sets)."""
    out = copy.deepcopy(config)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            if node.get(key) is None:
                node[key] = {}
            if not isinstance(node[key], dict):
                raise ConfigError(f"override {text!r}: {key!r} is {_short(node[key])}, not a section")
            node = node[key]
        node[keys[-1]] = value
        check_keys({keys[0]: out[keys[0]]}, f"override {text!r}")
        check_values(out, f"override {text!r}", only=keys)
    return out


def load_config(path, overrides=()) -> dict:
    """The configuration of ``path`` (``base`` chain resolved) with defaults filled in and overrides
    applied, every key and value checked (:func:`check`).

    Relative paths in ``data.background`` are taken relative to ``data.dir`` (itself relative to the
    current directory) when it is set, else to the current directory.
    """
    config = merge(DEFAULTS, read_yaml(path))
    config = apply_overrides(config, overrides)
    if not config.get("model"):
        raise ConfigError(f"{path}: no 'model' section (at least model.type: vae or swae)")
    if not isinstance(config["model"], dict):
        raise ConfigError(f"{path}: section 'model' must be a mapping, got {_short(config['model'])}")
    check_consistency(config, f"{path}{' with its overrides' if overrides else ''}")
    return config


def load_resolved(path) -> dict:
    """A resolved configuration as a run directory keeps it (``RUN/config.yaml``: no ``base``, defaults
    filled in), checked like any other (:func:`check`); a :class:`ConfigError` naming the file when it
    is damaged."""
    config = parse_yaml(read_text(path, "run configuration"), path)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ConfigError(f"{path}: not the configuration of a run (a mapping with a 'model' section)")
    if isinstance(config.get("data"), dict):  # runs written before these keys existed
        config["data"] = {**LEGACY_DATA, **config["data"]}
    config = merge(DEFAULTS, config)
    check(config, str(path))
    return config


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
