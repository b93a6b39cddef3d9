"""Awkward Array interchange (tfp_anomaly.data.awkward_io): Events → ak.Array → Events is exact (dtypes,
offsets, process table and codes, labels, unit) on the embedded sample and on edge cases; arrays a user
builds are read with their defaults and aliases; a wrong array is one error naming the field."""
import dataclasses
import math

import numpy as np
import pytest

import awkward as ak

from tfp_anomaly.data import Events, concatenate, load_sample, objects
from tfp_anomaly.data.awkward_io import from_awkward, to_awkward, with_scores
from tfp_anomaly.data.events import _DTYPES
from tfp_anomaly.data.observables import dijet_mass


def assert_same_events(a: Events, b: Events):
    """Field by field: every array equal with its dtype, the process table, labels (None or equal), unit."""
    for name in _DTYPES:
        x, y = getattr(a, name), getattr(b, name)
        if x is None or y is None:
            assert x is None and y is None, name
            continue
        assert x.dtype == y.dtype and x.shape == y.shape, (name, x.dtype, y.dtype, x.shape, y.shape)
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.processes == b.processes and a.unit == b.unit


@pytest.fixture(scope="module")
def sample():
    return load_sample()[:3000]


def _events(counts, unit="GeV", labels=None, processes=("qcd", "ttbar")):
    """Events with ``counts`` objects per event, every kinematic value distinct."""
    n, m = len(counts), int(np.sum(counts))
    rng = np.random.default_rng(len(counts) + m)
    return Events(event_id=np.arange(n) * 7 + 3, process=np.arange(n) % len(processes), weight=rng.uniform(0.5, 2, n),
                  met=rng.uniform(0, 100, n), met_phi=rng.uniform(-3, 3, n),
                  offsets=np.concatenate([[0], np.cumsum(counts)]), obj_type=np.arange(m) % 7,
                  obj_e=rng.uniform(50, 100, m), obj_pt=rng.uniform(20, 50, m), obj_eta=rng.normal(size=m),
                  obj_phi=rng.uniform(-3, 3, m), processes=processes, labels=labels, unit=unit)


# --------------------------------------------------------------------------- exact round trips
@pytest.mark.parametrize("make", [
    lambda s: s,                                                   # labelled, four processes
    lambda s: dataclasses.replace(s, labels=None),                 # unlabelled
    lambda s: s[::7],                                              # a strided selection
    lambda s: s[s.process == 3],                                   # the table keeps the processes absent here
    lambda s: s.to_unit("MeV"),
    lambda s: concatenate([s[:10], s[:10].with_label(1)]),
    lambda s: Events.empty(),
    lambda s: Events.empty(unit="GeV", with_label=True),           # zero events, an empty label array
    lambda s: _events([0, 0, 0]),                                  # events without objects
    lambda s: _events([0, 3, 0, 1, 0], labels=[0, 1, 0, 0, 1]),
    lambda s: _events([2], processes=("only",)),
], ids=["sample", "unlabelled", "strided", "one-process", "MeV", "concatenated", "empty", "empty-labelled",
        "no-objects", "some-empty", "one-event"])
def test_round_trip_is_exact(sample, make):
    events = make(sample)
    assert_same_events(Events.from_awkward(events.to_awkward()), events)


def test_round_trip_through_awkward_buffers_and_after_selection(sample):
    array = sample.to_awkward()
    form, length, buffers = ak.to_buffers(array)  # what ak.to_parquet / pickling keep: the parameters too
    assert_same_events(Events.from_awkward(ak.from_buffers(form, length, buffers)), sample)
    # selecting events with a mask or an index keeps the unit and meta (they sit on the records)
    assert_same_events(Events.from_awkward(array[array.met > 50]), sample[sample.met > 50])
    assert_same_events(Events.from_awkward(array[[5, 2, 9]]), sample[np.array([5, 2, 9])])


def test_arrays_concatenated_in_awkward_read_back_as_the_concatenated_events(sample):
    """ak.concatenate does not merge categorical arrays: ak.from_categorical first (docs/data.md); the
    plain strings and the kept parameters read back as tfp_anomaly.data.concatenate of the events."""
    first, second = sample[:50], sample[-70:]  # other processes in each part
    joined = ak.concatenate([ak.from_categorical(first.to_awkward()), ak.from_categorical(second.to_awkward())])
    assert_same_events(Events.from_awkward(joined), concatenate([first, second]))


