r"""The DarkFlow ConvVAE and its flow posteriors in PyTorch: the peer of our Keras models in the
training-speed and latency benchmarks.

Written from the paper's description (Jawahar, Aarrestad, Chernyavskaya, Pierini, Wozniak, Ngadiuba,
Duarte & Tsan 2022, "Improving Variational Autoencoders for New Physics Detection at the LHC With
Normalizing Flows", Front. Big Data 5, 803685, arXiv:2110.08508, §3) and the flows' papers, layer for
layer the Keras models that ``benchmarks/train_speed.py`` builds (``tfp_anomaly.models.networks``
``conv_encoder``/``conv_decoder``, ``tfp_anomaly.models.VAE`` with ``reconstruction="mse"``,
``free_bits=0``), so that both sides do the same work:

* input: the raw 32 × 4 object matrix and its slot mask m; the fitted standard scaler as fixed
  tensors, x' = (f(x) − c) / s · m with f = log1p(max(x, 0)) on columns 0, 1 (E, pT), as our
  ``ScalerLayer`` inside the model (both sides scale every batch);
* encoder: x' as a 1-channel 32 × 4 image → Conv2D 32 (3, 4) → BN → ReLU → Conv2D 16 (5, 1) → BN → ReLU
  → Conv2D 8 (7, 1) → BN → ReLU ('valid'; maps 30 × 1, 26 × 1, 20 × 1) → flatten (160) → Dense 20 → ReLU:
  the hidden vector h; latent heads μ = Dense 15 (h), log σ² = clip(Dense 15 (h), −12, 12);
* decoder (mirrored): Dense 20 → ReLU → Dense 160 → ReLU → 8 × 20 × 1 → ConvTranspose 16 (7, 1) → BN →
  ReLU → ConvTranspose 32 (5, 1) → BN → ReLU → ConvTranspose 1 (3, 4) → 32 × 4;
* posterior: z₀ = μ + σ ε, z_K = f_K ∘ ⋯ ∘ f_1(z₀), every step amortized by h (:data:`PEERS`);
* loss per batch: mean over events of the masked MSE,
  ℓ = Σ_s m_s (1/4) Σ_f (x'_sf − x̂_sf)² / max(1, Σ_s m_s), plus the mean KL: ½ Σ (μ² + σ² − 1 − log σ²)
  without a flow, and with one the single-sample estimate log q₀(z₀) − Σ_k log|det ∂f_k/∂z_{k−1}|
  − log N(z_K; 0, I) (Rezende & Mohamed 2015, eq. 15);
* training: Adam (learning rate 10⁻³, ε = 10⁻⁷, Keras' defaults; PyTorch's fused update), batch norm
  in training mode with Keras' ε = 10⁻³ and moving-average decay 0.99, a fresh random order of the
  events per epoch by index permutation and tensor slicing (the last batch smaller, as ours), a
  finite-loss check per step (ours runs a NaN guard), float32, eager mode (as the original DarkFlow
  code ran).

The trainable-parameter count of each peer equals our Keras model's (``tests/test_peers.py`` checks
it): ConvVAE 15,523; + Planar×6 19,429; + Householder-Sylvester×4 67,183; + IAF×4 49,179. Layouts
differ only where the frameworks do (NCHW feature maps here, channels-last in Keras; a flattened map
is ordered channel-first), which changes neither the arithmetic nor the parameter count.

Measure on an otherwise idle machine: PyTorch's OpenMP threads busy-wait at every parallel region, so
when another process competes for the cores the peer slows down far more than TensorFlow's thread
pool (once seen on a 2-core VM with another job running: the ConvVAE at batch 256 trained 28× slower
at 2 threads than at 1).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

SLOTS, FEATURES, HIDDEN, LATENT = 32, 4, 20, 15
#: (filters, kernel) of the encoder's convolutions, as ``tfp_anomaly.models.networks.CONV``
CONV = ((32, (3, 4)), (16, (5, 1)), (8, (7, 1)))
#: log σ² is clamped so that σ = exp(½ log σ²) and σ² stay finite in float32 (as ours)
LOG_VAR_RANGE = (-12.0, 12.0)
#: log σ of the Gaussian reconstruction is clamped as ours (σ ≥ 1e-3 of a scaled feature)
LOG_SCALE_RANGE = (-7.0, 7.0)
#: Keras' BatchNormalization defaults: ε = 1e-3, moving average x̄ ← 0.99 x̄ + 0.01 x (PyTorch's
#: ``momentum`` is the weight of the new batch)
BATCH_NORM = {"eps": 1e-3, "momentum": 0.01}
#: Adam as ours (learning rate 1e-3 given by the caller, β = (0.9, 0.999)) with Keras' ε (PyTorch's
#: default is 1e-8); ``fused``: PyTorch's fastest documented update on the CPU (one kernel for all
#: parameters, like our XLA-compiled step; ~10 % faster than the default loop at batch 32)
ADAM = {"eps": 1e-7, "fused": True}
LOG_2PI = math.log(2.0 * math.pi)
#: floor of a flow's |det| factors, against float32 round-off only (each factor is > 0 exactly)
DET_FLOOR = 1e-12


# --------------------------------------------------------------------------- scaler and networks

class Scaler(nn.Module):
    """x' = (f(x) − c) / s · m, f = log1p(max(x, 0)) on the log columns, identity elsewhere; c, s the
    training background's statistics (fixed buffers, per feature (F,) or per slot (S, F)); m the slot
    mask, so padded slots are 0. Shapes: x (batch, S, F), mask (batch, S) → (batch, S, F)."""

    def __init__(self, center, scale, log_columns=(0, 1)):
        super().__init__()
        self.register_buffer("center", torch.as_tensor(np.asarray(center, np.float32)))
        self.register_buffer("scale", torch.as_tensor(np.asarray(scale, np.float32)))
        columns = torch.zeros(self.center.shape[-1], dtype=torch.bool)
        columns[list(log_columns)] = True
        self.register_buffer("log_columns", columns)

    def forward(self, x, mask):
        x = torch.where(self.log_columns, torch.log1p(x.clamp_min(0.0)), x)
        return (x - self.center) / self.scale * mask[..., None]


def fit_scaler(x: np.ndarray, mask: np.ndarray, log_columns=(0, 1)) -> dict:
    """The standard scaler's statistics of the real slots of ``x`` (as ``get_scaler("standard",
    log_columns=[0, 1]).fit``): mean and standard deviation per feature after log1p of the log
    columns, in float64; a constant column gets scale 1."""
    rows = np.asarray(x, np.float64).reshape(-1, x.shape[-1])[np.asarray(mask, bool).reshape(-1)]
    rows[:, list(log_columns)] = np.log1p(np.maximum(rows[:, list(log_columns)], 0.0))
    scale = rows.std(axis=0)
    return {"center": rows.mean(axis=0), "scale": np.where(scale > 0, scale, 1.0), "log_columns": list(log_columns)}


def _feature_map() -> tuple[int, int]:
    """(height, width) of the encoder's last feature map: 'valid' convolutions shrink by kernel − 1."""
    height, width = SLOTS, FEATURES
    for _, (kh, kw) in CONV:
        height, width = height - kh + 1, width - kw + 1
    return height, width


