"""The transposed convolution of the conv decoder, computed as a matrix product where XLA's is slow.

:class:`Conv2DTranspose` is ``keras.layers.Conv2DTranspose`` (same weights, configuration and class
name) with one more way to compute the same function: when the input is a single column and the
kernel is wider than one, it is one matrix product and an overlap-add instead of a convolution.
"""
from __future__ import annotations

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfp_anomaly.models")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    r"""``keras.layers.Conv2DTranspose``; a single input column widened by the kernel is one matmul.

    For an input x of shape (B, H, 1, C) (one column), a kernel K of shape (k_h, k_w, F, C), unit
    strides and ``valid`` padding, the transposed convolution is (Dumoulin & Visin 2016, §4)

        y[b, i + a, j, f] = β_f + Σ_c x[b, i, 0, c] K[a, j, f, c],   0 ≤ a < k_h, 0 ≤ j < k_w,

    of shape (B, H + k_h − 1, k_w, F): every input row adds a k_h × k_w × F patch to the output. As
    matrices, T = X K̃ with X the (B·H, C) input rows and K̃ = K permuted to (C, k_h · k_w · F);
    T's patch row a lands on output row i + a, so y = β + Σ_a shift_a(T[:, :, a]), k_h shifted sums.

    The result is the convolution's (to rounding in the layer's compute dtype) and the weights are
    Keras's, so a model saved with ``keras.layers.Conv2DTranspose`` loads into this layer: Keras 3
    saves a layer's weights under its class name in snake case, which is why the class keeps Keras's
    name.

    Why: XLA:CPU lowers this case as a convolution of the column zero-padded to 2·k_w − 1 columns,
    and with F = 1 (the DarkFlow decoder's output layer, (3, 4) kernel, 32 → 1 channels) it took
    3.0 ms of a 12 ms ConvVAE training step at batch 256 under the profiler. As a matmul the full
    score terms (17 decoder passes) run 1.7–2.2× faster, training 1.0–1.05× (``benchmarks/speedups.py``,
    results in ``docs/benchmarks.md``). Every other case (an input wider than one column, strides,
    dilation, ``same`` padding, channels first) is Keras's own.

    References:
        Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", arXiv:1603.07285 (2016).
    """

    def _as_matmul(self, input_shape) -> bool:
        """Whether the input of ``input_shape`` is the case computed as a matmul (class docstring)."""
        return (self.data_format == "channels_last" and self.padding == "valid" and len(input_shape) == 4
                and input_shape[2] == 1 and self.kernel_size[1] > 1 and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and input_shape[1] is not None)

    def call(self, inputs):
        if not self._as_matmul(tuple(inputs.shape)):
            return super().call(inputs)
        (k_h, k_w), height = self.kernel_size, int(inputs.shape[1])
        filters, channels = self.filters, int(inputs.shape[-1])
        # K (k_h, k_w, F, C) → K̃ (C, k_h·k_w·F); X (B·H, C)
        kernel = tf.reshape(tf.transpose(self.kernel, (3, 0, 1, 2)), (channels, k_h * k_w * filters))
        patches = tf.reshape(tf.matmul(tf.reshape(inputs, (-1, channels)), kernel),
                             (-1, height, k_h, k_w * filters))
        # overlap-add: patch row a of input row i lands on output row i + a
        out = tf.add_n([tf.pad(patches[:, :, a], [[0, 0], [a, k_h - 1 - a], [0, 0]]) for a in range(k_h)])
        out = tf.reshape(out, (-1, height + k_h - 1, k_w, filters))
        if self.use_bias:
            out = out + self.bias
        return out if self.activation is None else self.activation(out)
