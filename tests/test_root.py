"""ROOT input through uproot (tfp_anomaly.data.root): Delphes trees and flat ntuples written here with
uproot itself (tests/rootfiles.py), read back value by value, through the format registry, the cache, the
command line and a short training run; and every malformed file one error naming file, tree, branch, entry."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import rootfiles
from tfp_anomaly import config as config_lib
from tfp_anomaly import inputs
from tfp_anomaly.cli import main
from tfp_anomaly.data import DataFormatError, concatenate, formats, read_cache, read_events
from tfp_anomaly.data.root import (check_options, iter_delphes, parse_mapping, read_delphes,
                                   read_root_ntuple)
from tfp_anomaly.data.store import ensure_cache

CONFIGS = Path(__file__).resolve().parents[1] / "examples" / "configs"


# --------------------------------------------------------------------------- the expected events
def _lists(branches: dict) -> dict:
    return {name: array.tolist() for name, array in branches.items()}


def _delphes_objects(b: dict, i: int, bit: int = 0, drop=()) -> list:
    """The (code, pT, eta, phi) of event ``i`` as the module says Delphes is read, one object at a time."""
    out = [("b" if (tag >> bit) & 1 else "j", pt, eta, phi) for pt, eta, phi, tag in
           zip(b["Jet.PT"][i], b["Jet.Eta"][i], b["Jet.Phi"][i], b["Jet.BTag"][i])]
    for name, code in (("Electron", "e"), ("Muon", "m")):
        if name not in drop:
            out += [(f"{code}-" if q < 0 else f"{code}+", pt, eta, phi) for pt, eta, phi, q in
                    zip(b[f"{name}.PT"][i], b[f"{name}.Eta"][i], b[f"{name}.Phi"][i], b[f"{name}.Charge"][i])]
    if "Photon" not in drop:
        out += [("g", pt, eta, phi) for pt, eta, phi in zip(b["Photon.PT"][i], b["Photon.Eta"][i], b["Photon.Phi"][i])]
    return out


def _objects(events, i: int) -> list:
    return [(code, pt, eta, phi) for code, _, pt, eta, phi in events.event(i)["objects"]]


def _assert_same(a, b):
    for name in ("event_id", "weight", "met", "met_phi", "offsets", "obj_type", "obj_e", "obj_pt", "obj_eta", "obj_phi"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.fixture(scope="module")
def delphes_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("root") / "delphes.root"
    return path, rootfiles.write_delphes(path, 300, seed=0)


@pytest.fixture(scope="module")
def ntuple_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("root") / "ntuple.root"
    return path, rootfiles.write_ntuple(path, 200, seed=1)


# --------------------------------------------------------------------------- Delphes
def test_the_written_file_has_the_split_delphes_layout(delphes_file):
    import uproot

    path, _ = delphes_file
    with uproot.open(path) as handle:
        tree = handle["Delphes"]
        assert {"Jet_size", "Jet.PT", "Jet.BTag", "MissingET.MET", "Event.Number"} <= set(tree.keys())
        assert tree.typenames()["Jet.PT"] == "float[]" and tree.typenames()["Jet_size"] == "int32_t"


def test_delphes_reads_back_exactly(delphes_file):
    path, branches = delphes_file
    events, b = read_delphes(path), _lists(branches)
    assert len(events) == 300 and events.unit == "GeV" and events.processes == ("delphes",)
    for i in range(300):
        assert _objects(events, i) == _delphes_objects(b, i), i
    np.testing.assert_array_equal(events.event_id, np.arange(1000, 1300))
    np.testing.assert_array_equal(events.met, np.concatenate(b["MissingET.MET"]).astype(np.float32))
    np.testing.assert_array_equal(events.met_phi, np.concatenate(b["MissingET.Phi"]).astype(np.float32))
    np.testing.assert_array_equal(events.weight, np.concatenate(b["Event.Weight"]).astype(np.float32))
    assert set(events.count_by_type()) == {"j", "b", "e-", "e+", "m-", "m+", "g"}


def test_delphes_energies_from_the_jet_mass_massless_leptons_and_the_photon_energy(delphes_file):
    path, branches = delphes_file
    events, flat = read_delphes(path), {k: np.concatenate(v.tolist()).astype(np.float64) for k, v in branches.items()
                                        if k.startswith(("Jet.", "Muon.", "Photon."))}
    jets = np.isin(events.obj_type, [0, 1])
    pt, eta = flat["Jet.PT"], flat["Jet.Eta"]
    np.testing.assert_allclose(np.sort(events.obj_e[jets]),
                               np.sort(np.sqrt((pt * np.cosh(eta)) ** 2 + flat["Jet.Mass"] ** 2)), rtol=1e-6)
    muons = np.isin(events.obj_type, [4, 5])
    np.testing.assert_allclose(np.sort(events.obj_e[muons]), np.sort(flat["Muon.PT"] * np.cosh(flat["Muon.Eta"])),
                               rtol=1e-6)
    np.testing.assert_array_equal(np.sort(events.obj_e[events.obj_type == 6]), np.sort(flat["Photon.E"]).astype(np.float32))


def test_btag_bit_chooses_the_bit_of_jet_btag(delphes_file):
    path, branches = delphes_file
    events, b = read_delphes(path, btag_bit=1), _lists(branches)
    assert all(_objects(events, i) == _delphes_objects(b, i, bit=1) for i in range(300))
    tags = np.concatenate(b["Jet.BTag"])
    assert events.count_by_type()["b"] == int(((tags >> 1) & 1).sum()) != read_delphes(path).count_by_type()["b"]


def test_chunks_smaller_than_the_file_give_the_same_events(delphes_file):
    path, _ = delphes_file
    chunks = list(iter_delphes(path, chunk_size=70))
    assert [len(c) for c in chunks] == [70, 70, 70, 70, 20]
    assert chunks[1].event_id[0] == 1070
    from tfp_anomaly.data import concatenate

    _assert_same(concatenate(chunks), next(iter_delphes(path, chunk_size=10_000)))


def test_missing_object_classes_are_none_of_that_type(tmp_path, caplog):
    path = tmp_path / "no_leptons.root"
    branches = rootfiles.write_delphes(path, 50, seed=4, drop=("Electron", "Photon", "Event"))
    with caplog.at_level("INFO", logger="tfp_anomaly.data.root"):
        events = read_delphes(path)
    assert "has no Electron branches" in caplog.text and "has no Photon branches" in caplog.text
    assert not {"e-", "e+", "g"} & set(events.count_by_type())
    b = _lists(branches)
    assert all(_objects(events, i) == _delphes_objects(b, i, drop=("Electron", "Photon")) for i in range(50))
    # no Event branch: the entry number is the event id, every weight 1
    np.testing.assert_array_equal(events.event_id, np.arange(50))
    assert np.all(events.weight == 1)


def test_photons_without_an_energy_branch_are_massless(tmp_path):
    path = tmp_path / "no_photon_e.root"
    branches = rootfiles.write_delphes(path, 40, seed=5, change=lambda b: b.pop("Photon.E"))
    events = read_delphes(path)
    photons = events.obj_type == 6
    pt, eta = (np.concatenate(branches[k].tolist()).astype(np.float64) for k in ("Photon.PT", "Photon.Eta"))
    np.testing.assert_allclose(np.sort(events.obj_e[photons]), np.sort(pt * np.cosh(eta)), rtol=1e-6)


def test_another_tree_name_and_an_rntuple(tmp_path):
    import uproot

    branches = rootfiles.delphes_branches(60, seed=6)
    rootfiles.write_tree(tmp_path / "renamed.root", branches, tree="events")
    with uproot.recreate(tmp_path / "rntuple.root") as handle:  # uproot 5.7 writes an RNTuple this way
        handle["Delphes"] = branches
    reference = read_delphes(tmp_path / "renamed.root", tree="events")
    assert formats.detect(tmp_path / "renamed.root").name == "delphes"  # a tree with Delphes branches
    _assert_same(read_delphes(tmp_path / "renamed.root"), reference)  # read from the tree it was recognised by
    _assert_same(concatenate(list(formats.open_events(tmp_path / "renamed.root"))), reference)
    _assert_same(read_delphes(tmp_path / "rntuple.root"), reference)


# --------------------------------------------------------------------------- flat ntuples
def test_ntuple_reads_back_exactly(ntuple_file):
    path, branches = ntuple_file
    events, b = read_root_ntuple(path, **rootfiles.NTUPLE_MAPPING), _lists(branches)
    for i in range(200):
        expected = [("j", *v) for v in zip(b["jet_pt"][i], b["jet_eta"][i], b["jet_phi"][i])]
        expected += [("m-" if q < 0 else "m+", *v) for *v, q in zip(b["mu_pt"][i], b["mu_eta"][i], b["mu_phi"][i], b["mu_q"][i])]
        expected += [("g", *v) for v in zip(b["ph_pt"][i], b["ph_eta"][i], b["ph_phi"][i])]
        assert _objects(events, i) == expected, i
    np.testing.assert_array_equal(events.obj_e[events.obj_type == 0], np.concatenate(b["jet_e"]).astype(np.float32))
    np.testing.assert_array_equal(events.event_id, np.asarray(b["evt"]))
    np.testing.assert_array_equal(events.weight, np.asarray(b["w"]))  # float64 as written
    np.testing.assert_array_equal(events.met, np.asarray(b["met"], np.float32))
    np.testing.assert_array_equal(events.met_phi, np.asarray(b["met_phi"], np.float32))


def test_ntuple_mass_unit_flat_branches_and_defaults(ntuple_file):
    path, branches = ntuple_file
    mapping = {"objects": {"j": {"pt": "jet_pt", "eta": "jet_eta", "phi": "jet_phi", "mass": "jet_e"},
                           "e": {"pt": "met", "eta": "met_phi", "phi": "met_phi"}},  # a flat branch: one per entry
               "unit": "MeV"}
    events = read_root_ntuple(path, **mapping)  # the file's only tree; no MET, weight or event number
    assert events.unit == "MeV" and np.all(events.met == 0) and np.all(events.weight == 1)
    np.testing.assert_array_equal(events.event_id, np.arange(200))
    assert events.multiplicity("e").tolist() == [1] * 200
    pt, eta, mass = (np.concatenate(branches[k].tolist()).astype(np.float64) for k in ("jet_pt", "jet_eta", "jet_e"))
    np.testing.assert_allclose(events.obj_e[events.obj_type == 0], np.sqrt((pt * np.cosh(eta)) ** 2 + mass ** 2),
                               rtol=1e-6)


def test_ntuple_chunks_and_open_events(ntuple_file):
    path, _ = ntuple_file
    whole = read_events(path, "root-ntuple", **rootfiles.NTUPLE_MAPPING)
    chunks = list(formats.open_events(path, "root-ntuple", chunk_size=33, **rootfiles.NTUPLE_MAPPING))
    assert len(chunks) == 7
    from tfp_anomaly.data import concatenate

    _assert_same(concatenate(chunks), whole)
    with pytest.raises(DataFormatError, match=r"ntuple\.root: ROOT file without a Delphes tree \(it holds 'events' "
                                              r"\(TTree\)\).*root-ntuple"):
        formats.detect(path)


@pytest.mark.parametrize("mapping, message", [
    ({"tree": "events"}, r"objects: the root-ntuple format needs a branch mapping"),
    ({"objects": {"j": {"pt": "a", "eta": "b"}}}, r"objects\.j: missing 'phi'"),
    ({"objects": {"j": {"pt": "a", "eta": "b", "phi": "c", "e": "d", "mass": "f"}}}, r"objects\.j: give the energy"),
    ({"objects": {"g": {"pt": "a", "eta": "b", "phi": "c", "btag": "t"}}}, r"objects\.g\.btag: .* j into j/b"),
    ({"objects": {"x": {"pt": "a", "eta": "b", "phi": "c"}}}, r"unknown object code 'x'"),
    ({"objects": {"j": {"pt": "a", "eta": "b", "phi": "c"}}, "met": {"met": "m"}}, r"\.met = .*\{met: BRANCH, phi"),
    ({"objects": {"j": {"pt": "a", "eta": "b", "phi": "c"}}, "unit": "TeV"}, r"\.unit = 'TeV'"),
])
def test_bad_mappings_are_named(mapping, message):
    with pytest.raises(ValueError, match=message):
        parse_mapping(mapping, "data.root")


def test_config_key_data_root_is_checked():
    base = config_lib.merge(config_lib.DEFAULTS, {"data": {"background": "sample"}, "model": {"type": "swae"}})
    config_lib.check(base, "defaults")
    bad = config_lib.merge(base, {"data": {"root": {"objects": {"j": {"pt": "a"}}}}})
    with pytest.raises(config_lib.ConfigError, match=r"data\.root\.objects\.j: missing key eta"):
        config_lib.check(bad, "x.yaml")
    with pytest.raises(config_lib.ConfigError, match=r"x\.yaml: data\.root\.objects: the root-ntuple format needs"):
        config_lib.check(config_lib.merge(base, {"data": {"format": "root-ntuple"}}), "x.yaml")
    with pytest.raises(ValueError, match=r"data\.root: objects: read as a Delphes tree"):
        check_options({"objects": rootfiles.NTUPLE_MAPPING["objects"]}, "delphes")


def test_a_changed_mapping_converts_the_cache_again(ntuple_file, tmp_path):
    path, branches = ntuple_file
    config = config_lib.merge(config_lib.DEFAULTS, {"data": {"background": str(path), "format": "root-ntuple",
                                                             "root": rootfiles.NTUPLE_MAPPING,
                                                             "cache_dir": str(tmp_path / "cache")}})
    events, _ = inputs.load_background(config)
    np.testing.assert_array_equal(np.sort(events.event_id), np.sort(np.asarray(branches["evt"])))
    options = formats.reader_options(formats.get("root-ntuple"), config["data"])
    assert ensure_cache(path, format="root-ntuple", options=options, cache_dir=tmp_path / "cache").reused
    config["data"]["root"] = {**rootfiles.NTUPLE_MAPPING, "event_id": None}
    events, _ = inputs.load_background(config)
    np.testing.assert_array_equal(np.sort(events.event_id), np.arange(200))


# --------------------------------------------------------------------------- the command line and training
def test_cli_inspect_and_convert_a_delphes_file(delphes_file, tmp_path, capsys):
    path, _ = delphes_file
    assert main(["data", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "format    delphes" in out and "events    300" in out and "unit      GeV" in out
    assert main(["data", "convert", str(path), str(tmp_path / "d.h5"), "--no-progress", "--btag-bit", "1"]) == 0
    _assert_same(read_cache(tmp_path / "d.h5"), read_delphes(path, btag_bit=1))
    assert main(["data", "formats"]) == 0
    assert "delphes" in capsys.readouterr().out


def test_cli_converts_an_ntuple_with_a_mapping_file(ntuple_file, tmp_path, capsys):
    path, _ = ntuple_file
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({k: v for k, v in rootfiles.NTUPLE_MAPPING.items() if k != "tree"}, sort_keys=False))
    assert main(["data", "convert", str(path), str(tmp_path / "n.h5"), "--format", "root-ntuple",
                 "--root-mapping", str(mapping), "--tree", "events", "--no-progress"]) == 0
    _assert_same(read_cache(tmp_path / "n.h5"), read_root_ntuple(path, **rootfiles.NTUPLE_MAPPING))
    assert main(["data", "inspect", str(path), "--format", "root-ntuple", "--root-mapping", str(mapping)]) == 0
    assert "format    root-ntuple" in capsys.readouterr().out


def test_train_on_a_delphes_file(delphes_file, tmp_path, capsys):
    path, _ = delphes_file
    assert main(["train", str(CONFIGS / "convvae.yaml"), "--run-dir", str(tmp_path / "run"), "-o",
                 f"data.background={path}", "data.signals=null", "training.epochs=1", "training.batch_size=60",
                 "training.verbose=0", "training.jit_compile=false"]) == 0, capsys.readouterr().err
    data = json.loads((tmp_path / "run" / "data.json").read_text())
    assert data["background_events"] == 300 and data["files"] == [str(path)]
    assert "1 epochs" in capsys.readouterr().out


# --------------------------------------------------------------------------- bad input
def _set(branch: str, entry: int, value):
    """A ``change`` for the writers: object 0 of ``entry`` of ``branch`` set to ``value``."""
    import awkward as ak

    def change(branches):
        array = branches[branch]
        counts = ak.to_numpy(ak.num(array))
        flat = ak.to_numpy(ak.flatten(array)).copy()
        flat[int(counts[:entry].sum())] = value
        branches[branch] = ak.unflatten(flat, counts)

    return change


def _longer(entry: int, *names: str):
    """A ``change``: one more value in ``entry`` of the branches ``names``."""
    import awkward as ak

    def change(branches):
        for name in names:
            values = branches[name].tolist()
            values[entry] = values[entry] + [1.0]
            branches[name] = ak.values_astype(ak.Array(values), np.float32)

    return change


def _delphes(**kwargs):
    def setup(path):
        rootfiles.write_delphes(path, 30, seed=7, **kwargs)
    return setup


def _ntuple(change):
    def setup(path):
        rootfiles.write_ntuple(path, 30, seed=8, change=change)
    return setup


def _huge_event_number(branches):
    """Unsigned 64-bit event numbers, the sixth past the largest signed one."""
    numbers = branches["evt"].astype(np.uint64)
    numbers[5] = np.uint64(2 ** 63 + 5)
    branches["evt"] = numbers


def _truncated(path):
    rootfiles.write_delphes(path, 200, seed=9)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


MAPPING = ["--format", "root-ntuple", "--root-mapping", "MAPPING"]

BAD = [
    ("missing tree", _delphes(), ["--tree", "Events"], r"bad\.root: no tree 'Events'; trees in the file: 'Delphes' \(TTree\)"),
    ("missing MissingET", _delphes(drop=("MissingET",)), [], r"bad\.root, tree 'Delphes': no branch 'MissingET\.MET'"),
    ("missing Jet", _delphes(drop=("Jet",)), ["--format", "delphes"], r"bad\.root, tree 'Delphes': no branch 'Jet\.PT'"),
    ("NaN", _delphes(change=_set("Jet.Eta", 17, np.nan)), [],
     r"bad\.root, entry 17, tree 'Delphes', branch 'Jet\.Eta': non-finite value nan"),
    ("negative pT", _delphes(change=_set("Muon.PT", 21, -5.0)), [],
     r"bad\.root, entry 2[1-9], tree 'Delphes', branch 'Muon\.PT': negative pT -5"),
    ("charge 0", _delphes(change=_set("Electron.Charge", 3, 0)), [],
     r"bad\.root, entry [3-9], tree 'Delphes', branch 'Electron\.Charge': charge 0"),
    ("two MET values", _delphes(change=_longer(4, "MissingET.MET", "MissingET.Phi")), [],
     r"bad\.root, entry 4, tree 'Delphes', branch 'MissingET\.MET': expected one value per entry, found 2"),
    ("mismatched counts", _ntuple(_longer(6, "mu_eta")), MAPPING,
     r"bad\.root, entry 6, tree 'events', branch 'mu_eta': \d+ values, but branch 'mu_pt' has \d+"),
    ("ntuple NaN MET", _ntuple(lambda b: b["met"].__setitem__(11, np.inf)), MAPPING,
     r"bad\.root, entry 11, tree 'events', branch 'met': non-finite value inf"),
    ("ntuple boolean MET", _ntuple(lambda b: b.__setitem__("met", b["met"] > 100)), MAPPING,
     r"bad\.root, entry 0, tree 'events', branch 'met': holds booleans, expected numbers"),
    ("ntuple half charge", _ntuple(lambda b: b.__setitem__("mu_q", b["mu_q"] * 0.5)), MAPPING,
     r"bad\.root, entry \d+, tree 'events', branch 'mu_q': charge -?0\.5 is not a whole number"),
    ("ntuple event number past int64", _ntuple(_huge_event_number), MAPPING,
     r"bad\.root, entry 5, tree 'events', branch 'evt': event number 9223372036854775813 does not fit"),
    ("ntuple without mapping", _ntuple(None), ["--format", "root-ntuple"], r"needs a branch mapping"),
    ("not ROOT", lambda p: p.write_text("event_id;process\n"), [], r"bad\.root: not a ROOT file"),
    ("truncated", _truncated, [], r"bad\.root: .*truncated or corrupt ROOT file"),
]


@pytest.mark.parametrize("setup, options, message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
@pytest.mark.parametrize("command", ["inspect", "convert"])
def test_bad_root_files_are_one_line_and_exit_2(setup, options, message, command, tmp_path, capsys):
    path = tmp_path / "bad.root"
    setup(path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump(rootfiles.NTUPLE_MAPPING))
    options = [str(mapping) if o == "MAPPING" else o for o in options]
    argv = ["data", "inspect", str(path)] if command == "inspect" else \
        ["data", "convert", str(path), str(tmp_path / "out.h5"), "--no-progress"]
    assert main(argv + options) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tfp-anomaly")]
    assert len(err) == 1 and err[0].startswith("tfp-anomaly: error: "), err
    assert __import__("re").search(message, err[0]), err[0]
    assert not (tmp_path / "out.h5").exists()


def test_errors_are_data_format_errors_with_their_location(tmp_path):
    path = tmp_path / "nan.root"
    _delphes(change=_set("Jet.PT", 5, np.nan))(path)
    with pytest.raises(DataFormatError) as err:
        read_delphes(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 5, "tree 'Delphes', branch 'Jet.PT'")


def test_bad_mapping_file_on_the_command_line(ntuple_file, tmp_path, capsys):
    path, _ = ntuple_file
    mapping = tmp_path / "m.yaml"
    mapping.write_text("objects: {j: {pt: jet_pt}}\n")
    assert main(["data", "inspect", str(path), "--format", "root-ntuple", "--root-mapping", str(mapping)]) == 2
    assert "m.yaml: mapping.objects.j: missing key eta" in capsys.readouterr().err
