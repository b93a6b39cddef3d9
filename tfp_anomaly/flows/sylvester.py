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
* ``sylvester_householder``: Q = H_K ⋯ H_1, a product of K Householder reflections (M = d);
* ``sylvester_triangular``: Q = identity or the reversal permutation, alternating by ``parity`` (M = d).
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .base import FLOWS, AmortizedFlowLayer
from .householder import reflect

tfb = tfp.bijectors


class SylvesterBijector(tfb.Bijector):
    """The Sylvester transform for given (possibly per-event) Q, R, R̃ and b.

    Forward: f(z) = z + Q R tanh(R̃ Qᵀ z + b); log|det ∂f/∂z| = Σ_i log|1 + tanh′(a_i) R̃_ii R_ii| with
    a = R̃ Qᵀ z + b (Sylvester's determinant identity, see the module docstring), each term floored at
    log(1e-12) against float32 round-off. No inverse.

    Shapes: the leading axes (...) of the parameters broadcast against ``z: (batch, d)``.

    Args:
        q: Q, shape (..., d, M), orthonormal columns.
        r: R, shape (..., M, M), upper triangular.
        r_tilde: R̃, shape (..., M, M), upper triangular; invertible when R̃_ii R_ii > −1.
        b: shape (..., M).
        validate_args, name: as for every ``tfb.Bijector``.

    References:
        van den Berg, Hasenclever, Tomczak & Welling (2018), Sylvester Normalizing Flows for Variational
        Inference, arXiv:1803.05649.
    """

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


class _Sylvester(AmortizedFlowLayer):
    """Shared part of the Sylvester flows; subclasses say how many columns Q has (``m``), the shape of
    its raw parameters (``q_shape``, None for a fixed Q) and how to make it (``make_q``)."""

    has_inverse = False

    def m(self, dim):
        return dim

    def q_shape(self, dim):
        return None

    def make_q(self, q_params):
        raise NotImplementedError

    def parameter_shapes(self, dim):
        m = self.m(dim)
        shapes = {"r": (m, m), "r_tilde": (m, m), "r_diag": (m,), "r_tilde_diag": (m,), "b": (m,)}
        if self.q_shape(dim) is not None:
            shapes["q"] = self.q_shape(dim)
        return shapes

    def weight_initializers(self):
        return {name: "orthogonal" if name == "q" else keras.initializers.RandomNormal(stddev=0.01)
                for name in self.parameter_shapes(self.dim)}

    def parameters_for(self, context=None):
        """(Q, R, R̃, b) for :class:`SylvesterBijector`: R and R̃ upper triangular with tanh diagonals."""
        raw = self.raw_parameters(context)
        return (self.make_q(raw.get("q")), upper_triangular(raw["r"], raw["r_diag"]),
                upper_triangular(raw["r_tilde"], raw["r_tilde_diag"]), raw["b"])

    def bijector(self, context=None):
        return SylvesterBijector(*self.parameters_for(context))


@FLOWS.register("sylvester_orthogonal")
class OrthogonalSylvester(_Sylvester):
    """Orthogonal Sylvester flow: Q (d × M) is the Q factor of the QR decomposition of a free d × M matrix.

    Forward: f(z) = z + Q R tanh(R̃ Qᵀ z + b); log|det ∂f/∂z| = Σ_i log|1 + tanh′(a_i) R̃_ii R_ii|,
    a = R̃ Qᵀ z + b. R, R̃ are upper triangular with diagonals tanh(·), so |R̃_ii R_ii| < 1 and f is
    invertible, but no inverse is implemented.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        num_ortho: M, the number of columns of Q (≤ d; default and above: d).
        amortized: take every raw parameter (R, R̃, their diagonals, b and Q's) per event from the context
            through one linear layer; otherwise they are weights and a context is ignored.
        **kwargs: ``keras.layers.Layer`` arguments.

    References:
        van den Berg, Hasenclever, Tomczak & Welling (2018), Sylvester Normalizing Flows for Variational
        Inference, arXiv:1803.05649.
    """

    def __init__(self, num_ortho=None, **kwargs):
        super().__init__(**kwargs)
        self.num_ortho = num_ortho

    def m(self, dim):
        return min(self.num_ortho or dim, dim)

    def q_shape(self, dim):
        return (dim, self.m(dim))

    def make_q(self, q_params):
        return tf.linalg.qr(q_params)[0]

    def get_config(self):
        return {**super().get_config(), "num_ortho": self.num_ortho}


@FLOWS.register("sylvester_householder")
class HouseholderSylvester(_Sylvester):
    """Householder Sylvester flow: Q = H_K ⋯ H_1 (d × d), the product of K Householder reflections
    H_k = I − 2 v_k v_kᵀ/‖v_k‖².

    Forward: f(z) = z + Q R tanh(R̃ Qᵀ z + b); log|det ∂f/∂z| = Σ_i log|1 + tanh′(a_i) R̃_ii R_ii|,
    a = R̃ Qᵀ z + b, as for :class:`OrthogonalSylvester` (M = d). No inverse is implemented.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        num_householder: K, the number of reflections; their vectors v_k start as fixed random
            directions (seed 0) when they are weights.
        amortized, **kwargs: as for :class:`OrthogonalSylvester`.

    References:
        van den Berg, Hasenclever, Tomczak & Welling (2018), Sylvester Normalizing Flows for Variational
        Inference, arXiv:1803.05649.
    """

    def __init__(self, num_householder=4, **kwargs):
        super().__init__(**kwargs)
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


@FLOWS.register("sylvester_triangular")
class TriangularSylvester(_Sylvester):
    """Triangular Sylvester flow: Q is the identity (``parity`` 0) or the reversal permutation (1), so
    that consecutive steps alternate between upper- and lower-triangular maps.

    Forward: f(z) = z + Q R tanh(R̃ Qᵀ z + b); log|det ∂f/∂z| = Σ_i log|1 + tanh′(a_i) R̃_ii R_ii|,
    a = R̃ Qᵀ z + b, as for :class:`OrthogonalSylvester` (M = d). No inverse is implemented.

    Shapes: z: (batch, dim) → y: (batch, dim), log_det: (batch,); context: (batch, context_dim).

    Args:
        parity: 0 for Q = I, 1 for the reversal; :class:`~.chain.FlowChain` alternates it.
        amortized, **kwargs: as for :class:`OrthogonalSylvester`.

    References:
        van den Berg, Hasenclever, Tomczak & Welling (2018), Sylvester Normalizing Flows for Variational
        Inference, arXiv:1803.05649.
    """

    def __init__(self, parity=0, **kwargs):
        super().__init__(**kwargs)
        self.parity = int(parity)

    def make_q(self, _):
        eye = np.eye(self.dim, dtype="float32")
        return tf.constant(eye[::-1] if self.parity % 2 else eye)

    def get_config(self):
        return {**super().get_config(), "parity": self.parity}
