"""ADC2021 reader on small files built in exactly the published layout: Particles (N, 19, 4)."""
import h5py
import numpy as np
import pytest

from tfp_anomaly.data import DataFormatError, ObjectGrid, read_adc2021, read_events


def _particles():
    p = np.zeros((3, 19, 4))
    p[0, 0] = [55.0, 0.0, 1.5, 1]          # MET
    p[0, 1] = [30.0, 0.5, -1.0, 2]         # electron
    p[0, 5] = [25.0, -1.2, 2.0, 3]         # muon
    p[0, 9] = [120.0, 0.1, 0.3, 4]         # two jets
    p[0, 10] = [80.0, 2.0, -2.5, 4]
    p[1, 0] = [10.0, 0.0, -0.5, 1]
    p[1, 9:19] = [[40.0 - k, 0.2, 0.1, 4] for k in range(10)]  # ten jets
    p[2, 0] = [5.0, 0.0, 0.0, 1]           # MET only
    return p


def _write(path, particles):
    with h5py.File(path, "w") as f:
        f.create_dataset("Particles", data=particles)
        f.create_dataset("Particles_Classes", data=np.array([b"MET", b"Electron", b"Muon", b"Jet"]))
    return path


def test_reads_layout_types_met_and_massless_energy(tmp_path):
    ev = read_adc2021(_write(tmp_path / "bkg.h5", _particles()), label=0)
    assert len(ev) == 3 and ev.unit == "GeV"
    assert list(ev.n_objects) == [4, 10, 0]
    np.testing.assert_allclose(ev.met, [55, 10, 5])
    np.testing.assert_allclose(ev.met_phi, [1.5, -0.5, 0.0])
    first = ev.event(0)["objects"]
    assert [o[0] for o in first] == ["e", "m", "j", "j"]
    np.testing.assert_allclose([o[1] for o in first], [o[2] * np.cosh(o[3]) for o in first], rtol=1e-6)
    assert list(ev.labels) == [0, 0, 0]
    # the ADC2021 grid preset puts the 10 jets of event 1 into its 10 jet slots
    x, mask = ObjectGrid.preset("adc2021").transform(ev)
    assert x.shape == (3, 19, 4) and mask[1, 8:18].all() and mask.sum() == 4 + 10 + 3


def test_detected_by_the_format_registry(tmp_path):
    ev = read_events(_write(tmp_path / "x.h5", _particles()))
    assert ev.meta["format"] == "adc2021" and len(ev) == 3


def test_wrong_shape_is_a_clear_error(tmp_path):
    with pytest.raises(DataFormatError, match=r"shape \(3, 18, 4\), expected \(N, 19, 4\)"):
        read_adc2021(_write(tmp_path / "bad.h5", _particles()[:, :18]))


def test_nan_names_event_and_slot(tmp_path):
    p = _particles()
    p[2, 7, 1] = np.nan
    with pytest.raises(DataFormatError) as info:
        read_adc2021(_write(tmp_path / "nan.h5", p))
    assert info.value.line == 2 and info.value.field == "Particles[2, 7, 1]" and "event 2" in str(info.value)


def test_class_in_wrong_block_is_rejected(tmp_path):
    p = _particles()
    p[0, 10, 3] = 2  # an "electron" in a jet slot
    with pytest.raises(DataFormatError, match=r"Particles\[0, 10, 3\].*class 2 in the j block"):
        read_adc2021(_write(tmp_path / "cls.h5", p))


def test_missing_dataset(tmp_path):
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_dataset("Other", data=np.zeros(3))
    with pytest.raises(DataFormatError, match="no dataset 'Particles'"):
        read_adc2021(tmp_path / "empty.h5")
