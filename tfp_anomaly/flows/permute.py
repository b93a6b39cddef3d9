"""Fixed permutations between flow steps (no weights, log|det| = 0)."""
from __future__ import annotations

import numpy as np
import tensorflow_probability as tfp

from .base import FLOWS, FlowLayer

tfb = tfp.bijectors


@FLOWS.register("reverse")
class Reverse(FlowLayer):
    """Reverse the order of the dimensions, between autoregressive or coupling steps.

    Forward: y_i = z_{d−1−i}; log|det ∂y/∂z| = 0. Inverse: the same reversal. No weights; a context is
    ignored.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Dinh, Sohl-Dickstein & Bengio (2016), Density estimation using Real NVP, arXiv:1605.08803;
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density Estimation,
        arXiv:1705.07057.
    """

    def build_flow(self, dim, context_dim):
        self.permutation = list(range(dim - 1, -1, -1))

    def bijector(self, context=None):
        return tfb.Permute(permutation=self.permutation)


@FLOWS.register("permute")
class RandomPermutation(Reverse):
    """A fixed random permutation π of the dimensions, drawn from ``seed``.

    Forward: y_i = z_{π(i)}; log|det ∂y/∂z| = 0. Inverse: the inverse permutation. No weights: π is
    drawn again from ``seed`` (stored in the config) when the layer is built; a context is ignored.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        seed: seed of the permutation (``numpy.random.default_rng(seed).permutation(dim)``).
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        Papamakarios, Pavlakou & Murray (2017), Masked Autoregressive Flow for Density Estimation,
        arXiv:1705.07057.
    """

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = int(seed)

    def build_flow(self, dim, context_dim):
        self.permutation = np.random.default_rng(self.seed).permutation(dim).tolist()

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
