"""Fixed permutations between flow steps (no weights, log|det| = 0)."""
from __future__ import annotations

import numpy as np
import tensorflow_probability as tfp

from .base import FlowLayer, register

tfb = tfp.bijectors


@register("reverse")
class Reverse(FlowLayer):
    """Reverse the order of the dimensions (between autoregressive or coupling steps)."""

    def build_flow(self, dim, context_dim):
        self.permutation = list(range(dim - 1, -1, -1))

    def bijector(self, context=None):
        return tfb.Permute(permutation=self.permutation)


@register("permute")
class RandomPermutation(Reverse):
    """A fixed random permutation drawn from ``seed`` (reproducible, stored in the config)."""

    def __init__(self, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.seed = int(seed)

    def build_flow(self, dim, context_dim):
        self.permutation = np.random.default_rng(self.seed).permutation(dim).tolist()

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