def conv_encoder() -> nn.Sequential:
    """(batch, 32, 4) scaled → (batch, 20): the conv stack, flatten, Dense 20, ReLU."""
    layers, channels = [nn.Unflatten(1, (1, SLOTS))], 1
    for filters, kernel in CONV:
        layers += [nn.Conv2d(channels, filters, kernel), nn.BatchNorm2d(filters, **BATCH_NORM), nn.ReLU()]
        channels = filters
    height, width = _feature_map()
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(channels * height * width, HIDDEN), nn.ReLU())


def conv_decoder() -> nn.Sequential:
    """(batch, 15) → (batch, 32, 4): Dense 20, Dense onto the encoder's last map, the transposed
    convolutions in reverse order (BN and ReLU after all but the last, which has one channel)."""
    height, width = _feature_map()
    last = CONV[-1][0]
    layers = [nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, last * height * width), nn.ReLU(),
              nn.Unflatten(1, (last, height, width))]
    outs = [n for n, _ in CONV[:-1]][::-1] + [1]
    for k, ((channels, kernel), n) in enumerate(zip(CONV[::-1], outs)):
        layers.append(nn.ConvTranspose2d(channels, n, kernel))
        if k < len(CONV) - 1:
            layers += [nn.BatchNorm2d(n, **BATCH_NORM), nn.ReLU()]
    return nn.Sequential(*layers, nn.Flatten(1, 2))  # (batch, 1, 32, 4) → (batch, 32, 4)