def test_layout_is_one_record_per_event_with_vector_names(sample):
    array = sample.to_awkward()
    assert ak.fields(array) == ["event_id", "process", "weight", "met", "met_phi", "label", "objects"]
    assert ak.fields(array.objects) == ["code", "pt", "eta", "phi", "E"]
    assert ak.parameters(ak.flatten(array.objects))["__record__"] == "Momentum4D"
    assert ak.parameters(array)["unit"] == "GeV" and ak.parameters(array)["processes"] == list(sample.processes)
    assert ak.parameters(array)["meta"]["format"] == "darkmachines"
    np.testing.assert_array_equal(ak.num(array.objects), sample.n_objects)
    assert str(ak.type(array.objects.pt)) == f"{len(sample)} * var * float32"
    # categorical strings compare as strings
    np.testing.assert_array_equal(ak.to_numpy(array.process == "ttbar"), sample.process_name == "ttbar")
    np.testing.assert_array_equal(ak.to_numpy(ak.sum(array.objects.code == "b", axis=1)), sample.multiplicity("b"))
    assert sample.event(4)["objects"][0] == tuple(array.objects[4, 0].tolist()[k] for k in ("code", "E", "pt",
                                                                                                  "eta", "phi"))
    assert "label" not in ak.fields(dataclasses.replace(sample, labels=None).to_awkward())


def test_objects_are_lorentz_vectors_for_the_vector_library(sample):
    vector = pytest.importorskip("vector")
    vector.register_awkward()
    objects_ = sample.to_awkward().objects
    jets = objects_[(objects_.code == "j") | (objects_.code == "b")]
    jets = jets[ak.argsort(jets.pt, axis=1, ascending=False)]
    two = ak.to_numpy(ak.num(jets) >= 2)
    m_jj = ak.to_numpy((jets[two][:, 0] + jets[two][:, 1]).mass)
    np.testing.assert_allclose(m_jj, dijet_mass(sample)[two], rtol=1e-3, atol=1e-2)


# --------------------------------------------------------------------------- arrays a user builds
def _user_array(**objects_):
    """Two events (two objects, none) as a user zips them: float64 values, plain strings, no unit."""
    fields = {"code": [["j", "e-"], []], "pt": [[50.0, 20.0], []], "eta": [[0.0, 1.0], []],
              "phi": [[0.5, -1.0], []], "E": [[60.0, 40.0], []], **objects_}
    return ak.zip({"met": [10.0, 20.0], "met_phi": [0.1, 0.2],
                   "objects": ak.zip({k: v for k, v in fields.items() if v is not None})}, depth_limit=1)


def test_a_user_array_takes_the_defaults():
    events = Events.from_awkward(_user_array(), unit="GeV")
    np.testing.assert_array_equal(events.event_id, [0, 1])
    np.testing.assert_array_equal(events.weight, [1.0, 1.0])
    assert events.processes == ("unknown",) and events.labels is None and events.unit == "GeV"
    np.testing.assert_array_equal(events.offsets, [0, 2, 2])
    np.testing.assert_array_equal(events.obj_type, [objects.type_id("j"), objects.type_id("e-")])
    assert events.obj_pt.dtype == np.float32 and events.met.dtype == np.float32
    np.testing.assert_array_equal(events.obj_e, np.float32([60.0, 40.0]))


def test_a_user_array_may_name_its_processes_labels_and_types_its_own_way():
    array = ak.with_field(_user_array(), ["zjets", "qcd"], "process")
    array = ak.with_field(array, [True, False], "label")
    array = ak.with_field(array, [10, 11], "event_id")
    events = Events.from_awkward(array, unit="MeV", meta={"source": "mine"})
    assert events.processes == ("qcd", "zjets") and list(events.process_name) == ["zjets", "qcd"]
    np.testing.assert_array_equal(events.labels, np.int8([1, 0]))
    assert events.unit == "MeV" and events.meta == {"source": "mine"}
    ids = Events.from_awkward(_user_array(code=[[0, 4], []]), unit="GeV")  # integer type ids
    assert [o[0] for o in ids.event(0)["objects"]] == ["j", "m-"]
    named = Events.from_awkward(_user_array(E=None, energy=[[60.0, 40.0], []]), unit="GeV")
    np.testing.assert_array_equal(named.obj_e, np.float32([60.0, 40.0]))


