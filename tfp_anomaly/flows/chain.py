"""Composition of flow steps from a compact spec, and the registry look-ups.

Specs: ``"planar*6"``; ``"maf, reverse, maf"``; ``["realnvp*4", {"name": "maf", "hidden_units": [32]}]``.
Keyword arguments given to :class:`FlowChain` go to every step whose constructor accepts them (e.g.
``amortized=True``); one that no step accepts is an error. Steps with a ``parity`` (couplings, Glow, triangular Sylvester) alternate
0, 1, 0, ... unless the spec fixes it.
"""
from __future__ import annotations

import keras
import tensorflow_probability as tfp

from .._signature import constructor_keywords
from .base import REGISTRY, FlowLayer, per_event

tfb = tfp.bijectors


def available() -> list[str]:
    """Every registered flow name."""
    return sorted(REGISTRY)


def get(name: str, **kwargs) -> FlowLayer:
    """A new flow step by registered name."""
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown flow {name!r}; available: {', '.join(available())}") from None
    return cls(**kwargs)


def _accepted(cls, kwargs: dict) -> dict:
    names = constructor_keywords(cls)
    return {k: v for k, v in kwargs.items() if k in names}


def parse_spec(spec) -> list[dict]:
    """Normalise a spec to a list of ``{"name": ..., **kwargs}`` dicts (repetitions expanded)."""
    if isinstance(spec, str):
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    steps = []
    for item in spec:
        if isinstance(item, str):
            name, _, count = item.partition("*")
            item = {"name": name.strip(), "repeat": int(count) if count else 1}
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"flow spec entries are names or dicts with a 'name', got {item!r}")
        item = dict(item)
        repeat = int(item.pop("repeat", 1))
        if item["name"] not in REGISTRY:
            raise KeyError(f"unknown flow {item['name']!r}; available: {', '.join(available())}")
        steps.extend(dict(item) for _ in range(repeat))
    return steps


@keras.saving.register_keras_serializable(package="tfp_anomaly.flows")
class FlowChain(FlowLayer):
    """A sequence of flow steps: z_K = f_K ∘ ⋯ ∘ f_1(z_0), log|det| = Σ_k log|det J_k|.

    ``bijector(context)`` returns the equivalent ``tfb.Chain`` (for TransformedDistribution).
    """

    def __init__(self, spec="planar*4", step_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.step_kwargs = dict(step_kwargs or {})
        self.spec = parse_spec(spec)
        self.steps = []
        parity = 0
        for k, entry in enumerate(self.spec):
            cls = REGISTRY[entry["name"]]
            options = {**_accepted(cls, self.step_kwargs), **{a: b for a, b in entry.items() if a != "name"}}
            if "parity" in _accepted(cls, {"parity": 0}) and "parity" not in entry:
                options["parity"], parity = parity, 1 - parity
            self.steps.append(cls(**options, name=f"{entry['name']}_{k}"))
        unused = set(self.step_kwargs) - {k for entry in self.spec
                                          for k in _accepted(REGISTRY[entry["name"]], self.step_kwargs)}
        if unused:  # a typo must not be silently ignored
            raise TypeError(f"flow option(s) {sorted(unused)} are accepted by no step of {spec!r}")
        self.amortized = any(step.amortized for step in self.steps)
        self.has_inverse = all(step.has_inverse for step in self.steps)

    def build_flow(self, dim, context_dim):
        context = None if context_dim is None else (None, context_dim)
        for step in self.steps:
            step.build((None, dim), context)

    def call(self, z, context=None, training=None):
        total = per_event(0.0, z)
        for step in self.steps:
            z, log_det = step(z, context=context, training=training)
            total = total + log_det
        return z, total

    def bijector(self, context=None):
        return tfb.Chain([step.bijector(context) for step in reversed(self.steps)])

    def get_config(self):
        return {**super().get_config(), "spec": self.spec, "step_kwargs": self.step_kwargs}
