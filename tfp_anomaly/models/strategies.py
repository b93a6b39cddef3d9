"""How a VAE's flow posterior is brought into training: joint, staged, or after a warm-up.

A VAE trains in one of three *stages* (:data:`STAGES`, the model's ``stage``):

* ``joint``: encoder, decoder and flow together on the full flow ELBO (Rezende & Mohamed 2015);
* ``vae``: the flow bypassed (z = z_0, closed-form KL) and frozen: a plain Gaussian VAE;
* ``flow``: encoder, decoder and heads frozen (``trainable = False``: no gradient step, batch norm in
  inference mode), only the flow's weights trained on the full flow ELBO.

A *strategy* (``training.flow_training``, a name of :data:`FLOW_TRAINING`) is a sequence of stages
over the epochs:

* ``joint``: ``joint`` throughout (the default; the only one for SWAEs and flow-less VAEs);
* ``staged``: ``vae`` for ``first_stage_epochs``, then ``flow``: the flow refines the posterior of a
  trained, fixed VAE, the two-step recipe of the DarkFlow study;
* ``flow_warmup``: ``vae`` for ``first_stage_epochs``, then ``joint``: the flow joins once the encoder
  and decoder have settled.

``first_stage_epochs`` defaults to half the epochs. The KL warm-up (β rising linearly over
``model.kl_warmup_steps``, Bowman et al. 2016; Sønderby et al. 2016) combines with any strategy.
Every stage change recompiles the model (a fresh optimizer over the new trainable weights); the
stage is part of the model's configuration, so a checkpoint resumes in its stage with its optimizer.
"""
from __future__ import annotations

import dataclasses
from typing import NamedTuple

from ..registry import Registry


class Stage(NamedTuple):
    """What one training stage uses and trains: the posterior flow used (otherwise z = z_0 and the
    closed-form KL), the flow's weights trained, the rest (encoder, decoder, heads) trained."""

    flow_used: bool
    flow_trained: bool
    rest_trained: bool


#: stage name → :class:`Stage` (the model's ``stage``)
STAGES = Registry("training stage", listing="stages")
STAGES.register("joint", Stage(True, True, True))
STAGES.register("vae", Stage(False, False, True))
STAGES.register("flow", Stage(True, True, False))


@dataclasses.dataclass(frozen=True)
class Phase:
    """Epochs [start, end) trained in ``stage``.

    Args:
        stage: a name of :data:`STAGES`.
        start: the first epoch of the phase.
        end: the epoch after its last.
    """

    stage: str
    start: int
    end: int


#: ``training.flow_training`` name → ``fn(epochs, first_stage_epochs) -> list[Phase]``
FLOW_TRAINING = Registry("strategy")


@FLOW_TRAINING.register("joint")
def joint_phases(epochs: int, first: int) -> list[Phase]:
    """``joint`` throughout."""
    return [Phase("joint", 0, epochs)]


@FLOW_TRAINING.register("staged")
def staged_phases(epochs: int, first: int) -> list[Phase]:
    """``vae`` for the first ``first`` epochs, then ``flow``."""
    return [Phase("vae", 0, first), Phase("flow", first, epochs)]


@FLOW_TRAINING.register("flow_warmup")
def flow_warmup_phases(epochs: int, first: int) -> list[Phase]:
    """``vae`` for the first ``first`` epochs, then ``joint``."""
    return [Phase("vae", 0, first), Phase("joint", first, epochs)]


def phases(strategy: str, epochs: int, first_stage_epochs: int | None = None) -> list[Phase]:
    """The non-empty phases of ``strategy`` (a name of :data:`FLOW_TRAINING`) over ``epochs`` epochs."""
    schedule = FLOW_TRAINING.lookup(strategy, "training.flow_training")
    first = epochs // 2 if first_stage_epochs is None else int(first_stage_epochs)
    if not 0 <= first <= epochs:
        raise ValueError(f"training.first_stage_epochs = {first} must lie in [0, epochs = {epochs}]")
    return [p for p in schedule(epochs, first) if p.end > p.start]


def check(model, strategy: str) -> None:
    """``strategy`` is a name of :data:`FLOW_TRAINING`, and one other than ``joint`` needs a model with
    a posterior flow."""
    FLOW_TRAINING.lookup(strategy, "training.flow_training")
    if strategy != "joint" and getattr(model, "flow", None) is None:
        raise ValueError(f"training.flow_training {strategy!r} needs a VAE with a posterior flow (model.flow); "
                         f"{type(model).__name__} has none: use 'joint'")


def enter(model, stage: str) -> bool:
    """Put ``model`` in ``stage``; True when that changed what trains (the model must be recompiled)."""
    if getattr(model, "stage", "joint") == stage:
        return False
    model.set_stage(stage)
    return True
