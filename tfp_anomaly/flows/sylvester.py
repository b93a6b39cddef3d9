"""Sylvester normalizing flows (van den Berg, Hasenclever, Tomczak & Welling 2018, arXiv:1803.05649).

f(z) = z + Q R h(R̃ Qᵀ z + b), with Q (d × M) orthonormal columns, R and R̃ (M × M) upper
triangular and h = tanh. By Sylvester's determinant identity
det(I_d + Q R diag(h') R̃ Qᵀ) = det(I_M + diag(h') R̃ R), and R̃ R is upper triangular, so

    log|det ∂f/∂z| = Σ_i log|1 + h'(a_i) R̃_ii R_ii|,   a = R̃ Qᵀ z + b.

Invertibility needs R̃_ii R_ii > −1/‖h'‖∞ = −1: the diagonals are tanh-squashed so |R̃_ii R_ii| < 1.
No inverse is given (none in closed form; these flows serve as VAE posteriors, which only need the
forward direction). Three ways to make Q:

* ``sylvester_orthogonal``: Q from the (differentiable) QR decomposition of a free d × M matrix
  (the paper orthogonalises iteratively; QR is exact);
* ``sylvester_householder``: Q = H_1 ⋯ H_K, a product of K Householder reflections (M = d);
* ``sylvester_triangular``: Q = identity or the reversal permutation, alternating by ``parity`` (M = d).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FlowLayer, register
from .householder import reflect

tfb = tfp.bijectors


class SylvesterBijector(tfb.Bijector):
    """The Sylvester transform for given (possibly per-event) Q, R, R̃, b; see the module docstring."""

    def __init__(self, q, r, r_tilde, b, validate_args=False, name="sylvester"):
        parameters = dict(locals())
        with tf.name_scope(name):
            self.q, self.r, self.r_tilde, self.b = q, r, r_tilde, b
            super().__init__(forward_min_event_ndims=1, validate_args=validate_args, parameters=parameters,
                             name=name)

    def _pre(self, z):
        qz = tf.einsum("...dm,...d->...m", self.q, z)
        return tf.einsum("...mn,...n->...m", self.r_tilde, qz) + self.b

    def _forward(self, z):
        rh = tf.einsum("...mn,...n->...m", self.r, tf.tanh(self._pre(z)))
        return z + tf.einsum("...dm,...m->...d", self.q, rh)

    def _forward_log_det_jacobian(self, z):
        slope = 1.0 - tf.tanh(self._pre(z)) ** 2
        diag = tf.linalg.diag_part(self.r) * tf.linalg.diag_part(self.r_tilde)
        # each factor is > 0 exactly (|diag| < 1, 0 < h' <= 1); the floor guards float32 round-off
        return tf.reduce_sum(tf.math.log(tf.maximum(tf.abs(1.0 + slope * diag), 1e-12)), axis=-1)


def upper_triangular(full, diag_raw):
    """Strict upper part of ``full`` plus tanh(diag_raw) on the diagonal.

    Written with constant masks rather than ``band_part``/``set_diag``, whose gradients build
    zero tensors of dynamic shape that XLA (``jit_compile=True``) cannot compile."""
    m = full.shape[-1]
    strict = tf.constant(np.triu(np.ones((m, m), "float32"), 1))
    return full * strict + tf.eye(m) * tf.tanh(diag_raw)[..., None, :]


class _Sylvester(FlowLayer):
    has_inverse = False

    def __init__(self, amortized=False, **kwargs):
        super().__init__(**kwargs)
        self.amortized = bool(amortized)

    # -- to specialise: the size M and the parameters of Q
    def m(self, dim):
        return dim

    def q_shape(self, dim):
        return None

    def make_q(self, q_params):
        raise NotImplementedError

    def _shapes(self, dim):
        m = self.m(dim)
        shapes = {"r": (m, m), "r_tilde": (m, m), "r_diag": (m,), "r_tilde_diag": (m,), "b": (m,)}
        if self.q_shape(dim) is not None:
            shapes["q"] = self.q_shape(dim)
        return shapes

    def build_flow(self, dim, context_dim):
        self.shapes = self._shapes(dim)
        if self.amortized:
            total = sum(int(np.prod(s)) for s in self.shapes.values())
            self.params = keras.layers.Dense(total, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01))
            self.params.build((None, context_dim))
            return
        self.raw = {}
        for name, shape in self.shapes.items():
            init = "orthogonal" if name == "q" else keras.initializers.RandomNormal(stddev=0.01)
            self.raw[name] = self.add_weight(shape=shape, initializer=init, name=name)

    def parameters_for(self, context=None):
        if self.amortized:
            flat, start, raw = self.params(context), 0, {}
            for name, shape in self.shapes.items():
                size = int(np.prod(shape))
                raw[name] = tf.reshape(flat[:, start:start + size], (-1, *shape))
                start += size
        else:
            raw = {name: tf.convert_to_tensor(v) for name, v in self.raw.items()}
        q = self.make_q(raw.get("q"))
        return (q, upper_triangular(raw["r"], raw["r_diag"]), upper_triangular(raw["r_tilde"], raw["r_tilde_diag"]),
                raw["b"])

    def bijector(self, context=None):
        return SylvesterBijector(*self.parameters_for(context))

    def get_config(self):
        return {**super().get_config(), "amortized": self.amortized}


@register("sylvester_orthogonal")
class OrthogonalSylvester(_Sylvester):
    """Orthogonal Sylvester flow; ``num_ortho`` = M ≤ d columns (default d)."""

    def __init__(self, num_ortho=None, amortized=False, **kwargs):
        super().__init__(amortized=amortized, **kwargs)
        self.num_ortho = num_ortho

    def m(self, dim):
        return min(self.num_ortho or dim, dim)

    def q_shape(self, dim):
        return (dim, self.m(dim))

    def make_q(self, q_params):
        return tf.linalg.qr(q_params)[0]

    def get_config(self):
        return {**super().get_config(), "num_ortho": self.num_ortho}


@register("sylvester_householder")
class HouseholderSylvester(_Sylvester):
    """Householder Sylvester flow: Q = H_1 ⋯ H_K from ``num_householder`` = K reflections."""

    def __init__(self, num_householder=4, amortized=False, **kwargs):
        super().__init__(amortized=amortized, **kwargs)
        self.num_householder = int(num_householder)

    def q_shape(self, dim):
        return (self.num_householder, dim)

    def build_flow(self, dim, context_dim):
        super().build_flow(dim, context_dim)
        if not self.amortized:  # random directions: zero vectors would make degenerate reflections
            self.raw["q"].assign(np.random.default_rng(0).normal(size=self.q_shape(dim)).astype("float32"))

    def make_q(self, v):
        # H_1 = H_1ᵀ: reflecting the rows of I gives it, broadcast over any leading (event) axes of v
        # without a dynamic-shape tf.eye, which XLA cannot compile
        q = reflect(v[..., 0:1, :], tf.eye(v.shape[-1]))
        for k in range(1, self.num_householder):
            # H_k applied to every column of q: reflect the rows of qᵀ
            q = tf.linalg.matrix_transpose(reflect(v[..., k:k + 1, :], tf.linalg.matrix_transpose(q)))
        return q

    def get_config(self):
        return {**super().get_config(), "num_householder": self.num_householder}


@register("sylvester_triangular")
class TriangularSylvester(_Sylvester):
    """Triangular Sylvester flow: Q is the identity (``parity`` 0) or the reversal permutation (1),
    so that consecutive steps alternate between upper- and lower-triangular maps."""

    def __init__(self, parity=0, amortized=False, **kwargs):
        super().__init__(amortized=amortized, **kwargs)
        self.parity = int(parity)

    def make_q(self, _):
        eye = np.eye(self.dim, dtype="float32")
        return tf.constant(eye[::-1] if self.parity % 2 else eye)

    def get_config(self):
        return {**super().get_config(), "parity": self.parity}