def keras_initialised(module: nn.Module) -> nn.Module:
    """Keras' defaults on every convolution and dense layer of ``module``: Glorot-uniform kernels (fan
    in + fan out over the kernel's window, the same sum in both frameworks' layouts), zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
    return module


def _keras_dense(layer: nn.Linear, std: float | None = None) -> nn.Linear:
    """Keras' Dense initialisation: kernel Glorot-uniform (or N(0, std²)), bias 0."""
    if std is None:
        nn.init.xavier_uniform_(layer.weight)
    else:
        nn.init.normal_(layer.weight, std=std)
    nn.init.zeros_(layer.bias)
    return layer


# --------------------------------------------------------------------------- flows

class Planar(nn.Module):
    """Amortized planar step (Rezende & Mohamed 2015, arXiv:1505.05770, §4.1, appendix A.1).

    (u, w, b) = Dense(h) per event (2d + 1 outputs; kernel N(0, 0.01²) as ours). û = u + (m(wᵀu) − wᵀu)
    w/‖w‖², m(x) = −1 + softplus(x), so wᵀû > −1 and f is invertible;

        f(z) = z + û tanh(wᵀz + b),   log|det ∂f/∂z| = log|1 + ûᵀw (1 − tanh²(wᵀz + b))|.
    """

    def __init__(self, dim: int, context: int):
        super().__init__()
        self.dim = dim
        self.params = _keras_dense(nn.Linear(context, 2 * dim + 1), std=0.01)

    def parameters_for(self, h):
        u, w, b = torch.split(self.params(h), [self.dim, self.dim, 1], dim=-1)
        wu = (w * u).sum(-1, keepdim=True)
        w_sq = (w * w).sum(-1, keepdim=True).clamp_min(1e-12)  # avoids 0/0 when w = 0
        return u + (F.softplus(wu) - 1.0 - wu) * w / w_sq, w, b

    def forward(self, z, h):
        u_hat, w, b = self.parameters_for(h)
        t = torch.tanh((w * z).sum(-1, keepdim=True) + b)
        det = 1.0 + (1.0 - t * t)[:, 0] * (w * u_hat).sum(-1)
        # det > 0 exactly (wᵀû > −1); the floor only guards float32 round-off
        return z + u_hat * t, torch.log(det.abs().clamp_min(DET_FLOOR))


def upper_triangular(full, diagonal):
    """Strict upper part of ``full`` (batch, M, M) plus tanh(diagonal) on the diagonal, so |R_ii| < 1."""
    m = full.shape[-1]
    strict = torch.ones(m, m, dtype=full.dtype, device=full.device).triu(1)
    return full * strict + torch.diag_embed(torch.tanh(diagonal))


def householder_product(v):
    """Q = H_K ⋯ H_1, H_k = I − 2 v_k v_kᵀ/‖v_k‖², for v (batch, K, d): (batch, d, d), orthogonal
    (Tomczak & Welling 2016, arXiv:1611.09630)."""
    batch, k_max, d = v.shape
    q = torch.eye(d, dtype=v.dtype, device=v.device).expand(batch, d, d)
    for k in range(k_max):
        vk = v[:, k]
        v_sq = (vk * vk).sum(-1).clamp_min(1e-12)[:, None, None]  # v = 0 would be 0/0
        q = q - 2.0 * vk[:, :, None] * torch.einsum("bd,bdm->bm", vk, q)[:, None, :] / v_sq
    return q


