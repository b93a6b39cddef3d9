"""Run configurations: YAML files with inheritance and command-line overrides.

A configuration is a mapping with the sections of :data:`SECTIONS`. A file may name another with
``base: other.yaml`` (a path relative to the file): the base is loaded first and this file's values
are merged into it, mapping by mapping (a value that is not a mapping replaces the base's).
Overrides ``key.sub=value`` are applied last; the value is read as YAML, so ``training.epochs=3``
gives an int, ``model.flow=planar*6`` a string and ``grid.features=[E,pt]`` a list.

Unknown sections and unknown keys in the fixed sections are errors that name the file (or the
override) and the key: a typo must never be silently ignored. Model options are checked against the
model class when the model is built (:func:`tfp_anomaly.experiment.build_model`).
"""
from __future__ import annotations

import copy
from pathlib import Path

import yaml

#: the allowed keys of each section (``None``: checked elsewhere, e.g. against a model's signature)
SECTIONS: dict[str, set | None] = {
    "data": {"dir", "background", "signals", "format", "unit", "max_events", "on_error", "features", "nonfinite"},
    "grid": {"blocks", "met_row", "features", "preset"},
    "scaler": {"name", "log_columns", "per_slot"},
    "split": {"fractions", "seed"},
    "model": None,
    "training": {"epochs", "batch_size", "learning_rate", "clipnorm", "seed", "early_stopping", "tensorboard",
                 "verbose", "jit_compile", "steps_per_execution", "flow_training", "first_stage_epochs"},
    "search": None,  # checked by tuning.search (tfp-anomaly tune); ignored by tfp-anomaly train
}

DEFAULTS = {
    "data": {"dir": None, "format": "auto", "unit": "GeV", "max_events": None, "on_error": "raise",
             "nonfinite": "drop"},
    "scaler": {"name": "standard"},
    "split": {"fractions": [0.6, 0.2, 0.2], "seed": 0},
    "training": {"epochs": 20, "batch_size": 256, "learning_rate": 1e-3, "clipnorm": None, "seed": 0,
                 "early_stopping": None, "tensorboard": False, "verbose": "auto", "jit_compile": "auto",
                 "steps_per_execution": 1, "flow_training": "joint", "first_stage_epochs": None},
}


class ConfigError(ValueError):
    """A configuration problem, naming the file or override and the key."""


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


def read_yaml(path, _seen=()) -> dict:
    """One configuration file with its ``base`` chain resolved."""
    path = Path(path).resolve()
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    if path in _seen:
        raise ConfigError(f"{path}: 'base' chain loops back to this file")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: a configuration must be a mapping, got {type(content).__name__}")
    check(content, str(path))
    base = content.pop("base", None)
    if base is None:
        return content
    return merge(read_yaml(path.parent / base, _seen + (path,)), content)


def check(config: dict, where: str) -> None:
    """Raise :class:`ConfigError` for an unknown section or key."""
    for section, value in config.items():
        if section == "base":
            continue
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r}; sections: {', '.join(SECTIONS)}")
        allowed = SECTIONS[section]
        if allowed is None or value is None:
            continue
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping, got {value!r}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(f"{where}: unknown key {section}.{unknown[0]}; {section} keys: {', '.join(sorted(allowed))}")


def parse_override(text: str) -> tuple[list[str], object]:
    """``"training.epochs=3"`` → (["training", "epochs"], 3)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r}: expected key.sub=value")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: the value is not valid YAML: {err}") from None
    return key.strip().split("."), parsed


def apply_overrides(config: dict, overrides=()) -> dict:
    """A copy of ``config`` with each ``dotted.key=yaml_value`` override set (keys checked later by :func:`check`)."""
    out = copy.deepcopy(config)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for key in keys[:-1]:
            if node.get(key) is None:
                node[key] = {}
            if not isinstance(node[key], dict):
                raise ConfigError(f"override {text!r}: {key!r} is {node[key]!r}, not a section")
            node = node[key]
        node[keys[-1]] = value
        check({keys[0]: out[keys[0]]}, f"override {text!r}")
    return out


def load_config(path, overrides=()) -> dict:
    """The configuration of ``path`` (``base`` chain resolved) with defaults filled in and overrides applied.

    Relative paths in ``data.background`` are taken relative to ``data.dir`` (itself relative to the
    current directory) when it is set, else to the current directory.
    """
    config = merge(DEFAULTS, read_yaml(path))
    config = apply_overrides(config, overrides)
    if not config.get("model"):
        raise ConfigError(f"{path}: no 'model' section (at least model.type: vae or swae)")
    return config


def dump(config: dict) -> str:
    return yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
