"""Score a trained run directory (``tfp-anomaly score``): every applicable scoring method, fitted on the
run's training background, applied to its held-out test background and to each signal.

The background is read again from the run's configuration and split with its seed; the split is
checked against the run's ``split.npz``, so scores are never computed on events the model trained on
when the input files changed. Writes ``scores.h5`` (:class:`tfp_anomaly.report.ScoredRun`) and
``scorer.json`` (the fitted scoring statistics) into the run directory.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from ._atomic import atomic_path
from .experiment import RUN_CONFIG, load_signals, model_input, prepare_data
from .report.results import LATENT_ROWS, SCORES_FILE, ScoredRun
from .scoring import Scorer


def load_run_model(run_dir: Path):
    """The run's final ``model.keras`` (its scaler inside)."""
    import keras

    from . import models  # noqa: F401 (registers the model classes with Keras before loading)

    path = run_dir / "model.keras"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: no model.keras (train the run to the end first: tfp-anomaly train)")
    return keras.models.load_model(path)


def run_config(run_dir: Path) -> dict:
    """The resolved configuration a run was trained with (its ``config.yaml``)."""
    path = Path(run_dir) / RUN_CONFIG
    if not path.exists():
        raise FileNotFoundError(f"{run_dir}: not a run directory (no {RUN_CONFIG})")
    return yaml.safe_load(path.read_text())


def check_split(run_dir: Path, split: dict) -> None:
    """Raise when the split made now differs from the run's ``split.npz`` (the input files changed)."""
    saved = np.load(run_dir / "split.npz")
    for part, index in split.items():
        if part in saved and not np.array_equal(saved[part], index):
            raise ValueError(f"{run_dir}: the background read now does not split as when the model was trained "
                             f"(part {part!r} differs from split.npz): the input files changed")


def describe(model, config: dict, summary: dict) -> dict:
    """The model's metadata shown in the report."""
    return {"type": config["model"]["type"], "prior": str(getattr(model, "prior_name", "") or ""),
            "flow": str(getattr(model, "flow_spec", "") or ""), "latent_dim": int(model.latent_dim),
            "parameters": int(model.count_params()), "epochs": summary.get("epochs_done"),
            "train_events": (summary.get("events") or {}).get("train")}


def read_history(run_dir: Path) -> dict | None:
    """The run's ``history.csv`` as ``{metric: [per epoch]}``, or None."""
    import pandas as pd

    path = run_dir / "history.csv"
    if not path.exists():
        return None
    frame = pd.read_csv(path)
    return {c: frame[c].astype(float).tolist() for c in frame.columns if c != "epoch"}


def score_run(run_dir, methods="all", signals: dict | None = None, name: str | None = None,
              batch_size: int = 4096, seed: int = 0, max_signal_events: int | None = None,
              progress: bool = False) -> ScoredRun:
    """Score the run in ``run_dir``; ``signals`` ({name: Events/FeatureTable/array}) default to the
    configuration's ``data.signals``. Returns the :class:`ScoredRun` (also saved as ``scores.h5``)."""
    run_dir = Path(run_dir)
    config = run_config(run_dir)
    model = load_run_model(run_dir)
    prepared = prepare_data(config)
    check_split(run_dir, prepared.split)
    scorer = Scorer(methods, batch_size=batch_size, seed=seed).fit(model, prepared.parts["train"], progress=progress)
    signals = load_signals(config, max_signal_events) if signals is None else signals
    if not signals:
        raise ValueError(f"{run_dir}: no signal to score: set data.signals in the configuration or pass --signal")
    samples = {"background": prepared.parts["test"],
               **{n: (s if isinstance(s, (dict, np.ndarray)) else model_input(config, s)) for n, s in signals.items()}}
    scores, latent = {}, {}
    for sample, x in samples.items():
        terms = scorer.terms(model, x, progress=progress)
        scores[sample] = scorer.score(model, x, terms=terms)
        latent[sample] = terms["latent"][:LATENT_ROWS]
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    meta = {**describe(model, config, summary), "run_dir": str(run_dir),
            "encoder_only": sorted(n for n, m in scorer.methods.items() if m.encoder_only)}
    background = scores.pop("background")
    result = ScoredRun(name or run_dir.name, meta, background, scores, latent, read_history(run_dir))
    result.save(run_dir / SCORES_FILE)
    with atomic_path(run_dir / "scorer.json") as tmp:
        tmp.write_text(json.dumps(scorer.get_config()))
    return result