class HouseholderSylvester(nn.Module):
    """Amortized Householder-Sylvester step (van den Berg, Hasenclever, Tomczak & Welling 2018,
    arXiv:1803.05649, §3).

    One Dense(h) gives, per event, R and R̃ (d × d, of which the strict upper triangles are used), their
    raw diagonals, b (d) and K Householder vectors (K × d), in that order (ours: the same outputs, so the
    same parameter count). R, R̃ upper triangular with tanh diagonals; Q = H_K ⋯ H_1 (d × d);

        f(z) = z + Q R tanh(R̃ Qᵀ z + b),
        log|det ∂f/∂z| = log|det(I + diag(tanh′(a)) R̃ R)| = Σ_i log|1 + tanh′(a_i) R̃_ii R_ii|,

    a = R̃ Qᵀ z + b, by Sylvester's identity det(I_d + A B) = det(I_M + B A) and R̃ R triangular.
    """

    def __init__(self, dim: int, context: int, num_householder: int = 8):
        super().__init__()
        self.dim, self.num_householder = dim, num_householder
        self.sizes = [dim * dim, dim * dim, dim, dim, dim, num_householder * dim]
        self.params = _keras_dense(nn.Linear(context, sum(self.sizes)), std=0.01)

    def parameters_for(self, h):
        """(Q, R, R̃, b): (batch, d, d) × 3 and (batch, d)."""
        d = self.dim
        r, r_tilde, r_diag, r_tilde_diag, b, v = torch.split(self.params(h), self.sizes, dim=-1)
        q = householder_product(v.reshape(-1, self.num_householder, d))
        return (q, upper_triangular(r.reshape(-1, d, d), r_diag),
                upper_triangular(r_tilde.reshape(-1, d, d), r_tilde_diag), b)

    def forward(self, z, h):
        q, r, r_tilde, b = self.parameters_for(h)
        qz = torch.einsum("bdm,bd->bm", q, z)
        t = torch.tanh(torch.einsum("bmn,bn->bm", r_tilde, qz) + b)
        y = z + torch.einsum("bdm,bm->bd", q, torch.einsum("bmn,bn->bm", r, t))
        diag = torch.diagonal(r, dim1=-2, dim2=-1) * torch.diagonal(r_tilde, dim1=-2, dim2=-1)
        # every factor is > 0 exactly (|R_ii R̃_ii| < 1, 0 < tanh′ ≤ 1); the floor guards float32 round-off
        return y, torch.log((1.0 + (1.0 - t * t) * diag).abs().clamp_min(DET_FLOOR)).sum(-1)


