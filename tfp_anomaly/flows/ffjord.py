"""FFJORD continuous normalizing flow (Grathwohl et al. 2018, arXiv:1810.01367) on ``tfb.FFJORD``.

dz/dt = f_θ(z, t, context) integrated from t = 0 to 1 with an adaptive Dormand–Prince solver;
log|det| = ∫₀¹ Tr(∂f/∂z) dt. The trace is exact (d backward passes) for d ≤ ``exact_trace_max_dim``
and Hutchinson's unbiased estimator E[εᵀ(∂f/∂z)ε], ε ~ N(0, I) drawn once per solve and event,
otherwise (then log_det is stochastic; the noise is stateless, seeded by (``seed``, draws so far)
with the counter a layer weight, so a run is reproducible and a saved or checkpointed layer resumes
the same noise stream). The inverse integrates backwards in time.
"""
from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from ..seeds import draw_counter, next_seed, normal
from .base import FLOWS, FlowLayer
from .conditioners import MLP

tfb = tfp.bijectors


@FLOWS.register("ffjord")
class FFJORD(FlowLayer):
    """Continuous normalizing flow on ``tfb.FFJORD``.

    Forward: y = z(1) for dz/dt = f_θ(z, t, context), z(0) = z, integrated by Dormand–Prince to
    ``rtol``/``atol``; log|det ∂y/∂z| = ∫₀¹ Tr(∂f_θ/∂z) dt, the trace exact for dim ≤
    ``exact_trace_max_dim`` and Hutchinson's estimate εᵀ(∂f_θ/∂z)ε, ε ~ N(0, I), above (then log_det is
    stochastic, its noise stateless and seeded by (``seed``, draws so far)). Inverse: the ODE integrated
    backwards from t = 1 to 0. Not XLA-compilable (``supports_jit = False``).

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        hidden_units: widths of the hidden layers of f_θ, an :class:`~.conditioners.MLP` (tanh) of
            (z, t, context).
        rtol: relative tolerance of the ODE solver.
        atol: absolute tolerance of the ODE solver.
        exact_trace_max_dim: the largest dimension with the exact trace.
        seed: seed of the Hutchinson noise stream.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Grathwohl, Chen, Bettencourt, Sutskever & Duvenaud (2018), FFJORD: Free-form Continuous
        Dynamics for Scalable Reversible Generative Models, arXiv:1810.01367.
    """

    def __init__(self, hidden_units=(32, 32), rtol=1e-5, atol=1e-6, exact_trace_max_dim=16, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False  # the adaptive ODE solver's dynamic loop does not compile with XLA
        self.hidden_units = list(hidden_units)
        self.rtol, self.atol = float(rtol), float(atol)
        self.exact_trace_max_dim, self.seed = int(exact_trace_max_dim), int(seed)

    def build_flow(self, dim, context_dim):
        self.noise_draws = draw_counter(self, "noise_draws")
        self.net = MLP(self.hidden_units, dim, activation="tanh")
        self.net.build((None, dim + 1 + (context_dim or 0)))

    def bijector(self, context=None):
        def time_derivative(t, z):
            t_column = tf.ones_like(z[..., :1]) * tf.cast(t, z.dtype)
            parts = [z, t_column] + ([tf.cast(context, z.dtype)] if context is not None else [])
            return self.net(tf.concat(parts, axis=-1))

        if self.dim <= self.exact_trace_max_dim:
            trace = tfb.ffjord.trace_jacobian_exact
        else:
            def trace(ode_fn, state_shape, dtype):
                return tfb.ffjord.trace_jacobian_hutchinson(ode_fn, state_shape, dtype, sample_fn=self.noise)
        solver = tfp.math.ode.DormandPrince(rtol=self.rtol, atol=self.atol)
        return tfb.FFJORD(state_time_derivative_fn=time_derivative, ode_solve_fn=solver.solve,
                          trace_augmentation_fn=trace)

    def noise(self, shape, dtype, seed=None):
        """Hutchinson's ε ~ N(0, I) of one solve, seeded by (``seed``, draws so far)."""
        return normal(shape, next_seed(self.seed, self.noise_draws), dtype=dtype)

    def get_config(self):
        return {**super().get_config(), "hidden_units": self.hidden_units, "rtol": self.rtol, "atol": self.atol,
                "exact_trace_max_dim": self.exact_trace_max_dim, "seed": self.seed}
