"""Seed ensembles: K copies of one autoencoder, differently initialised, trained and saved as one model.

One training run of a deep model is one draw from the distribution of what training can give; its
latent-space scores in particular move with the initialisation (docs/benchmarks.md). An ensemble of K
members (Lakshminarayanan, Pritzel & Blundell 2017, arXiv:1612.01474) trains them side by side: the
loss is Σ_k L_k, and as members share no weight, the gradient of each member's weights is that of its
own loss, so with Adam (per-weight statistics and per-variable ``clipnorm``) every member follows the
trajectory it would follow alone, on the same batches. The members' weights are initialised one after
the other from the one Keras random stream seeded with ``seed`` (so they differ, reproducibly); member
k's own random draws (posterior samples, prior samples) use seed ``seed + k``.

:meth:`Ensemble.score_terms` stacks the members' per-event terms on axis 1 ((N, K, ...)); a
:class:`tfp_anomaly.scoring.Scorer` fits each scoring method per member and combines the members on
background-calibrated ranks (:class:`tfp_anomaly.scoring.MemberRanks`). Saved as one ``.keras`` file.

``make_model`` builds either a single model or an ensemble from a ``model`` section with ``ensemble: K``.
"""
from __future__ import annotations

import keras
from keras.src.losses.loss import scale_loss_for_distribution
import tensorflow as tf

from ..losses import weighted_mean
from .base import Encoding, ScoreTerms, event_weights
from .networks import legacy_network


def model_type_name(cls) -> str:
    """The ``model.type`` name of a registered model class."""
    from . import MODELS

    return next(name for name, c in MODELS.items() if c is cls)