def made_masks(dim: int, hidden_units, params: int) -> list[np.ndarray]:
    """MADE's masks (Germain, Gregor, Murray & Larochelle 2015, arXiv:1502.03509), (in, out) each:
    input i has degree i + 1, hidden units cycle through degrees 1 … d − 1, a hidden unit sees inputs
    of lower or equal degree, and output (i, p) (column i·params + p) sees hidden units of degree ≤ i,
    so output i depends on z_<i only."""
    degrees = [np.arange(1, dim + 1)] + [np.arange(units) % max(dim - 1, 1) + 1 for units in hidden_units]
    masks = [(d_out[None, :] >= d_in[:, None]) for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append(np.repeat(np.arange(1, dim + 1), params)[None, :] > degrees[-1][:, None])
    return [m.astype(np.float32) for m in masks]


class MADE(nn.Module):
    """Masked MLP z (batch, d) [+ context h, unmasked into the first layer] → (batch, d, params), the
    output for dimension i a function of z_<i and h only. Glorot-uniform kernels, zero output layer (the
    flow starts as the identity), as ours."""

    def __init__(self, dim: int, context: int, hidden_units=(64, 64), params: int = 2):
        super().__init__()
        self.dim, self.params = dim, params
        sizes = [dim, *hidden_units, dim * params]
        self.layers = nn.ModuleList(_keras_dense(nn.Linear(a, b)) for a, b in zip(sizes[:-1], sizes[1:]))
        nn.init.zeros_(self.layers[-1].weight)
        for k, mask in enumerate(made_masks(dim, hidden_units, params)):
            self.register_buffer(f"mask_{k}", torch.as_tensor(mask.T.copy()))  # (out, in) as Linear.weight
        self.context = nn.Linear(context, hidden_units[0], bias=False)
        nn.init.xavier_uniform_(self.context.weight)

    def forward(self, z, h):
        out = F.linear(z, self.layers[0].weight * self.mask_0, self.layers[0].bias) + self.context(h)
        for k, layer in enumerate(self.layers[1:], 1):
            out = F.linear(torch.relu(out), layer.weight * getattr(self, f"mask_{k}"), layer.bias)
        return out.reshape(-1, self.dim, self.params)


class IAF(nn.Module):
    """Inverse autoregressive flow step (Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling 2016,
    arXiv:1606.04934), amortized through the context h of its MADE.

    (t_i, ŝ_i) = MADE(z_<i, h)_i, s_i = c tanh(ŝ_i / c) (c = 5, a soft clamp keeping exp(s) finite in
    float32, as ours);

        f(z)_i = (z_i − t_i) exp(−s_i),   log|det ∂f/∂z| = −Σ_i s_i   (the Jacobian is triangular).

    Inverse (d passes): z_i = y_i exp(s_i) + t_i, (t_i, s_i) from z_<i.
    """

    def __init__(self, dim: int, context: int, hidden_units=(64, 64), log_scale_clamp: float = 5.0):
        super().__init__()
        self.made = MADE(dim, context, hidden_units, params=2)
        self.clamp = log_scale_clamp

    def shift_log_scale(self, z, h):
        raw = self.made(z, h)
        return raw[..., 0], self.clamp * torch.tanh(raw[..., 1] / self.clamp)

    def forward(self, z, h):
        shift, log_scale = self.shift_log_scale(z, h)
        return (z - shift) * torch.exp(-log_scale), -log_scale.sum(-1)

    def inverse(self, y, h):
        """z = f⁻¹(y), by d passes: after pass k the first k dimensions are exact."""
        z = torch.zeros_like(y)
        for _ in range(y.shape[-1]):
            shift, log_scale = self.shift_log_scale(z, h)
            z = y * torch.exp(log_scale) + shift
        return z


class Reverse(nn.Module):
    """y_i = z_{d−1−i} between autoregressive steps; log|det| = 0, no parameters."""

    def __init__(self, dim: int, context: int):
        super().__init__()

    def forward(self, z, h):
        return z.flip(-1), torch.zeros_like(z[:, 0])

    def inverse(self, y, h):
        return y.flip(-1)


# --------------------------------------------------------------------------- reconstruction losses

def _slot_mean(per_slot, mask):
    # over the real slots; the floor at 1 gives 0 (not 0/0) for an event without any
    return (per_slot * mask).sum(-1) / mask.sum(-1).clamp_min(1.0)


class MaskedMSE(nn.Module):
    """DarkFlow's reconstruction loss per event: Σ_s m_s (1/F) Σ_f (x_sf − x̂_sf)² / max(1, Σ_s m_s)."""

    def forward(self, x, out, mask):
        return _slot_mean(((x - out) ** 2).mean(-1), mask)


class GaussianLikelihood(nn.Module):
    """−log N(x; x̂, σ_f²) summed over the real slots' features, σ_f a learned weight per feature
    (log σ clamped to :data:`LOG_SCALE_RANGE`): our VAE's default reconstruction, for the latency
    benchmark's models."""

    def __init__(self):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(FEATURES))

    def forward(self, x, out, mask):
        log_sigma = self.log_scale.clamp(*LOG_SCALE_RANGE)
        nll = 0.5 * ((x - out) * torch.exp(-log_sigma)) ** 2 + log_sigma + 0.5 * LOG_2PI
        return (nll.sum(-1) * mask).sum(-1)


