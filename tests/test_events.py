import numpy as np
import pytest

from tfp_anomaly.data import Events, concatenate, objects


def make(n_obj=(2, 0, 3), process=(0, 0, 1), processes=("a", "b"), labels=None, unit="MeV"):
    offsets = np.concatenate([[0], np.cumsum(n_obj)])
    m = offsets[-1]
    return Events(event_id=np.arange(len(n_obj)) + 10, process=process, processes=processes,
                  weight=np.ones(len(n_obj)), met=np.arange(len(n_obj)) * 1000.0, met_phi=np.zeros(len(n_obj)),
                  offsets=offsets, obj_type=np.arange(m) % 3, obj_e=np.arange(m) * 2000.0 + 2000,
                  obj_pt=np.arange(m) * 1000.0 + 1000, obj_eta=np.zeros(m), obj_phi=np.zeros(m),
                  labels=labels, unit=unit)


def test_slicing_take_and_mask_keep_objects_with_their_events():
    ev = make()
    assert len(ev) == 3 and list(ev.n_objects) == [2, 0, 3]
    sub = ev[[2, 0]]
    assert list(sub.event_id) == [12, 10]
    assert list(sub.obj_pt) == [3000.0, 4000.0, 5000.0, 1000.0, 2000.0]
    assert list(ev[1:].obj_pt) == [3000.0, 4000.0, 5000.0]
    assert list(ev[np.array([False, True, True])].n_objects) == [0, 3]
    assert ev[-1].event(0)["event_id"] == 12 and ev[-3].event(0)["event_id"] == 10
    with pytest.raises(IndexError, match="out of range"):
        ev[3]
    with pytest.raises(IndexError):
        ev[np.array([True, False])]


def test_concatenate_merges_process_tables():
    a, b = make(), make(processes=("b", "c"))
    both = concatenate([a, b])
    assert both.processes == ("a", "b", "c")
    assert list(both.process_name) == ["a", "a", "b", "b", "b", "c"]
    assert both.offsets[-1] == 10 and len(both) == 6


def test_concatenate_refuses_mixed_units_and_labelling():
    with pytest.raises(ValueError, match="units"):
        concatenate([make(), make(unit="GeV")])
    with pytest.raises(ValueError, match="labelled"):
        concatenate([make(), make(labels=np.ones(3))])


def test_unit_conversion_scales_energies_only():
    gev = make().to_unit("GeV")
    assert gev.unit == "GeV"
    np.testing.assert_allclose(gev.obj_pt[:2], [1.0, 2.0])
    np.testing.assert_allclose(gev.met, [0.0, 1.0, 2.0])
    np.testing.assert_array_equal(gev.obj_eta, make().obj_eta)
    with pytest.raises(ValueError, match="unit"):
        make().to_unit("TeV")


def test_validation_rejects_inconsistent_arrays():
    with pytest.raises(ValueError, match="offsets"):
        Events(event_id=[1], process=[0], processes=("a",), weight=[1], met=[1], met_phi=[0], offsets=[1, 1],
               obj_type=[0], obj_e=[1], obj_pt=[1], obj_eta=[0], obj_phi=[0])
    with pytest.raises(ValueError, match="obj_pt has shape"):
        Events(event_id=[1], process=[0], processes=("a",), weight=[1], met=[1], met_phi=[0], offsets=[0, 2],
               obj_type=[0, 0], obj_e=[1, 1], obj_pt=[1], obj_eta=[0, 0], obj_phi=[0, 0])
    with pytest.raises(ValueError, match="process"):
        make(process=(0, 0, 2))


def test_multiplicity_and_counts_by_type():
    ev = make()
    # types cycle j, b, e- over the flat objects: event 0 -> j b ; event 2 -> e- j b
    assert list(ev.multiplicity("j")) == [1, 0, 1]
    assert list(ev.multiplicity("e-")) == [0, 0, 1]
    assert ev.count_by_type() == {"j": 2, "b": 2, "e-": 1}
    with pytest.raises(KeyError, match="known codes"):
        ev.multiplicity("tau")


def test_from_padded_drops_empty_slots_in_row_major_order():
    pt = np.array([[5.0, 0.0, 3.0], [0.0, 0.0, 0.0]])
    ev = Events.from_padded(objects.type_id("j"), pt, pt, np.zeros_like(pt), np.zeros_like(pt),
                            met=[1.0, 2.0], met_phi=[0.0, 0.0])
    assert list(ev.n_objects) == [2, 0] and list(ev.obj_pt) == [5.0, 3.0]