def make_model(cls, input_shape, scaler=None, seed=0, ensemble=1, **options):
    """``cls(input_shape, scaler=, seed=, **options)``, or an :class:`Ensemble` of ``ensemble`` of them."""
    ensemble = int(ensemble)
    if ensemble < 1:
        raise ValueError(f"model.ensemble must be a positive number of members, got {ensemble}")
    if ensemble == 1:
        return cls(tuple(input_shape), scaler=scaler, seed=seed, **options)
    return Ensemble(input_shape, model_type_name(cls), ensemble, options, scaler=scaler, seed=seed)


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class Ensemble(ScoreTerms, keras.Model):
    """K members of one model type with the same options, trained side by side on Σ_k L_k.

    Member k's weights are initialised from the Keras random stream seeded with ``seed`` (one after
    the other), its own random draws use seed ``seed + k`` (module docstring). Attributes the report
    reads (``latent_dim``, ``prior_name``, ``flow_spec``, ``reconstruction``) are the first member's.

    Args:
        input_shape: shape of one event, as :class:`tfp_anomaly.models.Autoencoder`.
        member_type: a name of :data:`tfp_anomaly.models.MODELS` (``vae``, ``swae``).
        size: K, the number of members.
        options: the members' keyword arguments (a ``model`` section without ``type``).
        scaler: the fitted scaler's config, shared by every member.
        seed: seed of member 0; member k uses ``seed + k``.
        stage: the flow-training stage every member resumes in (set by training, saved).

    References:
        Lakshminarayanan, Pritzel & Blundell, "Simple and Scalable Predictive Uncertainty Estimation
        using Deep Ensembles", arXiv:1612.01474 (2017).
    """

    def __init__(self, input_shape, member_type, size, options=None, scaler=None, seed=0, stage=None, **kwargs):
        super().__init__(**kwargs)
        from . import MODELS

        cls = MODELS.lookup(member_type, "ensemble member type")
        self.event_shape, self.member_type = tuple(int(s) for s in input_shape), member_type
        self.ensemble_size, self.options, self.seed = int(size), dict(options or {}), int(seed)
        self.scaler_config = scaler
        staged = {} if stage is None else {"stage": stage}  # a checkpoint resumes in its flow-training stage
        self.members = [cls(self.event_shape, scaler=scaler, seed=self.seed + k, name=f"member_{k}", **self.options,
                            **staged) for k in range(self.ensemble_size)]
        first = self.members[0]
        self.latent_dim, self.terms = first.latent_dim, first.terms
        self.trackers = {name: keras.metrics.Mean(name=name) for name in self.terms}

    # the first member's description (the report shows the ensemble as one model)
    prior_name = property(lambda self: getattr(self.members[0], "prior_name", None))
    flow_spec = property(lambda self: getattr(self.members[0], "flow_spec", None))
    flow = property(lambda self: getattr(self.members[0], "flow", None))
    stage = property(lambda self: getattr(self.members[0], "stage", "joint"))
    reconstruction = property(lambda self: self.members[0].reconstruction)

    @property
    def metrics(self):
        return super().metrics + list(self.trackers.values())

    def build(self, input_shape=None):
        if self.built:
            return
        for member in self.members:
            member.build()
        self.built = True

    def set_stage(self, stage: str) -> None:
        """Every member enters the flow-training stage (:mod:`tfp_anomaly.models.strategies`)."""
        for member in self.members:
            member.set_stage(stage)

    def call(self, inputs, training=None):
        return [member(inputs, training=training) for member in self.members]

    def encode(self, inputs, training=None) -> Encoding:
        """The members' :class:`Encoding` fields stacked on axis 1: ``loc`` is (N, K, latent_dim)."""
        encodings = [member.encode(inputs, training=training) for member in self.members]
        return Encoding(*(None if fields[0] is None else tf.stack(fields, axis=1) for fields in zip(*encodings)))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Σ_k L_k, each member's objective weighted by Keras's per-event ``sample_weight`` when given
        (:meth:`tfp_anomaly.models.Autoencoder.objective`). A metric is the members' mean of a term's
        batch mean; with weights a per-event term's batch mean is Σ w ℓ / Σ w and enters the epoch mean
        with weight Σ w (so the epoch value is the weighted mean over every event, as for one model);
        a batch-level term (the SWAE's sliced distance) stays an unweighted mean over batches."""
        step = self.optimizer.iterations if getattr(self, "optimizer", None) is not None else None
        weights = event_weights(sample_weight)
        total, reported, per_event = 0.0, {}, {}
        for member, member_pred in zip(self.members, y_pred):
            loss, terms = member.objective(x, member_pred, training, step, sample_weight=weights)
            total += loss
            for name, value in terms.items():
                per_event[name] = bool(value.shape.rank)
                reported.setdefault(name, []).append(weighted_mean(value, weights) if per_event[name] else value)
        for name, values in reported.items():  # the members' mean, as one model's metric
            if weights is not None and per_event[name]:
                self.trackers[name].update_state(tf.add_n(values) / len(values),
                                                 sample_weight=tf.reduce_sum(weights))
            else:
                self.trackers[name].update_state(tf.add_n(values) / len(values))
        return scale_loss_for_distribution(total)  # Autoencoder.compute_loss: one replica's share

    def score_terms(self, inputs, seed) -> dict:
        """Every member's terms stacked on axis 1: ``terms[key]`` is (N, K, ...). Member k draws with
        the stateless seed ``seed`` folded with k."""
        per_member = [member.score_terms(inputs, tf.random.experimental.stateless_fold_in(seed, k))
                      for k, member in enumerate(self.members)]
        return {key: tf.stack([terms[key] for terms in per_member], axis=1)
                for key in per_member[0] if all(key in terms for terms in per_member)}

    @classmethod
    def from_config(cls, config):
        # a model saved before network options were checked may hold options its builders ignored
        options = dict(config.get("options") or {})
        if "network" in options:
            options["network"] = legacy_network(options["network"])
        return cls(**{**config, "options": options})

    def get_config(self):
        options = dict(self.options)
        if "prior" in options and not isinstance(options["prior"], (str, dict)):  # a user's tfd.Distribution
            from ..priors import serialize_distribution

            options["prior"] = serialize_distribution(options["prior"])
        return {**super().get_config(), "input_shape": list(self.event_shape), "member_type": self.member_type,
                "size": self.ensemble_size, "options": options, "scaler": self.scaler_config,
                "seed": self.seed, **({} if self.stage == "joint" else {"stage": self.stage})}