#: reconstruction name (as ``model.reconstruction``) → loss module
RECONSTRUCTIONS = {"mse": MaskedMSE, "gaussian": GaussianLikelihood}


# --------------------------------------------------------------------------- the model

def diagonal_gaussian_log_prob(z, mu, log_var):
    """log N(z; μ, diag exp(log σ²)), summed over the last axis."""
    return -0.5 * (LOG_2PI + log_var + (z - mu) ** 2 * torch.exp(-log_var)).sum(-1)


def standard_log_prob(z):
    """log N(z; 0, I), summed over the last axis."""
    return -0.5 * (LOG_2PI + z * z).sum(-1)


def chamfer_distance(a, b):
    """mean_i min_j ‖a_i − b_j‖² + mean_j min_i ‖a_i − b_j‖² per event, rows as points."""
    d = ((a[:, :, None, :] - b[:, None, :, :]) ** 2).sum(-1)
    return d.min(dim=2).values.mean(1) + d.min(dim=1).values.mean(1)


class ConvVAE(nn.Module):
    """The DarkFlow ConvVAE with an optional chain of amortized flow steps (module docstring).

    Args:
        scaler: ``{"center", "scale", "log_columns"}``, the fitted standard scaler (our scaler's
            ``get_config()`` works as it is).
        steps: factories ``step(dim, context)`` of the flow steps, in order (empty: Gaussian posterior).
        reconstruction: a name of :data:`RECONSTRUCTIONS`.
        iwae_samples: K of the importance-weighted score terms (:meth:`score_terms`).
    """

    def __init__(self, scaler: dict, steps=(), reconstruction="mse", iwae_samples=16):
        super().__init__()
        self.scaler = Scaler(scaler["center"], scaler["scale"], scaler.get("log_columns", ()))
        self.encoder, self.decoder = keras_initialised(conv_encoder()), keras_initialised(conv_decoder())
        self.mu, self.log_var = (keras_initialised(nn.Linear(HIDDEN, LATENT)) for _ in range(2))
        self.flow = nn.ModuleList(step(LATENT, HIDDEN) for step in steps)
        self.reconstruction = RECONSTRUCTIONS[reconstruction]()
        self.iwae_samples = int(iwae_samples)

    def encode(self, x, mask):
        """(x', h, μ, log σ²) of a raw batch."""
        scaled = self.scaler(x, mask)
        h = self.encoder(scaled)
        return scaled, h, self.mu(h), self.log_var(h).clamp(*LOG_VAR_RANGE)

    def push(self, z, h):
        """(z_K, Σ_k log|det ∂f_k/∂z_{k−1}|) through the flow steps."""
        total = torch.zeros_like(z[:, 0])
        for step in self.flow:
            z, log_det = step(z, h)
            total = total + log_det
        return z, total

    def posterior_sample(self, h, mu, log_var):
        z0 = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
        z, log_det = self.push(z0, h)
        return z0, z, log_det

    def kl(self, mu, log_var, z0, z, log_det):
        """Closed form without a flow; the single-sample flow estimate with one."""
        if len(self.flow) == 0:
            return 0.5 * (mu * mu + torch.exp(log_var) - 1.0 - log_var).sum(-1)
        return diagonal_gaussian_log_prob(z0, mu, log_var) - log_det - standard_log_prob(z)

    def loss(self, x, mask):
        """The batch's loss: mean reconstruction + mean KL (β = 1, no free bits)."""
        scaled, h, mu, log_var = self.encode(x, mask)
        z0, z, log_det = self.posterior_sample(h, mu, log_var)
        out = self.decoder(z)
        return self.reconstruction(scaled, out, mask).mean() + self.kl(mu, log_var, z0, z, log_det).mean()

    def encoder_score(self, x, mask):
        """The trigger path's ``rz`` = Σ μ²/σ² (scaler, encoder, heads; no decoder, no flow)."""
        _, _, mu, log_var = self.encode(x, mask)
        return (mu * mu * torch.exp(-log_var)).sum(-1)

    def score_terms(self, x, mask) -> dict:
        """Every per-event term our ``VAE.score_terms`` gives, computed alike: the reconstruction of
        f(μ), its MSE, the input norm, the Chamfer distance, the sampled KL, total loss, rz, μ, f(μ),
        log N(f(μ); 0, I), the KL per dimension and, with K = ``iwae_samples`` posterior draws decoded
        one sample at a time, the IWAE and ELBO scores."""
        scaled, h, mu, log_var = self.encode(x, mask)
        latent, _ = self.push(mu, h)
        out = self.decoder(latent)
        kl = self.kl(mu, log_var, *self.posterior_sample(h, mu, log_var))
        reconstruction = self.reconstruction(scaled, out, mask)
        terms = {"reconstruction": reconstruction, "mse": MaskedMSE()(scaled, out, mask),
                 "input_norm": MaskedMSE()(scaled, torch.zeros_like(scaled), mask),
                 "chamfer": chamfer_distance(scaled, out), "kl": kl, "total_loss": reconstruction + kl,
                 "rz": (mu * mu * torch.exp(-log_var)).sum(-1), "encoding": mu, "latent": latent,
                 "log_prior": standard_log_prob(latent),
                 "kl_per_dim": 0.5 * (mu * mu + torch.exp(log_var) - 1.0 - log_var)}
        if self.iwae_samples > 0:
            log_w = self.log_importance_weights(scaled, mask, h, mu, log_var)
            terms.update(iwae=-(torch.logsumexp(log_w, -1) - math.log(self.iwae_samples)), elbo=-log_w.mean(-1))
        return terms

    def log_importance_weights(self, scaled, mask, h, mu, log_var):
        """(N, K) log w_k = −ℓ(x, x̂(z_k)) + log p(z_k) − log q(z_k|x), z_k ~ q(z|x), one decoder pass per k."""
        k, n = self.iwae_samples, mu.shape[0]
        z0, z, log_det = self.posterior_sample(*(t.repeat(k, 1) for t in (h, mu, log_var)))
        mu_k, log_var_k = mu.repeat(k, 1), log_var.repeat(k, 1)
        log_px = torch.cat([-self.reconstruction(scaled, self.decoder(zk), mask) for zk in z.reshape(k, n, -1)])
        log_q = diagonal_gaussian_log_prob(z0, mu_k, log_var_k) - log_det
        return (log_px + standard_log_prob(z) - log_q).reshape(k, n).T


