"""Search spaces declared in YAML, turned into Keras Tuner hyper-parameters.

A search configuration is a run configuration (``tfp_anomaly.config``: data, grid, scaler, split,
model, training) plus a ``search`` section::

    search:
      tuner: random            # random | bayesian | hyperband
      max_trials: 20
      objective: val_loss      # or val_auc / val_eff_at_1e-3 with search.validation_signal
      space:
        model.latent_dim: {int: [2, 16], step: 2}
        model.network: {choice: [{type: conv, hidden: 20}, {type: dense, hidden_units: [64, 32]}]}
        model.flow: {choice: [null, "planar*4", "iaf, reverse, iaf"]}
        model.lam: {float: [0.1, 10.0], sampling: log}
        training.learning_rate: {float: [1.0e-4, 1.0e-2], sampling: log}
        training.batch_size: {choice: [128, 256, 512]}

Each key of ``space`` is a dotted path into the run configuration; its value declares one
hyper-parameter: ``choice`` (a list of values; ``null`` allowed), ``int`` ([low, high], optional
``step``), ``float`` ([low, high], optional ``step``, ``sampling: linear | log``), ``boolean`` (true),
or ``fixed`` (one value). ``merge: true`` with a choice of mappings sets several keys together (a
flow with the step options it accepts: ``model: {merge: true, choice: [{flow: "planar*4", flow_kwargs:
{amortized: true}}, {flow: "iaf, reverse, iaf", flow_kwargs: {hidden_units: [32, 32]}}]}``). ``when: {path: value}`` makes a parameter active only when another one has
that value (Keras Tuner conditional scopes), e.g. the SWAE's ``model.lam`` only for ``model.type: swae``.
Every other key is an error naming it.
"""
from __future__ import annotations

import copy

KINDS = ("choice", "int", "float", "boolean", "fixed")
OPTIONS = set(KINDS) | {"step", "sampling", "when", "default", "merge"}


class SearchSpaceError(ValueError):
    """A malformed search-space entry, naming the key."""


def check_space(space: dict) -> None:
    """Raise :class:`SearchSpaceError` naming the path of the first malformed declaration."""
    if not isinstance(space, dict) or not space:
        raise SearchSpaceError("search.space: a non-empty mapping of dotted configuration paths to declarations")
    for path, spec in space.items():
        where = f"search.space.{path}"
        if not isinstance(spec, dict):
            raise SearchSpaceError(f"{where}: expected a mapping such as {{choice: [...]}}, got {spec!r}")
        kinds = [k for k in KINDS if k in spec]
        if len(kinds) != 1:
            raise SearchSpaceError(f"{where}: give exactly one of {', '.join(KINDS)}; got {sorted(spec)}")
        unknown = sorted(set(spec) - OPTIONS)
        if unknown:
            raise SearchSpaceError(f"{where}: unknown option {unknown[0]!r}; options: {', '.join(sorted(OPTIONS))}")
        kind = kinds[0]
        if kind in ("int", "float") and (not isinstance(spec[kind], list) or len(spec[kind]) != 2):
            raise SearchSpaceError(f"{where}: {kind} needs [low, high], got {spec[kind]!r}")
        if kind == "choice" and (not isinstance(spec["choice"], list) or not spec["choice"]):
            raise SearchSpaceError(f"{where}: choice needs a non-empty list")
        if spec.get("merge") and not (kind == "choice" and all(isinstance(v, dict) for v in spec["choice"])):
            raise SearchSpaceError(f"{where}: merge needs a choice of mappings")
        when = spec.get("when")
        earlier = list(space)[:list(space).index(path)]
        if when is not None and (not isinstance(when, dict) or len(when) != 1 or any(k not in earlier for k in when)):
            raise SearchSpaceError(f"{where}: 'when' must name one parameter declared before it, got {when!r}")


def _encoded(values) -> bool:
    """Keras Tuner choices must be one type of str/int/float/bool; anything else (null, mappings,
    mixed types) is declared by its ``repr`` label and decoded on use."""
    return not (all(isinstance(v, (str, int, float, bool)) for v in values) and len({type(v) for v in values}) == 1)


def _declare(hp, path: str, spec: dict):
    name = path
    if "choice" in spec:
        values = spec["choice"]
        if not _encoded(values):
            return hp.Choice(name, values, default=spec.get("default"))
        labels = [repr(v) for v in values]
        picked = hp.Choice(name, labels, default=None if "default" not in spec else repr(spec["default"]))
        return values[labels.index(picked)]
    if "int" in spec:
        low, high = spec["int"]
        return hp.Int(name, int(low), int(high), step=spec.get("step"), default=spec.get("default"))
    if "float" in spec:
        low, high = spec["float"]
        return hp.Float(name, float(low), float(high), step=spec.get("step"), sampling=spec.get("sampling", "linear"),
                        default=spec.get("default"))
    if "boolean" in spec:
        return hp.Boolean(name, default=bool(spec.get("default", False)))
    return hp.Fixed(name, spec["fixed"])


def sample_config(hp, base: dict, space: dict) -> dict:
    """``base`` with every active parameter of ``space`` set from ``hp`` (declaring it on first use)."""
    import contextlib

    config = copy.deepcopy(base)
    for path, spec in space.items():
        when = spec.get("when") or {}
        scope = contextlib.nullcontext()
        if when:
            (parent, value), = when.items()
            label = repr(value) if _encoded(space[parent].get("choice", [value])) else value
            scope = hp.conditional_scope(parent, [label])
            if get_path(config, parent) != value:
                continue
        with scope:
            value = _declare(hp, path, spec)
        if spec.get("merge"):  # the chosen mapping sets several keys at once
            target = get_path(config, path)
            set_path(config, path, {**(target or {}), **value})
        else:
            set_path(config, path, value)
    return config


def get_path(config: dict, path: str):
    """The value at a dotted configuration path."""
    node = config
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def set_path(config: dict, path: str, value) -> None:
    keys = path.split(".")
    node = config
    for key in keys[:-1]:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value
