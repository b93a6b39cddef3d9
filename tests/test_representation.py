"""The ordered object grid against a per-event construction written the obvious way."""
import numpy as np
import pytest
import yaml

from tfp_anomaly.data import ObjectGrid, objects


def reference_grid(events, grid, i):
    """Build event i's matrix with Python loops (independent of the vectorised code)."""
    ev = events.event(i)
    rows = []
    for codes, cap in grid.blocks:
        objs = sorted([o for o in ev["objects"] if o[0] in codes], key=lambda o: -o[2])[:cap]
        rows += [list(o[1:]) for o in objs] + [[0.0] * 4] * (cap - len(objs))
    rows.append([ev["met"], ev["met"], 0.0, ev["met_phi"]])
    return np.array(rows, np.float32)


def test_darkflow_preset_matches_reference_on_real_events(dm_events):
    grid = ObjectGrid.preset("darkflow")
    assert grid.shape == (32, 4) and grid.row_labels[0] == "j1" and grid.row_labels[-1] == "MET"
    x, mask = grid.transform(dm_events[:300])
    for i in range(300):
        np.testing.assert_array_equal(x[i], reference_grid(dm_events, grid, i), err_msg=f"event {i}")
    # first event: the b-jet of pT 824498 MeV opens the b block (row 13); jets sorted by pT
    assert x[0, 13, 1] == 824498.0 and x[0, 0, 1] == 243675.0
    assert np.all(np.diff(x[0, :13, 1][mask[0, :13]]) <= 0)


def test_mask_counts_and_overflow(dm_events):
    grid = ObjectGrid.preset("darkflow")
    x, mask, overflow = grid.transform(dm_events, return_overflow=True)
    jets = dm_events.multiplicity("j")
    assert mask[:, :13].sum() == np.minimum(jets, 13).sum()
    assert overflow["j"] == np.maximum(jets - 13, 0).sum()
    assert np.all(x[~mask] == 0) and mask[:, -1].all()


def test_pooled_blocks_features_and_config_round_trip(dm_events):
    config = yaml.safe_load("""
        blocks: [[j, 4], [[e-, e+, m-, m+], 2]]
        met_row: false
        features: [log_pt, eta, cos_phi, sin_phi]
    """)
    grid = ObjectGrid.from_config(config)
    assert grid.n_rows == 6 and not grid.met_row
    x, mask = grid.transform(dm_events[:50])
    pt0 = dm_events.event(0)["objects"][1][2]  # leading jet of event 0
    assert x[0, 0, 0] == pytest.approx(np.log1p(pt0), rel=1e-6)
    np.testing.assert_allclose(x[..., 2] ** 2 + x[..., 3] ** 2, mask.astype(float), atol=1e-6)
    assert ObjectGrid.from_config(grid.get_config()) == grid
    assert ObjectGrid.from_config({"preset": "darkflow", "met_row": False}).n_rows == 31


def test_unknown_names_are_rejected():
    with pytest.raises(KeyError, match="unknown object code 'tau'"):
        ObjectGrid(blocks=[("tau", 2)])
    with pytest.raises(KeyError, match="unknown features"):
        ObjectGrid(features=["mass"])
    with pytest.raises(KeyError, match="available: adc2021, darkflow"):
        ObjectGrid.preset("nope")
    assert objects.available()[:7] == ["j", "b", "e-", "e+", "m-", "m+", "g"]