# --------------------------------------------------------------------------- registry and timing

@dataclasses.dataclass(frozen=True)
class Peer:
    """A peer model: its label in the benchmark tables and its flow steps (factories ``(dim, context)``)."""

    label: str
    steps: tuple[Callable, ...] = ()


_IAF = functools.partial(IAF, hidden_units=(64, 64))

#: key → the peer of the model of ``benchmarks/train_speed.py`` with that key
PEERS = {
    "convvae": Peer("ConvVAE"),
    "planar": Peer("ConvVAE + Planar×6", (Planar,) * 6),
    "sylvester": Peer("ConvVAE + Householder-Sylvester×4",
                      (functools.partial(HouseholderSylvester, num_householder=8),) * 4),
    "iaf": Peer("ConvVAE + IAF×4", (_IAF, Reverse, _IAF, Reverse, _IAF, Reverse, _IAF)),
}


def build(name: str, scaler: dict, reconstruction: str = "mse", iwae_samples: int = 16, seed: int = 0) -> ConvVAE:
    """The peer ``name`` (a key of :data:`PEERS`), its weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return ConvVAE(scaler, PEERS[name].steps, reconstruction, iwae_samples)


def trainable_parameters(module: nn.Module) -> int:
    """The number of trainable parameters (batch-norm moving statistics and masks are buffers)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def _tensors(x, mask):
    """float32 tensors of x and of its slot mask (rows not all zero where none is given, as our model)."""
    x = np.ascontiguousarray(x, np.float32)
    mask = np.any(x != 0.0, axis=-1) if mask is None else np.asarray(mask, bool)
    return torch.from_numpy(x), torch.from_numpy(mask.astype(np.float32))


