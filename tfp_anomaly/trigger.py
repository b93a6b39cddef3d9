"""Trigger-ready export: the encoder and an encoder-only score as one plain Keras model, converted to an
HLS project with hls4ml (optional extra ``fpga``) and checked against Keras in its bit-accurate C
simulation (``tfp-anomaly export-hls``).

The Level-1 trigger sees the *scaled* object matrix (the fitted scaler, log1p and an affine map or
the Gauss-rank map, runs upstream, e.g. as a look-up table), so the exported model starts after the
scaler: the encoder's own layers (inference-time dropout removed), the latent head (μ of a VAE, z of a
SWAE) and the score, written with layers hls4ml converts:

* ``mahalanobis``: d² = (e − m)ᵀ P (e − m) with P = L Lᵀ (Cholesky) becomes a Dense layer
  y = eᵀL − mᵀL (kernel L, bias −mᵀL) followed by y ⊙ y and a Dense of ones: d² = Σ_i y_i². m and P
  are the score's Ledoit-Wolf fit on the training background encodings; d² ranks events as the
  toolkit's ``mahalanobis`` score d does.
* ``kl``, ``rz`` (VAEs): they need exp(± log σ²), and hls4ml 1.3 converts no exponential activation
  (its Vitis templates have none). Its ELU is a look-up table of e^x − 1 on [−8, 0], so
  e^y = e^c (elu(y − c) + 1) with c the largest y of the training background plus a headroom (see
  :class:`_GaussianPosteriorTrigger`); the rest is products and one Dense layer.

Figures (:func:`agreement`): AUC and ε_S at ε_B = 1e-3 of the Keras model and of the C simulation on
the same events, score deviations and the fraction of trigger decisions that differ, for each
fixed-point precision of a scan; :func:`operations` counts parameters and multiplications per event.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .data import arrays as model_input
from .registry import Registry
#: the precision scan's default: total and integer bits, rounding to nearest, saturating on overflow
SCAN = ("ap_fixed<12,6,AP_RND,AP_SAT>", "ap_fixed<16,6,AP_RND,AP_SAT>", "ap_fixed<18,8,AP_RND,AP_SAT>",
        "ap_fixed<24,10,AP_RND,AP_SAT>", "ap_fixed<32,12,AP_RND,AP_SAT>")


#: score name → :class:`TriggerScore` class (the encoder-only scores ``export-hls`` can write)
TRIGGER_SCORES = Registry("trigger score", listing="exportable", name_attribute="name")


def get_trigger_score(score: str, model):
    """The registered :class:`TriggerScore` ``score``, checked to apply to ``model``."""
    method = TRIGGER_SCORES.lookup(score)()
    method.check(model)
    return method


class TriggerScore:
    """An encoder-only score written with layers hls4ml converts. ``fit(model, x_background)`` → the
    statistics it needs (JSON-able); ``tail(model, h, fitted)`` → the score from the encoder's hidden
    vector h (a Keras tensor)."""

    name = ""

    def check(self, model) -> None:
        pass

    def fit(self, model, x_background) -> dict:
        return {}

    def tail(self, model, h, fitted):
        raise NotImplementedError


def _dense(x, kernel, bias, name):
    import keras

    layer = keras.layers.Dense(np.shape(kernel)[1], use_bias=bias is not None, name=name)
    out = layer(x)
    layer.set_weights([np.asarray(kernel, "float32")] + ([] if bias is None else [np.asarray(bias, "float32")]))
    return out


@TRIGGER_SCORES.register("mahalanobis")
class MahalanobisTrigger(TriggerScore):
    """d² = (e − m)ᵀ P (e − m) as Dense(L, −mᵀL) → y ⊙ y → Dense(ones), P = L Lᵀ; m, P the toolkit's
    ``mahalanobis`` fit (Ledoit-Wolf on the training background encodings)."""

    def fit(self, model, x_background):
        from .scoring import Scorer

        return Scorer(["mahalanobis"]).fit(model, x_background).methods["mahalanobis"].get_config()

    def tail(self, model, h, fitted):
        import keras

        location = np.asarray(fitted["location"], np.float64)
        precision = np.asarray(fitted["precision"], np.float64)
        factor = np.linalg.cholesky(0.5 * (precision + precision.T))  # P = L Lᵀ (symmetrised against round-off)
        y = _dense(model.encoding_head(h), factor, -location @ factor, "mahalanobis_fold")
        square = keras.layers.Multiply(name="square")([y, y])
        return _dense(square, np.ones((len(location), 1)), None, "score")


class _GaussianPosteriorTrigger(TriggerScore):
    """Scores of q(z₀|x) = N(μ, σ²) that need exp(± log σ²). hls4ml 1.3 converts no exponential, but its
    ELU is a look-up table of e^x − 1 on [−8, 0]: with a shift c (the largest ± log σ² of the training
    background), e^{±log σ²} = e^c (elu(±log σ² − c) + 1), exact in form where ±log σ² ∈ [c − 8, c] (the
    table's resolution remains) and linear above c. The model's clamp of log σ² to ±12 is left out."""

    sign = 1.0
    #: the ELU table: 8192 entries (a step of 1e-3 in y) of e^x − 1 ∈ (−1, 0] held with 23 fractional
    #: bits; hls4ml's default (1024 entries, the model's precision) loses the KL's σ² − log σ² − 1, a
    #: small difference of O(1) terms, when σ ≈ 1 (measured: AUC off by 0.02 against 0.001)
    TABLE = {"TableSize": 8192, "Precision": {"table": "ap_fixed<24,1,AP_RND,AP_SAT>"}}
    #: units of y above the background's largest kept exact (c = ceil(max) + HEADROOM): signal events
    #: reach beyond the background's range, where the linear branch would flatten them
    HEADROOM = 0.0

    def check(self, model):
        if not hasattr(model, "log_var_head"):
            raise ValueError(f"score {self.name!r} needs a VAE (a Gaussian posterior); {type(model).__name__} has none")

    def fit(self, model, x_background, batch_size=4096):
        n = model_input.n_events(x_background)
        log_var = np.concatenate([model.encode(model_input.take(x_background, slice(start, start + batch_size)),
                                               training=False).log_var for start in range(0, n, batch_size)])
        return {"shift": float(np.ceil(np.max(self.sign * log_var)) + self.HEADROOM)}

    def exponential(self, model, h, shift):
        """(e^{±log σ² − c} − 1, ±log σ²): the ELU of the shifted head and the head itself."""
        import keras

        kernel, bias = model.log_var_head.get_weights()
        shifted = _dense(h, self.sign * kernel, self.sign * bias - shift, f"{self.name}_shifted_log_var")
        return keras.layers.Activation("elu", name=f"{self.name}_exp")(shifted)


@TRIGGER_SCORES.register("kl")
class KLTrigger(_GaussianPosteriorTrigger):
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − log σ² − 1): one Dense over [μ², elu, log σ²].

    Headroom 2: on a dense VAE (latent 8) the C simulation's AUC moved by 0.023 with none (signal σ²
    beyond the background's, flattened), by 0.0001 with 2, by 0.025 with 4 (small σ² then floored),
    at ap_fixed<24,10>. rz keeps none (0.0105 there; 0.035 with 2)."""

    HEADROOM = 2.0

    def check(self, model):
        super().check(model)
        if getattr(model, "flow", None) is not None:
            raise ValueError("score 'kl' of a flow posterior is a sampled estimate, not encoder-only: export rz or "
                             "mahalanobis")

    def tail(self, model, h, fitted):
        import keras

        c, dim = fitted["shift"], model.latent_dim
        mu = model.encoding_head(h)
        log_var = model.log_var_head(h)
        elu = self.exponential(model, h, c)
        parts = keras.layers.Concatenate(name="kl_terms")(
            [keras.layers.Concatenate(name="kl_mu_sigma")([keras.layers.Multiply(name="mu_square")([mu, mu]), elu]),
             log_var])
        weights = np.concatenate([np.full(dim, 0.5), np.full(dim, 0.5 * np.exp(c)), np.full(dim, -0.5)])[:, None]
        return _dense(parts, weights, [0.5 * dim * (np.exp(c) - 1.0)], "score")


@TRIGGER_SCORES.register("rz")
class RZTrigger(_GaussianPosteriorTrigger):
    """rz = Σ μ² / σ² = e^c Σ μ² (elu(−log σ² − c) + 1): μ² ⊙ elu and μ², then one Dense."""

    sign = -1.0

    def tail(self, model, h, fitted):
        import keras

        c = fitted["shift"]
        mu = model.encoding_head(h)
        square = keras.layers.Multiply(name="mu_square")([mu, mu])
        scaled = keras.layers.Multiply(name="mu_square_exp")([square, self.exponential(model, h, c)])
        parts = keras.layers.Concatenate(name="rz_terms")([scaled, square])
        return _dense(parts, np.full((2 * model.latent_dim, 1), np.exp(c)), None, "score")


def _encoder_layers(model):
    import keras

    from .models.networks import SeededDropout

    if not isinstance(model.encoder, keras.Sequential):
        raise ValueError(f"export-hls converts the dense and conv networks; the {model.network.get('type')!r} "
                         "encoder uses custom layers hls4ml cannot convert")
    return [layer for layer in model.encoder.layers if not isinstance(layer, SeededDropout)]  # identity at inference


def _check_single(model) -> None:
    if getattr(model, "ensemble_size", 1) > 1:
        raise ValueError(f"export-hls converts one model; this run is an ensemble of {model.ensemble_size} members "
                         "(a trigger would need each member's encoder and their ranks): train it with model.ensemble: 1")


def trigger_model(model, score: str, fitted: dict):
    """The Keras model scaled x → score of ``model`` (a VAE or SWAE) for an exportable ``score``."""
    import keras

    _check_single(model)

    method = get_trigger_score(score, model)
    x = keras.Input(model.event_shape, name="scaled_objects")
    h = x
    for layer in _encoder_layers(model):
        h = layer(h)
    return keras.Model(x, method.tail(model, h, fitted), name=f"trigger_{score}")


def operations(keras_model) -> dict:
    """Parameters and multiplications per event of a trigger model (Dense: in × out; Conv2D: per
    output position kh·kw·c_in·c_out; Multiply: one per element; batch norm: one per feature, before
    hls4ml folds it into the preceding layer)."""
    import keras

    mults = 0
    for layer in keras_model.layers:
        if isinstance(layer, keras.layers.Dense):
            mults += int(np.prod(layer.kernel.shape))
        elif isinstance(layer, keras.layers.Conv2D):
            out = layer.output.shape
            mults += int(np.prod(layer.kernel.shape)) * int(out[1]) * int(out[2])
        elif isinstance(layer, (keras.layers.Multiply, keras.layers.BatchNormalization)):
            mults += int(np.prod(layer.output.shape[1:]))
    return {"parameters": int(keras_model.count_params()), "multiplications": mults}


def _hls4ml():
    try:
        import hls4ml
    except ImportError:
        raise ImportError("export-hls needs hls4ml: pip install 'tfp-anomaly[fpga]'") from None
    return hls4ml


def to_hls(keras_model, precision: str, out_dir, reuse_factor: int = 1):
    """Convert with hls4ml (Vitis backend, io_parallel, latency strategy, one ``precision`` for every
    weight, accumulator and result; the exponential's look-up table as :attr:`_GaussianPosteriorTrigger.TABLE`)
    into ``out_dir`` and compile the C simulation."""
    import keras

    hls4ml = _hls4ml()
    config = hls4ml.utils.config_from_keras_model(keras_model, granularity="model", default_precision=precision,
                                                  default_reuse_factor=reuse_factor)
    config["LayerName"] = {layer.name: dict(_GaussianPosteriorTrigger.TABLE) for layer in keras_model.layers
                           if isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.elu}
    hls_model = hls4ml.converters.convert_from_keras_model(keras_model, hls_config=config, output_dir=str(out_dir),
                                                           backend="Vitis", io_type="io_parallel")
    hls_model.compile()
    return hls_model


def csim_scores(hls_model, x) -> np.ndarray:
    """Scores of the compiled hls4ml model (bit-accurate C simulation) on ``x``."""
    flat = np.ascontiguousarray(np.asarray(x, np.float64).reshape(len(x), -1))
    return np.asarray(hls_model.predict(flat), np.float64).reshape(len(x))


def agreement(keras_scores: dict, csim: dict, background_efficiency: float = 1e-3) -> dict:
    """Keras vs C simulation on the same events: ``{sample: scores}`` each with a ``background``.
    AUC and ε_S at ``background_efficiency`` per signal (mean over signals too), the median relative
    and the largest absolute score deviation (saturation of a narrow type shows in the latter), and the
    fraction of events whose trigger decision differs, each side cut at its own background threshold."""
    from .report.metrics import auc, efficiency_at, roc, threshold_at

    keras_all, csim_all = (np.concatenate([d[k] for k in keras_scores]) for d in (keras_scores, csim))
    passed = [all_ > threshold_at(d["background"], background_efficiency)
              for all_, d in ((keras_all, keras_scores), (csim_all, csim))]
    deviation = np.abs(csim_all - keras_all)
    row = {"median_relative_deviation": float(np.median(deviation / np.maximum(np.abs(keras_all), 1e-12))),
           "max_abs_deviation": float(deviation.max()),
           # each at its own threshold (a firmware threshold is set on the firmware's background rate)
           "decisions_differing": float(np.mean(passed[0] != passed[1]))}
    signals = [k for k in keras_scores if k != "background"]
    for name, scores in (("keras", keras_scores), ("csim", csim)):
        aucs = [auc(scores["background"], scores[s]) for s in signals]
        effs = [float(efficiency_at(*roc(scores["background"], scores[s]), background_efficiency)) for s in signals]
        row.update({f"auc_{name}": float(np.mean(aucs)), f"eff_{name}": float(np.mean(effs))})
        row.update({f"auc_{name}_{s}": a for s, a in zip(signals, aucs)})
    row["auc_difference"] = abs(row["auc_keras"] - row["auc_csim"])
    row["eff_difference"] = abs(row["eff_keras"] - row["eff_csim"])
    return row


def run_inputs(run_dir, score: str, max_events: int | None = None) -> tuple:
    """(model, fitted score statistics, {sample: model input}) of a run: the score fitted on the run's
    training background, the samples (at most ``max_events`` each) its test background and configured
    signals."""
    from .inputs import load_signals, model_input as configured_input, prepare_data
    from .rundir import RunDirectory

    run = RunDirectory(run_dir)
    config, model = run.read_config(), run.load_model()
    _check_single(model)
    method = get_trigger_score(score, model)
    prepared = prepare_data(config)
    run.check_split(prepared.split)
    fitted = method.fit(model, prepared.fit)
    samples = {"background": prepared.sample("test", max_events or 1 << 62),
               **{n: configured_input(config, t) for n, t in load_signals(config, max_events).items()}}
    if len(samples) == 1:
        raise ValueError(f"{run}: no signal to compare on: set data.signals in the run's configuration")
    if max_events:
        samples = {n: model_input.head(s, max_events) for n, s in samples.items()}
    return model, fitted, samples


def scaled_inputs(model, samples: dict) -> dict:
    """What the trigger model reads: each sample through the model's fitted scaler."""
    return {n: model.scaled(x)[0].numpy() for n, x in samples.items()}


def export_run(run_dir, score: str = "mahalanobis", precision: str = SCAN[2], scan=SCAN, out=None,
               max_events: int | None = None, reuse_factor: int = 1) -> dict:
    """``tfp-anomaly export-hls``: the HLS project at ``precision`` in ``OUT/hls`` and, for every
    precision of ``precision`` + ``scan``, the agreement with Keras (``OUT/agreement.csv``) and
    ``OUT/export.json`` (operations, fitted statistics, rows). ``OUT`` defaults to ``RUN/hls_<score>``."""
    import pandas as pd

    _hls4ml()
    model, fitted, samples = run_inputs(run_dir, score, max_events)
    scaled = scaled_inputs(model, samples)
    keras_model = trigger_model(model, score, fitted)
    keras_scores = {n: keras_model.predict(x, batch_size=4096, verbose=0).reshape(-1).astype(np.float64)
                    for n, x in scaled.items()}
    out = Path(out) if out else Path(run_dir) / f"hls_{score}"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for p in dict.fromkeys([precision, *scan]):  # the chosen one first, no repeats
        work = Path(tempfile.mkdtemp(prefix=".hls_", dir=out))
        try:
            hls_model = to_hls(keras_model, p, work / "project", reuse_factor)
            rows.append({"precision": p, **agreement(keras_scores, {n: csim_scores(hls_model, x)
                                                                    for n, x in scaled.items()})})
            if p == precision:  # keep this project: replace the previous one only once the new one compiled
                shutil.rmtree(out / "hls", ignore_errors=True)
                (work / "project").rename(out / "hls")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    table = pd.DataFrame(rows)
    with atomic_path(out / "agreement.csv") as tmp:
        table.to_csv(tmp, index=False)
    result = {"score": score, "precision": precision, "events": {n: len(x) for n, x in scaled.items()},
              **operations(keras_model), "fitted": fitted, "rows": rows}
    with atomic_path(out / "export.json") as tmp:
        tmp.write_text(json.dumps(result, indent=2))
    return result
