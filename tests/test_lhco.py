"""LHC Olympics R&D readers on the real files."""
import builtins

import numpy as np
import pytest

from tfp_anomaly.data import DataFormatError, read_lhco_raw, read_lhco_scalars

COUNTS = {"bkg01": 9128, "bkg02": 9130, "bkg03": 9087, "bkg04": 9090, "bkg05": 9115,
          "sig01": 872, "sig02": 870, "sig03": 913, "sig04": 910, "sig05": 885}


def test_scalar_files_event_counts_and_labels(lhco_scalar_dir):
    for name, count in COUNTS.items():
        table = read_lhco_scalars(lhco_scalar_dir / f"scalars_{name}.h5", nonfinite="keep")
        assert len(table) == count, name
        assert set(table.labels) == {1 if name.startswith("sig") else 0}


def test_scalar_policies_are_applied_and_counted(lhco_scalar_dir):
    table = read_lhco_scalars(sorted(lhco_scalar_dir.glob("scalars_*.h5")))
    report = table.report
    assert sum(report["nonfinite"].values()) == 12 and report["dropped_events"] == 7
    assert len(table) == sum(COUNTS.values()) - 7
    assert np.isfinite(table.features).all()
    assert report["constant_columns"] == ["nj"]
    # the files' tau21 columns copy tau32 (an upstream bug): recomputed as tau2/tau1, not dropped
    assert report["recomputed_columns"] == ["tau21_1", "tau21_2"] and report["duplicate_columns"] == {}
    assert "phi_1" not in table.names and "nj" not in table.names and "tau21_1" in table.names
    assert len(table.names) == 46 - 2 - 1
    t21 = {n: table.features[:, table.names.index(n)] for n in ("tau1_2", "tau2_2", "tau21_2")}
    np.testing.assert_allclose(t21["tau21_2"], t21["tau2_2"] / t21["tau1_2"], rtol=1e-12)
    copies = read_lhco_scalars(sorted(lhco_scalar_dir.glob("scalars_*.h5")), recompute_tau21=False).report
    assert copies["duplicate_columns"] == {"tau21_2": "tau32_2", "tau21_1": "tau32_1"}
    mjj = table.features[:, table.names.index("mjj")]
    assert 1000 < np.median(mjj) < 6000  # GeV: dijet masses of a 13 TeV R&D sample
    # the tau32 column really is tau3/tau2 of the same jet
    t = {n: table.features[:, table.names.index(n)] for n in ("tau2_1", "tau3_1", "tau32_1")}
    np.testing.assert_allclose(t["tau32_1"], t["tau3_1"] / t["tau2_1"], rtol=1e-6)


def test_scalar_raise_policy_names_file_row_and_column(lhco_scalar_dir):
    with pytest.raises(DataFormatError) as info:
        read_lhco_scalars(lhco_scalar_dir / "scalars_bkg01.h5", nonfinite="raise")
    assert "scalars_bkg01.h5" in str(info.value) and "row" in str(info.value) and "tau" in info.value.field


def test_raw_tiny_file(lhco_raw_file):
    ev = read_lhco_raw(lhco_raw_file)
    assert len(ev) == 1000 and np.bincount(ev.labels).tolist() == [907, 93]
    assert ev.unit == "GeV" and set(ev.count_by_type()) == {"h"}
    assert ev.n_objects.max() <= 700 and ev.n_objects.min() > 0
    # MET is the negative vector sum of the hadrons' transverse momenta
    lo, hi = ev.offsets[0], ev.offsets[1]
    px = -(ev.obj_pt[lo:hi] * np.cos(ev.obj_phi[lo:hi])).sum()
    py = -(ev.obj_pt[lo:hi] * np.sin(ev.obj_phi[lo:hi])).sum()
    assert ev.met[0] == pytest.approx(np.hypot(px, py), rel=1e-4)


def test_scalar_chunk01_signal_positions_match_the_raw_file(lhco_raw_file, lhco_scalar_dir):
    """Two readers, two file formats, one truth: chunk 01 is R&D events 0-9,999."""
    raw = read_lhco_raw(lhco_raw_file)
    sig = read_lhco_scalars(lhco_scalar_dir / "scalars_sig01.h5", nonfinite="keep")
    assert np.array_equal(sig.event_index[sig.event_index < 1000], np.flatnonzero(raw.labels == 1))


def test_raw_without_pytables_says_which_extra(monkeypatch, lhco_raw_file):
    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tables":
            raise ImportError("no tables")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"tfp-anomaly\[lhco-raw\]"):
        read_lhco_raw(lhco_raw_file)