def train_epoch(model, optimizer, x, mask, batch: int, generator) -> float:
    """One epoch over a fresh random order of the events; the seconds it took."""
    start = time.perf_counter()
    order = torch.randperm(len(x), generator=generator)
    for begin in range(0, len(x), batch):
        rows = order[begin:begin + batch]
        loss = model.loss(x[rows], mask[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not math.isfinite(loss.item()):  # our training stops on a non-finite loss (its NaN guard)
            raise FloatingPointError(f"non-finite loss {loss.item()}")
    return time.perf_counter() - start


def train_events_per_second(name: str, x: np.ndarray, batch: int, epochs: int, threads: int, mask=None,
                            scaler: dict | None = None, learning_rate: float = 1e-3, seed: int = 0) -> float:
    """Events per second of the fastest of ``epochs`` training epochs after the first (≥ 2 epochs).

    x: (N, 32, 4) raw object matrices; mask: (N, 32) real slots (default: rows not all zero);
    scaler: the fitted scaler's config (default: :func:`fit_scaler` of x); ``threads``: PyTorch's
    intra-op threads (``torch.set_num_threads``)."""
    if epochs < 2:
        raise ValueError("the first epoch is not timed: give at least 2 epochs")
    torch.set_num_threads(threads)
    x_t, mask_t = _tensors(x, mask)
    model = build(name, scaler or fit_scaler(x, mask_t.numpy().astype(bool)), "mse", seed=seed).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, **ADAM)
    generator = torch.Generator().manual_seed(seed)
    times = [train_epoch(model, optimizer, x_t, mask_t, batch, generator) for _ in range(epochs)]
    return len(x) / min(times[1:])


def score_events_per_second(name: str, x: np.ndarray, batch: int, encoder_only: bool, seconds: float, mask=None,
                            scaler: dict | None = None, threads: int | None = None, reconstruction: str = "mse",
                            iwae_samples: int = 16, seed: int = 0) -> float:
    """Events per second of scoring one fixed batch (the first ``batch`` events) for ``seconds`` after a
    warm-up call, results copied to numpy, under ``torch.inference_mode`` in eval mode: the trigger
    path's ``rz`` (``encoder_only``) or every score term (:meth:`ConvVAE.score_terms`)."""
    if threads is not None:
        torch.set_num_threads(threads)
    x_t, mask_t = _tensors(x[:batch], None if mask is None else mask[:batch])
    model = build(name, scaler or fit_scaler(x, np.any(x != 0, axis=-1) if mask is None else mask),
                  reconstruction, iwae_samples, seed).eval()
    fn = model.encoder_score if encoder_only else model.score_terms

    def call():
        out = fn(x_t, mask_t)
        return {k: v.numpy() for k, v in out.items()} if isinstance(out, dict) else out.numpy()

    with torch.inference_mode():
        call()
        calls, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            call()
            calls += 1
        return len(x_t) * calls / (time.perf_counter() - start)


def weights_used(name: str, encoder_only: bool, reconstruction: str = "mse") -> int:
    """The weights a scoring path uses, counted as Keras' ``count_params`` counts them (trainable
    parameters and batch-norm moving statistics): encoder and latent heads (``encoder_only``), else all."""
    model = build(name, fit_scaler(np.ones((1, SLOTS, FEATURES)), np.ones((1, SLOTS))), reconstruction)
    parts = (model.encoder, model.mu, model.log_var) if encoder_only else (model,)
    moving = ("running_mean", "running_var")
    return sum(trainable_parameters(part) + sum(b.numel() for n, b in part.named_buffers() if n.endswith(moving))
               for part in parts)
