"""Set and graph encoders over the object list: the event as a set of objects, not an image.

Both take the scaled object matrix x (batch, slots, features) and the slot mask (batch, slots); each
object is its features plus a one-hot of its type, the type being its block of the object grid
(:attr:`tfp_anomaly.data.ObjectGrid.block_sizes`: jets, b-jets, μ+, …, MET). Padded slots never
contribute. With the type a feature, the output is invariant under any permutation of the objects
within a type block (and under moving padded slots), unlike the dense and conv networks, which see
the pT order of the grid.

* ``deepsets`` (Zaheer et al. 2017, arXiv:1703.06114; the Energy Flow Network of Komiske, Metodiev &
  Thaler 2019, arXiv:1810.05165): h = ρ(pool_i φ(x_i)), φ and ρ dense networks, pool a masked sum
  (default), mean or max over the real objects.
* ``graph``: edge convolutions (EdgeConv, Wang et al. 2019, arXiv:1801.07829, as in ParticleNet, Qu &
  Gouskos 2020, arXiv:1902.08570): each object's k nearest real neighbours j in the current feature
  space (a dynamic graph), edge features e_ij = MLP([h_i, h_j − h_i]), h_i' = mean_j e_ij, then a
  masked mean over objects and a dense layer.

The decoder of both is the dense decoder onto the object matrix (the reconstruction loss is masked).
They are registered in :data:`tfp_anomaly.models.networks.NETWORKS` and used with the same keys as the
others: ``model.network: {type: deepsets, phi_units: [64, 64], rho_units: [64]}``.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .networks import NETWORKS, Network, dense_decoder

#: the distance given to pairs that must not be neighbours (self, padded slots); finite, so that
#: top-k and its gradients never meet inf − inf
FAR = 1e9


def slot_types(blocks) -> np.ndarray:
    """The type index of every slot: ``[13, 3, 1]`` → 13 zeros, 3 ones, 1 two."""
    return np.repeat(np.arange(len(blocks)), [int(b) for b in blocks])


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class ObjectTypes(keras.layers.Layer):
    r"""Appends the one-hot type of each slot to its features:

        x'_s = x_s ⊕ e_{t(s)},  t(s) = the index of the type block holding slot s (:func:`slot_types`),

    e_t the t-th unit vector of ℝ^T, T = len(blocks). The type is fixed by the slot, the same for every
    event; it lets a permutation-invariant encoder tell a jet from a muon.

    Args:
        blocks: the rows per type block of the object grid (``ObjectGrid.block_sizes``), summing to
            the number of slots S.
        **kwargs: ``keras.layers.Layer`` arguments.

    Shapes:
        x: (batch, S, F); output: (batch, S, F + T).
    """

    def __init__(self, blocks, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [int(b) for b in blocks]
        types = slot_types(self.blocks)
        self.one_hot = np.eye(len(self.blocks), dtype="float32")[types]

    def call(self, x):
        types = tf.broadcast_to(tf.constant(self.one_hot), tf.concat([tf.shape(x)[:1], self.one_hot.shape], 0))
        return tf.concat([x, types], axis=-1)

    def compute_output_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] + len(self.blocks),)

    def get_config(self):
        return {**super().get_config(), "blocks": self.blocks}


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class MaskedPooling(keras.layers.Layer):
    r"""A permutation-invariant pooling over the real slots, the sum-decomposition of Deep Sets. With
    the slot mask m_s ∈ {0, 1},

        sum:   p = Σ_s m_s h_s,
        mean:  p = Σ_s m_s h_s / max(1, Σ_s m_s),
        max:   p_f = max_{s: m_s = 1} h_sf,

    so padded slots never count; an event with no real slot pools to zeros in every mode.

    Args:
        mode: ``"sum"``, ``"mean"`` or ``"max"``.
        **kwargs: ``keras.layers.Layer`` arguments.

    Shapes:
        h: (batch, slots, F); slot_mask: (batch, slots), bool or 0/1; output: (batch, F).

    References:
        Zaheer, Kottur, Ravanbakhsh, Póczos, Salakhutdinov & Smola 2017, "Deep Sets", arXiv:1703.06114.
    """

    def __init__(self, mode="sum", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"pooling {mode!r}: choose sum, mean or max")
        self.mode = mode

    def call(self, h, slot_mask):
        weight = tf.cast(slot_mask, h.dtype)[..., None]
        if self.mode == "max":
            pooled = tf.reduce_max(tf.where(weight > 0, h, tf.fill(tf.shape(h), h.dtype.min)), axis=1)
            return tf.where(tf.reduce_any(weight > 0, axis=1), pooled, tf.zeros_like(pooled))
        total = tf.reduce_sum(h * weight, axis=1)
        if self.mode == "mean":  # at least one, so an empty event pools to zeros, not NaN
            total = total / tf.maximum(tf.reduce_sum(weight, axis=1), 1.0)
        return total

    def compute_output_shape(self, h_shape, slot_mask_shape):
        return (h_shape[0], h_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class EdgeConv(keras.layers.Layer):
    r"""One edge convolution on the k-nearest-neighbour graph of the real objects:

        N(i) = the k real objects j ≠ i closest to h_i in Euclidean distance (fewer when the event has
               fewer; k is capped at slots − 1),
        e_ij = MLP([h_i, h_j − h_i]),
        h_i' = (1/|N(i)|) Σ_{j∈N(i)} e_ij  on real slots,  h_i' = 0 on padded ones (and for an object
               with no real neighbour).

    The MLP is a stack of Dense layers of widths ``units``, each followed by ``activation``, shared by
    all edges. The graph is recomputed from the layer's input (a dynamic graph). The neighbour set
    depends on the objects, not on their slot order, so the layer is permutation-equivariant (up to
    exact ties in distance).

    Args:
        units: the widths of the edge MLP; the output has units[-1] features.
        k: the number of neighbours.
        activation: the activation of every MLP layer.
        **kwargs: ``keras.layers.Layer`` arguments.

    Shapes:
        h: (batch, slots, F) with a known number of slots; slot_mask: (batch, slots), bool or 0/1;
        output: (batch, slots, units[-1]).

    References:
        Wang, Sun, Liu, Sarma, Bronstein & Solomon 2019, "Dynamic Graph CNN for Learning on Point
        Clouds", arXiv:1801.07829; Qu & Gouskos 2020, "ParticleNet: Jet Tagging via Particle Clouds",
        arXiv:1902.08570.
    """

    def __init__(self, units=(32, 32), k=8, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.units, self.k, self.activation = [int(u) for u in units], int(k), activation
        self.mlp = [keras.layers.Dense(u, activation=activation) for u in self.units]

    def build(self, h_shape, slot_mask_shape=None):
        width = 2 * int(h_shape[-1])
        for layer in self.mlp:
            layer.build((None, None, None, width))
            width = layer.units

    def call(self, h, slot_mask):
        valid = tf.cast(slot_mask, h.dtype)  # (B, N)
        k = min(self.k, int(h.shape[1]) - 1)  # the object grid has a fixed number of slots
        square = tf.reduce_sum(tf.square(h), axis=-1)
        distance = square[:, :, None] + square[:, None, :] - 2.0 * tf.matmul(h, h, transpose_b=True)
        blocked = (1.0 - valid[:, None, :]) + tf.eye(tf.shape(h)[1], dtype=h.dtype)[None]  # padded j, or j = i
        distance = tf.where(blocked > 0, FAR, distance)
        _, index = tf.math.top_k(-distance, k=k)  # (B, N, k)
        neighbour = tf.gather(h, index, batch_dims=1)  # (B, N, k, F)
        # a neighbour picked only to fill k (padded, or i itself) gets weight 0
        weight = tf.cast(tf.gather(distance, index, batch_dims=2) < FAR, h.dtype)
        centre = tf.broadcast_to(h[:, :, None, :], tf.shape(neighbour))
        edge = tf.concat([centre, neighbour - centre], axis=-1)
        for layer in self.mlp:
            edge = layer(edge)
        weight = weight[..., None]
        out = tf.reduce_sum(edge * weight, axis=2) / tf.maximum(tf.reduce_sum(weight, axis=2), 1.0)
        return out * valid[..., None]

    def compute_output_shape(self, h_shape, slot_mask_shape):
        return tuple(h_shape[:-1]) + (self.units[-1],)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "k": self.k, "activation": self.activation}


def _needs_objects(name, input_shape, blocks):
    if len(input_shape) != 2:
        raise ValueError(f"the {name} network needs an object matrix (slots, features), got {tuple(input_shape)}")
    if blocks is None:
        raise ValueError(f"the {name} network needs 'blocks', the rows per type block of the object grid "
                         "(ObjectGrid.block_sizes); tfp-anomaly train fills it from the grid")
    if sum(blocks) != input_shape[0]:
        raise ValueError(f"{name}: blocks {list(blocks)} cover {sum(blocks)} slots, the input has {input_shape[0]}")


def _object_inputs(input_shape, blocks):
    x = keras.Input(tuple(input_shape), name="x")
    mask = keras.Input((input_shape[0],), name="slot_mask")
    return x, mask, ObjectTypes(blocks, name="types")(x)


def _dense_stack(h, units, activation):
    for u in units:
        h = keras.layers.Dense(u, activation=activation)(h)
    return h


def deepsets_encoder(input_shape, blocks=None, phi_units=(64, 64), rho_units=(64,), pooling="sum",
                     activation="relu"):
    """Deep Sets: h = ρ(pool_i φ(x_i ⊕ type_i)), φ a Dense stack of widths ``phi_units`` applied to every
    object, ρ one of widths ``rho_units``, pool a :class:`MaskedPooling` (``pooling``); a functional model
    of ``[x (batch, slots, F), mask (batch, slots)]`` → (batch, rho_units[-1])."""
    _needs_objects("deepsets", input_shape, blocks)
    x, mask, objects = _object_inputs(input_shape, blocks)
    per_object = _dense_stack(objects, phi_units, activation)  # Dense acts on the last axis: φ per object
    h = _dense_stack(MaskedPooling(pooling, name="pool")(per_object, mask), rho_units, activation)
    return keras.Model([x, mask], h, name="encoder")


def graph_encoder(input_shape, blocks=None, edge_units=((32, 32), (32, 32)), k=8, pooling="mean", hidden=64,
                  activation="relu"):
    """An :class:`EdgeConv` per entry of ``edge_units`` (its MLP widths) on the dynamic k-NN graph of the
    real objects, a :class:`MaskedPooling` (``pooling``), Dense ``hidden``; a functional model of
    ``[x (batch, slots, F), mask (batch, slots)]`` → (batch, hidden)."""
    _needs_objects("graph", input_shape, blocks)
    x, mask, h = _object_inputs(input_shape, blocks)
    for n, units in enumerate(edge_units):
        h = EdgeConv(units, k=k, activation=activation, name=f"edge_conv_{n}")(h, mask)
    h = keras.layers.Dense(hidden, activation=activation)(MaskedPooling(pooling, name="pool")(h, mask))
    return keras.Model([x, mask], h, name="encoder")


def set_decoder(input_shape, latent_dim, params_per_feature=1, decoder_units=(64, 128), activation="relu"):
    """The dense decoder onto the object matrix (``decoder_units``: its hidden widths, narrow to wide)."""
    return dense_decoder(input_shape, latent_dim, params_per_feature, hidden_units=list(decoder_units)[::-1],
                         activation=activation)


NETWORKS.register("deepsets", Network(deepsets_encoder, set_decoder, needs_blocks=True))
NETWORKS.register("graph", Network(graph_encoder, set_decoder, needs_blocks=True))
