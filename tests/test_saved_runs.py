"""Run directories written by an earlier version (tests/data/run_v0_*: layout and .keras files of
release 0, before the code-structure change) still load and score to the scores that version gave.

``run_v0_vae``: a VAE whose posterior chains the five amortized flows (planar, radial, householder,
Householder- and orthogonal Sylvester, ConvFlow) behind a dense network with seeded dropout;
``run_v0_swae``: a two-member SWAE ensemble with a uniform prior. Both on 600 events of the embedded
sample; ``reference_scores.npz`` holds what ``score_run`` gave then (200 events per signal).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
METHODS = {"vae": ["mse", "mahalanobis", "kl"], "swae": ["mse", "mahalanobis", "rank:mse+mahalanobis"]}


@pytest.mark.parametrize("kind", sorted(METHODS))
def test_a_run_of_the_previous_layout_loads_and_scores_as_it_did(tmp_path, kind):
    from tfp_anomaly.evaluate import score_run

    run = tmp_path / kind
    shutil.copytree(DATA / f"run_v0_{kind}", run)
    result = score_run(run, methods=METHODS[kind], max_signal_events=200)
    reference = np.load(run / "reference_scores.npz")
    got = {"background": result.background, **result.signals}
    assert sorted(reference.files) == sorted(f"{sample}/{m}" for sample, frame in got.items() for m in frame)
    for key in reference.files:
        sample, method = key.split("/", 1)
        np.testing.assert_allclose(np.asarray(got[sample][method]), reference[key], rtol=2e-5, atol=2e-6,
                                   err_msg=key)
