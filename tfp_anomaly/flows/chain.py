"""Composition of flow steps from a compact spec, and the registry look-ups.

Specs: ``"planar*6"``; ``"maf, reverse, maf"``; ``["realnvp*4", {"name": "maf", "hidden_units": [32]}]``.
The ``step_kwargs`` of :class:`FlowChain` go to every step whose constructor accepts them (e.g.
``amortized=True``); one that no step accepts is an error. Steps with a ``parity`` (couplings, Glow,
triangular Sylvester) alternate 0, 1, 0, ... unless the spec fixes it. Names are looked up in
:data:`~.base.FLOWS`.
"""
from __future__ import annotations

import keras

from .._signature import constructor_keywords
from .base import FLOWS, FlowLayer, FlowSequence


def available() -> list[str]:
    """Every registered flow name, sorted (``FLOWS.names()``)."""
    return FLOWS.names()


def get(name: str, **kwargs) -> FlowLayer:
    """A new flow step by registered name; an unknown name raises ``KeyError`` listing the known ones."""
    return FLOWS.lookup(name)(**kwargs)


def _accepted(cls, kwargs: dict) -> dict:
    names = constructor_keywords(cls)
    return {k: v for k, v in kwargs.items() if k in names}


def _repeat(count, item) -> int:
    """The repeat count of a spec entry: a whole number >= 1 (``planar*0`` would make no step)."""
    if isinstance(count, str):
        count = count.strip()
        count = int(count) if count.isdigit() else count
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"flow spec entry {item!r}: the repeat count must be a whole number >= 1, got {count!r}")
    return count


def parse_spec(spec) -> list[dict]:
    """Normalise a spec to a list of ``{"name": ..., **kwargs}`` dicts (repetitions expanded). An
    unknown flow name or a repeat count that is not a whole number >= 1 (``planar*0``) raises
    ``ValueError``."""
    if isinstance(spec, str):
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    elif not isinstance(spec, (list, tuple)):
        raise ValueError(f"a flow spec is a string such as 'planar*6' or a list of steps, got {spec!r}")
    steps = []
    for item in spec:
        if isinstance(item, str):
            name, star, count = item.partition("*")
            item = {"name": name.strip(), "repeat": _repeat(count, item) if star else 1}
        if not isinstance(item, dict) or "name" not in item:
            raise ValueError(f"flow spec entries are names or dicts with a 'name', got {item!r}")
        item = dict(item)
        repeat = _repeat(item.pop("repeat", 1), item)
        FLOWS.lookup(item["name"])  # an unknown name fails here, before any layer is made
        steps.extend(dict(item) for _ in range(repeat))
    return steps


def step_options(name: str) -> set[str]:
    """The options of flow ``name`` a spec or ``step_kwargs`` may set: its constructor's keywords (over
    the classes it extends within this package)."""
    return constructor_keywords(FLOWS.lookup(name), package="tfp_anomaly")


def check_options(spec, step_kwargs=None) -> list[dict]:
    """The parsed ``spec`` (:func:`parse_spec`), after checking its options without making a layer:
    every option of a dict entry is one its flow takes, and every one of ``step_kwargs`` is taken by at
    least one step. Raises ``TypeError`` naming the option and the accepted ones."""
    steps = parse_spec(spec)
    for entry in steps:
        known = constructor_keywords(FLOWS.lookup(entry["name"]))
        unknown = sorted(set(entry) - known - {"name"})
        if unknown:
            raise TypeError(f"flow {entry['name']!r} takes no option {unknown[0]!r}; its options: "
                            f"{', '.join(sorted(step_options(entry['name'])))}")
    unused = sorted(set(step_kwargs or {}) - {k for entry in steps for k in _accepted(FLOWS.lookup(entry["name"]),
                                                                                       step_kwargs or {})})
    if unused:  # a typo must not be silently ignored
        accepted = sorted({k for entry in steps for k in step_options(entry["name"])} - {"name"})
        raise TypeError(f"flow option(s) {unused} are accepted by no step of {spec!r}; the steps take: "
                        f"{', '.join(accepted) or 'no option'}")
    return steps


def _make_steps(spec: list[dict], step_kwargs: dict) -> list[FlowLayer]:
    """The steps of a parsed spec, named ``<flow>_<k>``: each gets the ``step_kwargs`` it accepts, then its
    entry's options; steps with a ``parity`` alternate 0, 1, 0, ... unless their entry sets it."""
    steps, parity = [], 0
    for k, entry in enumerate(spec):
        cls = FLOWS.lookup(entry["name"])
        options = {**_accepted(cls, step_kwargs), **{a: b for a, b in entry.items() if a != "name"}}
        if "parity" in _accepted(cls, {"parity": 0}) and "parity" not in entry:
            options["parity"], parity = parity, 1 - parity
        steps.append(cls(**options, name=f"{entry['name']}_{k}"))
    return steps


@keras.saving.register_keras_serializable(package="tfp_anomaly.flows")
class FlowChain(FlowSequence):
    """A sequence of flow steps made from a spec.

    Forward: z_K = f_K ∘ ⋯ ∘ f_1(z_0), every step given the same context; log|det ∂z_K/∂z_0| =
    Σ_k log|det ∂z_k/∂z_{k−1}|. Inverse: the steps' inverses in reverse order, where every step has
    one. The chain is amortized (needs a context) if any step is. ``bijector(context)`` returns the
    equivalent ``tfb.Chain`` (for ``tfd.TransformedDistribution``).

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        spec: the steps (see :func:`parse_spec`): ``"planar*6"``, ``"maf, reverse, maf"``, or a list of
            names and ``{"name": ..., **options}`` dicts.
        step_kwargs: options given to every step whose constructor accepts them (e.g.
            ``{"amortized": True}``); one that no step accepts is an error (:func:`check_options`). A
            dict entry's own options win. Steps with a ``parity`` alternate 0, 1, 0, ... unless their entry sets it.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Rezende & Mohamed (2015), Variational Inference with Normalizing Flows, arXiv:1505.05770.
    """

    def __init__(self, spec="planar*4", step_kwargs=None, **kwargs):
        super().__init__(**kwargs)
        self.step_kwargs = dict(step_kwargs or {})
        self.spec = check_options(spec, self.step_kwargs)
        self.steps = _make_steps(self.spec, self.step_kwargs)
        self.amortized = any(step.amortized for step in self.steps)
        self.has_inverse = all(step.has_inverse for step in self.steps)

    def parts(self):
        return self.steps

    def get_config(self):
        return {**super().get_config(), "spec": self.spec, "step_kwargs": self.step_kwargs}