def test_a_user_array_with_masses_gets_energies():
    events = Events.from_awkward(_user_array(E=None, mass=[[5.0, 0.0], []]), unit="GeV")
    expected = [math.sqrt(5.0 ** 2 + (50.0 * math.cosh(0.0)) ** 2), 20.0 * math.cosh(1.0)]
    np.testing.assert_allclose(events.obj_e, expected, rtol=1e-6)


def test_a_record_of_lists_reads_like_a_list_of_records():
    columns = {"type": [["j", "e-"], []], "pt": [[50.0, 20.0], []], "eta": [[0.0, 1.0], []],
               "phi": [[0.5, -1.0], []], "E": [[60.0, 40.0], []]}
    array = ak.zip({"met": [10.0, 20.0], "met_phi": [0.1, 0.2], "objects": ak.zip(columns, depth_limit=1)},
                   depth_limit=1)
    assert_same_events(Events.from_awkward(array, unit="GeV"), Events.from_awkward(_user_array(), unit="GeV"))


@pytest.mark.parametrize("change, message", [
    (lambda a: a[["met", "objects"]], r"missing field 'met_phi': an event record needs met, met_phi and objects"),
    (lambda a: a[["met", "met_phi"]], r"missing field 'objects'"),
    (lambda a: _user_array(eta=None), r"missing field 'objects\.eta'"),
    (lambda a: _user_array(E=None), r"missing field 'objects\.E': an object needs its energy \(E, e, energy, t\) or "
                                    r"its mass"),
    (lambda a: _user_array(code=[["j", "x"], []]), r"field 'objects\.code': unknown object code 'x'; known codes"),
    (lambda a: _user_array(code=[[0, 42], []]), r"field 'objects\.code': unknown object type id 42"),
    (lambda a: ak.with_field(a, [[1.0], [2.0, 3.0]], "met"), r"field 'met': expected one number per entry"),
    (lambda a: ak.with_field(a, [1.0, None], "weight"), r"field 'weight': expected one number per entry \(none missing\)"),
    (lambda a: ak.with_field(a, ["a", "b"], "met_phi"), r"field 'met_phi': expected one number"),
    (lambda a: ak.with_field(a, [1, 2], "process"), r"field 'process': expected strings"),
    (lambda a: ak.with_field(a, [[1.0, 2.0], [3.0]], "objects"), r"field 'objects': expected object records"),
    (lambda a: ak.with_field(a, ak.zip({"type": ["j", "j"], "pt": [1.0, 2.0], "eta": [0.0, 0.0],
                                        "phi": [0.0, 0.0], "E": [1.0, 2.0]}), "objects"),
     r"field 'objects': expected a list of object records per event"),
    (lambda a: ak.Array([1.0, 2.0]), r"expected an array of event records"),
])
def test_a_wrong_array_is_an_error_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message):
        Events.from_awkward(change(_user_array()), unit="GeV")


def test_the_unit_is_required_once_and_must_agree(sample):
    with pytest.raises(ValueError, match=r"carries no unit \(parameter 'unit'\): pass unit='GeV' or unit='MeV'"):
        Events.from_awkward(_user_array())
    with pytest.raises(ValueError, match=r"values are in GeV \(parameter 'unit'\), unit='MeV' given"):
        Events.from_awkward(sample.to_awkward(), unit="MeV")
    with pytest.raises(ValueError, match="unit must be one of MeV, GeV"):
        Events.from_awkward(_user_array(), unit="TeV")
    assert Events.from_awkward(sample.to_awkward(), unit="GeV").unit == "GeV"


# --------------------------------------------------------------------------- scores back onto the events
def test_with_scores_adds_a_record_of_scores_and_keeps_the_parameters(sample):
    events = sample[:50]
    array = with_scores(to_awkward(events), {"mse": np.arange(50.0)})
    array = with_scores(array, {"kl": -np.arange(50.0)})
    assert ak.fields(array.scores) == ["mse", "kl"]
    np.testing.assert_array_equal(ak.to_numpy(array.scores.kl), -np.arange(50.0))
    assert ak.parameters(array)["unit"] == "GeV"
    assert_same_events(from_awkward(array), events)  # the scores field is ignored
    top = array[ak.argsort(array.scores.mse, ascending=False)][:5]  # the most anomalous events
    assert ak.to_list(top.event_id) == list(events.event_id[::-1][:5])
    with pytest.raises(ValueError, match=r"score 'mse' has shape \(3,\), expected \(50,\)"):
        with_scores(array, {"mse": np.zeros(3)})
