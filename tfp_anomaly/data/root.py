"""Reader for ROOT files through uproot: Delphes trees and flat ntuples → :class:`~.events.Events`.

One reader, two formats. A :class:`TreeMapping` names the branches of each object type (pT, η, φ and
optionally energy or mass, charge, b-tag), of the missing transverse momentum, of the event weight and of
the event number; :func:`iter_root` streams the tree ``chunk_size`` entries at a time (uproot's
``iterate``: memory of one chunk) and converts each chunk's jagged arrays with awkward (``ak.num``,
``ak.flatten``), with no loop over events. TTrees are read, and RNTuples where uproot reads them.

**Delphes** (format ``delphes``; J. de Favereau et al., "DELPHES 3, a modular framework for fast
simulation of a generic collider experiment", JHEP 02 (2014) 057, arXiv:1307.6346). The tree ``Delphes``
(``tree=`` names another) holds one TClonesArray per object class, split into one branch per member
(``Jet/Jet.PT``, counted by ``Jet_size``); a branch is found by its full path or by its leaf name
(``Jet.PT``). The mapping :data:`DELPHES` reads:

=========  ==========================================================  =========================
class      branches                                                    objects
=========  ==========================================================  =========================
Jet        ``Jet.PT``, ``Jet.Eta``, ``Jet.Phi``, ``Jet.Mass``, ``Jet.BTag``  ``b`` when bit ``btag_bit``
                                                                       (default 0) of BTag is set,
                                                                       else ``j``
Electron   ``Electron.PT``, ``.Eta``, ``.Phi``, ``.Charge``                ``e-`` / ``e+`` by charge
Muon       ``Muon.PT``, ``.Eta``, ``.Phi``, ``.Charge``                    ``m-`` / ``m+`` by charge
Photon     ``Photon.PT``, ``.Eta``, ``.Phi``, ``Photon.E`` if present       ``g``
MissingET  ``MissingET.MET``, ``MissingET.Phi`` (one per event)           MET and its φ
Event      ``Event.Number``, ``Event.Weight`` (one per event), if present  event id (else the entry
                                                                       number), weight (else 1)
=========  ==========================================================  =========================

A file without the Electron, Muon or Photon branches has no objects of that type (logged at info); one
without the Jet or MissingET branches is an error naming the file, the tree and the branch.

**Flat ntuples** (format ``root-ntuple``): the user's mapping (:func:`parse_mapping`), e.g.::

    tree: events                  # optional when the file holds one tree
    objects:                      # object code (tfp_anomaly.data.objects) -> its branches
      j: {pt: jet_pt, eta: jet_eta, phi: jet_phi, e: jet_e, btag: jet_btag}
      m: {pt: mu_pt, eta: mu_eta, phi: mu_phi, charge: mu_charge}
    met: {met: met, phi: met_phi} # optional: MET 0 without it
    weight: w                     # optional: 1 without it
    event_id: evt                 # optional: the entry number without it
    unit: GeV                     # of the file's energies and momenta (GeV or MeV)
    btag_bit: 0                   # the bit of the btag branch that makes a jet a b-jet

Object branches are jagged (one value per object) or flat (one object per entry); those of one object
type must have the same counts in every entry. A ``charge`` branch turns ``e``/``m`` into ``e-``/``e+``,
``m-``/``m+`` by its sign; a ``btag`` branch (an integer bit mask or a boolean) turns ``j`` into ``b``. An
ntuple has no standard layout, so ``root-ntuple`` is never detected from the file: name it (``data.format:
root-ntuple`` with ``data.root``, or ``--format root-ntuple --root-mapping FILE.yaml``).

**Energies** (both formats, GeV unless the mapping's ``unit`` says MeV): the ``e`` branch where one is
mapped; else with a ``mass`` branch E = sqrt(pT² cosh² η + m²) (Delphes jets); else massless,
E = pT cosh η (Delphes electrons and muons, photons without ``Photon.E``).

**Errors** (:class:`~.errors.DataFormatError`, naming the file, and the tree, branch and entry where
there is one): not a ROOT file, truncated or corrupt; no such tree (the trees present are listed); a
missing branch; branches of one object type with different counts; a non-finite value; a negative pT or
MET; a lepton of charge 0; a b-tag branch that is not integer; a per-event branch with other than one
value per entry.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import struct
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np

from . import objects
from .errors import DataFormatError, check_file
from .events import UNITS, Events, concatenate

log = logging.getLogger(__name__)

#: the first bytes of every ROOT file
SIGNATURE = b"root"
#: the kinds of tree read (uproot's class names)
TREE_CLASSES = ("TTree", "ROOT::RNTuple")
#: the branches an object type maps: (pt, eta, phi) required, the others optional
REQUIRED_FEATURES = ("pt", "eta", "phi")
OPTIONAL_FEATURES = ("e", "mass", "charge", "btag")
#: keys of a mapping (``data.root``, ``--root-mapping``)
MAPPING_KEYS = ("tree", "btag_bit", "objects", "met", "weight", "event_id", "unit")
#: the keys of a mapping that only the ``root-ntuple`` format takes (Delphes branches are fixed)
NTUPLE_KEYS = ("objects", "met", "weight", "event_id", "unit")
#: object code -> (its code with negative charge, with positive charge): what a ``charge`` branch splits
CHARGED = {"e": ("e-", "e+"), "m": ("m-", "m+")}
#: object code -> the code of its tagged objects: what a ``btag`` branch splits
TAGGED = {"j": "b"}

#: the Delphes branches read (see the module); :data:`DELPHES_OPTIONAL` those a file may lack
DELPHES = {
    "tree": "Delphes",
    "objects": {
        "j": {"pt": "Jet.PT", "eta": "Jet.Eta", "phi": "Jet.Phi", "mass": "Jet.Mass", "btag": "Jet.BTag"},
        "e": {"pt": "Electron.PT", "eta": "Electron.Eta", "phi": "Electron.Phi", "charge": "Electron.Charge"},
        "m": {"pt": "Muon.PT", "eta": "Muon.Eta", "phi": "Muon.Phi", "charge": "Muon.Charge"},
        "g": {"pt": "Photon.PT", "eta": "Photon.Eta", "phi": "Photon.Phi", "e": "Photon.E"},
    },
    "met": {"met": "MissingET.MET", "phi": "MissingET.Phi"},
    "weight": "Event.Weight",
    "event_id": "Event.Number",
}
#: Delphes object classes (by code) a file may lack, per-object branches read only where present, and
#: per-event keys read only where present
DELPHES_OPTIONAL = {"objects": {"e": "Electron", "m": "Muon", "g": "Photon"}, "features": {("g", "e")},
                    "events": ("weight", "event_id")}

#: what uproot raises on a truncated or damaged file (besides its DeserializationError)
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zlib.error, struct.error)


# --------------------------------------------------------------------------- the mapping
@dataclasses.dataclass(frozen=True)
class ObjectBranches:
    """The branches of one object type.

    Args:
        code: the object code (:mod:`.objects`); with ``charge`` ``e`` or ``m`` (split by charge), with
            ``btag`` ``j`` (split into ``j`` and ``b``).
        pt, eta, phi: branch names of pT, η, φ.
        e: branch of the energy; ``mass``: branch of the mass (E = sqrt(pT² cosh² η + m²)); neither:
            massless, E = pT cosh η.
        charge: branch of the electric charge (its sign is used).
        btag: branch of the b-tag bit mask (bit ``btag_bit`` of :class:`TreeMapping`).
    """

    code: str
    pt: str
    eta: str
    phi: str
    e: str | None = None
    mass: str | None = None
    charge: str | None = None
    btag: str | None = None

    @property
    def branches(self) -> dict:
        """feature -> branch name, for the features mapped."""
        return {f: getattr(self, f) for f in REQUIRED_FEATURES + OPTIONAL_FEATURES if getattr(self, f)}


@dataclasses.dataclass(frozen=True)
class TreeMapping:
    """Which branches of which tree :func:`iter_root` reads (see the module for the keys).

    Args:
        tree: the tree's name; None: the file's only tree.
        objects: one :class:`ObjectBranches` per object type.
        met, met_phi: branches of MET and its φ (None: MET 0).
        weight: branch of the event weight (None: 1).
        event_id: branch of the event number (None: the entry number).
        unit: unit of the file's energies and momenta, ``"GeV"`` or ``"MeV"``.
        btag_bit: the bit of a ``btag`` branch that marks a b-jet.
    """

    tree: str | None
    objects: tuple
    met: str | None = None
    met_phi: str | None = None
    weight: str | None = None
    event_id: str | None = None
    unit: str = "GeV"
    btag_bit: int = 0

    def branches(self) -> list[str]:
        """Every branch name read, once each, in mapping order."""
        names = [b for ob in self.objects for b in ob.branches.values()]
        names += [b for b in (self.met, self.met_phi, self.weight, self.event_id) if b]
        return list(dict.fromkeys(names))


def _text(value, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{where} = {value!r}: expected a branch name")
    return value


def _object_branches(code, spec, where: str) -> ObjectBranches:
    if code not in objects.BY_CODE:
        raise ValueError(f"{where}: unknown object code {code!r}; known codes: {', '.join(objects.BY_CODE)}")
    if not isinstance(spec, dict):
        raise ValueError(f"{where}.{code} = {spec!r}: expected a mapping of features to branch names")
    unknown = sorted(set(spec) - set(REQUIRED_FEATURES + OPTIONAL_FEATURES))
    missing = [f for f in REQUIRED_FEATURES if f not in spec]
    if unknown or missing:
        raise ValueError(f"{where}.{code}: " + (f"unknown key {unknown[0]!r}" if unknown else f"missing {missing[0]!r}")
                         + f" (keys: {', '.join(REQUIRED_FEATURES)} required; {', '.join(OPTIONAL_FEATURES)} optional)")
    if "e" in spec and "mass" in spec:
        raise ValueError(f"{where}.{code}: give the energy (e) or the mass (mass), not both")
    for feature, splits in (("charge", CHARGED), ("btag", TAGGED)):
        if feature in spec and code not in splits:
            into = ", ".join(f"{c} into {'/'.join(v) if isinstance(v, tuple) else c + '/' + v}" for c, v in splits.items())
            raise ValueError(f"{where}.{code}.{feature}: a {feature} branch applies to object code(s) "
                             f"{', '.join(splits)} only (it splits {into})")
    return ObjectBranches(code, **{f: _text(b, f"{where}.{code}.{f}") for f, b in spec.items()})


def parse_mapping(spec: dict, where: str = "mapping") -> TreeMapping:
    """A :class:`TreeMapping` from a mapping with the keys :data:`MAPPING_KEYS` (``data.root``); a
    ``ValueError`` naming ``where`` and the key for anything it cannot read."""
    if not isinstance(spec, dict):
        raise ValueError(f"{where} = {spec!r}: expected a mapping with keys {', '.join(MAPPING_KEYS)}")
    unknown = sorted(set(spec) - set(MAPPING_KEYS), key=str)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}; keys: {', '.join(MAPPING_KEYS)}")
    found = spec.get("objects")
    if not found or not isinstance(found, dict):
        raise ValueError(f"{where}.objects: the root-ntuple format needs a branch mapping: object code -> "
                         "{pt, eta, phi, ...} (data.root.objects in a configuration, --root-mapping FILE.yaml "
                         "on the command line)")
    met = spec.get("met") or {}
    if not isinstance(met, dict) or (met and set(met) != {"met", "phi"}):
        raise ValueError(f"{where}.met = {met!r}: expected a mapping {{met: BRANCH, phi: BRANCH}}")
    unit, bit = spec.get("unit") or "GeV", spec.get("btag_bit") or 0
    if unit not in UNITS:
        raise ValueError(f"{where}.unit = {unit!r}: expected one of {', '.join(UNITS)}")
    if isinstance(bit, bool) or not isinstance(bit, int) or not 0 <= bit <= 63:
        raise ValueError(f"{where}.btag_bit = {bit!r}: expected a whole number from 0 to 63")
    single = {k: _text(spec[k], f"{where}.{k}") if spec.get(k) is not None else None
              for k in ("tree", "weight", "event_id")}
    return TreeMapping(objects=tuple(_object_branches(c, s, f"{where}.objects") for c, s in found.items()),
                       met=_text(met["met"], f"{where}.met.met") if met else None,
                       met_phi=_text(met["phi"], f"{where}.met.phi") if met else None,
                       unit=unit, btag_bit=bit, **single)


def _ntuple_keys_given(options: dict) -> list[str]:
    return [k for k in NTUPLE_KEYS if options.get(k) is not None]


def _delphes_refuses(given: list, where: str) -> ValueError:
    return ValueError(f"{where}: {', '.join(given)}: read as a Delphes tree, whose branches are fixed (options: "
                      "tree, btag_bit); a branch mapping belongs to the root-ntuple format: name it "
                      "(data.format: root-ntuple, --format root-ntuple)")


def check_options(options: dict, format_name: str = "auto", where: str = "data.root") -> None:
    """Check the ROOT options ``options`` (``data.root``) for files of ``format_name`` (``auto``:
    either ROOT format) before any file is read: a ``root-ntuple`` needs a complete branch mapping
    (:func:`parse_mapping`); a mapping given under ``auto`` must be complete; ``delphes`` takes none."""
    given = _ntuple_keys_given(options)
    if format_name == "delphes" and given:
        raise _delphes_refuses(given, where)
    if format_name == "root-ntuple" or given:
        parse_mapping(options, where)
    else:
        parse_mapping({**options, "objects": DELPHES["objects"]}, where)  # tree and btag_bit checked


def delphes_mapping(present, tree: str = "Delphes", btag_bit: int = 0, source=None) -> TreeMapping:
    """The :data:`DELPHES` mapping for a tree whose branch names (full paths and leaf names) are
    ``present``: the optional classes and branches it lacks left out (logged at info, naming ``source``)."""
    spec = {"objects": {}, "met": DELPHES["met"], "tree": tree, "btag_bit": btag_bit}
    for code, branches in DELPHES["objects"].items():
        name = DELPHES_OPTIONAL["objects"].get(code)
        if name and branches["pt"] not in present:
            log.info("%s: tree %r has no %s branches: no objects of type %r", source, tree, name, code)
            continue
        spec["objects"][code] = {f: b for f, b in branches.items()
                                 if (code, f) not in DELPHES_OPTIONAL["features"] or b in present}
    spec.update({key: DELPHES[key] for key in DELPHES_OPTIONAL["events"] if DELPHES[key] in present})
    return parse_mapping(spec, "delphes")


# --------------------------------------------------------------------------- the file
@dataclasses.dataclass(frozen=True)
class _Where:
    """A file and tree, to name in errors."""

    path: Path
    tree: str

    def error(self, reason: str, branch: str | None = None, entry: int | None = None) -> DataFormatError:
        field = f"tree {self.tree!r}" + (f", branch {branch!r}" if branch else "")
        return DataFormatError(self.path, reason, entry, field, where="entry")


def _check_signature(path: Path) -> None:
    with open(path, "rb") as handle:
        start = handle.read(len(SIGNATURE))
    if start != SIGNATURE:
        raise DataFormatError(path, f"not a ROOT file (it starts with {start!r}, not the ROOT signature "
                                    f"{SIGNATURE!r})")


def _one_line(error: BaseException, path, limit: int = 200) -> str:
    """uproot's message (several lines) on one line without the file's path, at most ``limit`` characters."""
    text = " ".join(str(error).replace(f"for file path {path}", "").split()) or type(error).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _damaged(path, error: BaseException, what: str) -> DataFormatError:
    return DataFormatError(path, f"cannot read {what}: truncated or corrupt ROOT file ({_one_line(error, Path(path).absolute())})")


@contextlib.contextmanager
def open_root(path):
    """``uproot.open(path)`` as a context manager, after checking the file is ROOT; a file uproot cannot
    open raises :class:`DataFormatError` naming it."""
    import uproot

    path = check_file(path, "ROOT file")
    _check_signature(path)
    try:
        handle = uproot.open(path)
    except (*_READ_ERRORS, uproot.deserialization.DeserializationError) as err:
        raise _damaged(path, err, "its directory") from None
    with handle:
        yield handle


def trees(handle) -> dict:
    """``{name: class}`` of the trees (TTrees, RNTuples) of an open ROOT file."""
    return {name: cls for name, cls in handle.classnames(cycle=False).items() if cls in TREE_CLASSES}


def _tree(handle, path: Path, name: str | None):
    """The tree ``name`` of ``handle`` (the file's only tree for None)."""
    import uproot

    found = trees(handle)
    listing = ", ".join(f"{n!r} ({c})" for n, c in found.items()) or "none"
    if name is None:
        if len(found) != 1:
            raise DataFormatError(path, f"holds {len(found)} trees ({listing}); name the one to read "
                                        "(tree: NAME in the mapping, --tree)")
        name = next(iter(found))
    if name not in found:
        raise DataFormatError(path, f"no tree {name!r}; trees in the file: {listing}")
    try:
        return name, handle[name]
    except (*_READ_ERRORS, uproot.deserialization.DeserializationError) as err:
        raise _damaged(path, err, f"tree {name!r}") from None


def branch_index(tree) -> dict:
    """branch name -> full path, for every branch of ``tree`` by its full path (``Jet/Jet.PT``) and,
    where unambiguous, its leaf name (``Jet.PT``)."""
    full = list(tree.keys())
    leaves = [name.rsplit("/", 1)[-1] for name in full]
    counts = collections.Counter(leaves)
    unique = {leaf: name for leaf, name in zip(leaves, full) if counts[leaf] == 1}
    return {**unique, **{name: name for name in full}}


def _resolve(where: _Where, index: dict, mapping: TreeMapping) -> dict:
    """branch name -> full path of every branch of ``mapping``; a missing one raises naming it."""
    for name in mapping.branches():
        if name not in index:
            shown = sorted({p for p in index.values() if "/" not in p or p.count("/") == 1})
            raise where.error(f"no branch {name!r}; branches: {', '.join(shown[:20])}{' ...' if len(shown) > 20 else ''}")
    return {name: index[name] for name in mapping.branches()}


# --------------------------------------------------------------------------- one chunk
def _numbers(where: _Where, array, branch: str, first: int):
    """``(counts, values)`` of one branch's chunk: per-entry counts and the flat numpy values (a flat
    branch has one value per entry)."""
    import awkward as ak

    try:
        if array.ndim == 1:
            return np.ones(len(array), np.int64), ak.to_numpy(array)
        if array.ndim == 2:
            return ak.to_numpy(ak.num(array, axis=1)).astype(np.int64), ak.to_numpy(ak.flatten(array, axis=1))
    except (ValueError, TypeError, AttributeError):
        pass
    raise where.error(f"holds {ak.type(array)}, not numbers (one per entry, or a list per entry)", branch, first)


def _entry(counts: np.ndarray, flat_index: int, first: int) -> int:
    """The entry of value ``flat_index`` of a flattened branch."""
    return first + int(np.searchsorted(np.cumsum(counts), flat_index, side="right"))


def _finite(where: _Where, values: np.ndarray, counts, branch: str, first: int) -> np.ndarray:
    """``values`` as float64, refused when boolean (a flag is not a momentum, an angle or a weight) or not finite."""
    if values.dtype.kind == "b":
        raise where.error("holds booleans, expected numbers", branch, first)
    values = values.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        raise where.error(f"non-finite value {values[bad[0]]}", branch, _entry(counts, bad[0], first))
    return values


def _per_event(where: _Where, array, branch: str, first: int) -> np.ndarray:
    """One value per entry (a flat branch, or a list of exactly one per entry, as Delphes stores MET)."""
    counts, values = _numbers(where, array, branch, first)
    wrong = np.flatnonzero(counts != 1)
    if len(wrong):
        raise where.error(f"expected one value per entry, found {counts[wrong[0]]}", branch, first + int(wrong[0]))
    return values


@dataclasses.dataclass
class _Block:
    """The objects of one mapped type in one chunk: per-entry ``counts`` and flat columns."""

    counts: np.ndarray
    obj_type: np.ndarray
    e: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray


def _energy(values: dict) -> np.ndarray:
    """E from the ``e`` branch, else from pT, η and the mass, else massless (see the module)."""
    if "e" in values:
        return values["e"]
    p = values["pt"] * np.cosh(values["eta"])
    return np.sqrt(p ** 2 + values["mass"] ** 2) if "mass" in values else p


def _type_ids(where: _Where, ob: ObjectBranches, charge, tag, counts, first: int, bit: int) -> np.ndarray:
    """Object type ids: ``ob.code``, split by the sign of ``charge`` or by bit ``bit`` of ``tag``."""
    ids = np.full(int(counts.sum()), objects.type_id(ob.code), np.int8)
    if ob.charge:
        odd = np.flatnonzero(charge != np.round(charge))
        if len(odd):
            raise where.error(f"charge {charge[odd[0]]} is not a whole number", ob.charge,
                              _entry(counts, odd[0], first))
        sign = np.sign(charge)
        zero = np.flatnonzero(sign == 0)
        if len(zero):
            raise where.error("charge 0 for a charged lepton", ob.charge, _entry(counts, zero[0], first))
        negative, positive = (objects.type_id(c) for c in CHARGED[ob.code])
        ids = np.where(sign < 0, negative, positive).astype(np.int8)
    if ob.btag:
        if tag.dtype.kind not in "biu":
            raise where.error(f"b-tag values of type {tag.dtype}: expected an integer bit mask or a boolean",
                              ob.btag, first)
        tagged = (tag.astype(np.uint64) >> np.uint64(bit)) & np.uint64(1)
        ids = np.where(tagged.astype(bool), objects.type_id(TAGGED[ob.code]), ids).astype(np.int8)
    return ids


def _block(where: _Where, ob: ObjectBranches, arrays: dict, paths: dict, first: int, bit: int) -> _Block:
    raw, counts = {}, None
    for feature, branch in ob.branches.items():
        n, raw[feature] = _numbers(where, arrays[paths[branch]], branch, first)
        if counts is None:
            counts = n
        elif not np.array_equal(n, counts):
            k = int(np.flatnonzero(n != counts)[0])
            raise where.error(f"{n[k]} values, but branch {ob.pt!r} has {counts[k]} (the branches of object "
                              f"type {ob.code!r} must have equal counts)", branch, first + k)
    values = {f: _finite(where, v, counts, ob.branches[f], first) for f, v in raw.items() if f != "btag"}
    negative = np.flatnonzero(values["pt"] < 0)
    if len(negative):
        raise where.error(f"negative pT {values['pt'][negative[0]]}", ob.pt, _entry(counts, negative[0], first))
    ids = _type_ids(where, ob, values.get("charge"), raw.get("btag"), counts, first, bit)
    return _Block(counts, ids, _energy(values), values["pt"], values["eta"], values["phi"])


def _interleave(blocks: list, n: int) -> dict:
    """The flat object columns of all blocks, each event's objects together (block by block within it)."""
    total = sum((b.counts for b in blocks), np.zeros(n, np.int64))
    offsets = np.concatenate([[0], np.cumsum(total)])
    columns = {name: np.empty(int(offsets[-1]), dtype) for name, dtype in
               (("obj_type", np.int8), ("obj_e", np.float64), ("obj_pt", np.float64), ("obj_eta", np.float64),
                ("obj_phi", np.float64))}
    before = offsets[:-1].copy()
    for b in blocks:
        starts = np.concatenate([[0], np.cumsum(b.counts)[:-1]])
        position = np.repeat(before - starts, b.counts) + np.arange(len(b.pt))
        for name, values in (("obj_type", b.obj_type), ("obj_e", b.e), ("obj_pt", b.pt), ("obj_eta", b.eta),
                             ("obj_phi", b.phi)):
            columns[name][position] = values
        before += b.counts
    return dict(columns, offsets=offsets)


def _event_id(where: _Where, branch: str | None, arrays: dict, paths: dict, n: int, first: int) -> np.ndarray:
    """Event numbers: an integer branch as it is (no float rounding of 64-bit numbers), else the entry number."""
    if branch is None:
        return np.arange(first, first + n)
    values = _per_event(where, arrays[paths[branch]], branch, first)
    if values.dtype.kind not in "iu":
        values = _finite(where, values, np.ones(n), branch, first)
        odd = np.flatnonzero(values != np.round(values))
        if len(odd):
            raise where.error(f"event number {values[odd[0]]} is not an integer", branch, first + int(odd[0]))
    if values.dtype.kind == "u":
        huge = np.flatnonzero(values > np.iinfo(np.int64).max)
        if len(huge):  # Events.event_id is int64: refuse rather than wrap to a negative number
            raise where.error(f"event number {values[huge[0]]} does not fit a signed 64-bit integer", branch,
                              first + int(huge[0]))
    return values.astype(np.int64)


def _event_columns(where: _Where, mapping: TreeMapping, arrays: dict, paths: dict, n: int, first: int) -> dict:
    def column(branch, default):
        if branch is None:
            return default
        return _finite(where, _per_event(where, arrays[paths[branch]], branch, first), np.ones(n), branch, first)

    met = column(mapping.met, np.zeros(n))
    bad = np.flatnonzero(met < 0)
    if len(bad):
        raise where.error(f"negative MET {met[bad[0]]}", mapping.met, first + int(bad[0]))
    return {"met": met, "met_phi": column(mapping.met_phi, np.zeros(n)), "weight": column(mapping.weight, np.ones(n)),
            "event_id": _event_id(where, mapping.event_id, arrays, paths, n, first)}


def _to_events(where: _Where, mapping: TreeMapping, arrays: dict, paths: dict, first: int, n: int,
               label, format_name: str) -> Events:
    blocks = [_block(where, ob, arrays, paths, first, mapping.btag_bit) for ob in mapping.objects]
    return Events(**_event_columns(where, mapping, arrays, paths, n, first), process=np.zeros(n),
                  processes=(where.path.stem,), **_interleave(blocks, n),
                  labels=None if label is None else np.full(n, label), unit=mapping.unit,
                  meta={"source": str(where.path), "format": format_name, "tree": where.tree})


# --------------------------------------------------------------------------- readers
def _stream(path, tree: str | None, build, chunk_size: int, label, format_name: str) -> Iterator[Events]:
    """Stream the tree ``tree`` of ``path`` with the mapping ``build(branch index, tree name, path)`` gives."""
    import uproot

    path = Path(path)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    with open_root(path) as handle:
        name, found = _tree(handle, path, tree)
        where, index = _Where(path, name), branch_index(found)
        mapping = build(index, name, path)
        paths = _resolve(where, index, mapping)
        chunks = found.iterate(list(dict.fromkeys(paths.values())), step_size=chunk_size, library="ak", how=dict)
        first = 0
        while True:
            try:
                arrays = next(chunks)
            except StopIteration:
                return
            except (*_READ_ERRORS, uproot.deserialization.DeserializationError) as err:
                raise _damaged(path, err, f"tree {name!r} from entry {first}") from None
            n = len(next(iter(arrays.values())))
            yield _to_events(where, mapping, arrays, paths, first, n, label, format_name)
            first += n


def iter_root(path, mapping: TreeMapping, chunk_size: int = 100_000, *, label: int | None = None,
              format_name: str = "root-ntuple") -> Iterator[Events]:
    """Stream the tree of ``mapping`` in ``path`` as :class:`Events` of at most ``chunk_size`` entries
    (one event per entry, in ``mapping.unit``); ``label`` (0 or 1) gives every event that truth label.
    Malformed content raises :class:`DataFormatError` (see the module)."""
    return _stream(path, mapping.tree, lambda *_: mapping, chunk_size, label, format_name)


def iter_delphes(path, chunk_size: int = 100_000, *, tree: str | None = None, btag_bit: int = 0,
                 label: int | None = None, objects=None, met=None, weight=None, event_id=None,
                 unit=None) -> Iterator[Events]:
    """Stream a Delphes ROOT file (de Favereau et al., JHEP 02 (2014) 057, arXiv:1307.6346) in chunks of
    ``chunk_size`` events, in GeV: the branches of :data:`DELPHES` in the tree ``tree`` (default
    the file's Delphes tree, :func:`delphes_tree`: ``Delphes``, or the first with a ``Jet.PT`` branch), jets with bit ``btag_bit`` of ``Jet.BTag`` set as b-jets (see the module).

    The other keys of a mapping (``objects``, ``met``, ``weight``, ``event_id``, ``unit``) belong to the
    ``root-ntuple`` format: given a value here they raise ``ValueError``."""
    given = _ntuple_keys_given(dict(objects=objects, met=met, weight=weight, event_id=event_id, unit=unit))
    if given:
        raise _delphes_refuses(given, str(path))

    def build(index, name, source):
        return delphes_mapping(index, name, btag_bit, source)

    # no tree named: the one the format was recognised by (a Delphes tree under another name)
    return _stream(path, tree or delphes_tree(path) or DELPHES["tree"], build, chunk_size, label, "delphes")


def iter_root_ntuple(path, chunk_size: int = 100_000, *, label: int | None = None, **mapping) -> Iterator[Events]:
    """Stream a flat ROOT ntuple in chunks of ``chunk_size`` events, its branches named by ``mapping``
    (the keys :data:`MAPPING_KEYS`: ``tree``, ``objects``, ``met``, ``weight``, ``event_id``, ``unit``,
    ``btag_bit``; see :func:`parse_mapping` and the module)."""
    return iter_root(path, parse_mapping(mapping, "root-ntuple mapping"), chunk_size, label=label)


def _read(chunks, unit: str, label) -> Events:
    parts = list(chunks)
    return concatenate(parts) if parts else Events.empty(unit=unit, with_label=label is not None)


def read_delphes(path, *, tree: str | None = None, btag_bit: int = 0, label: int | None = None) -> Events:
    """Read a whole Delphes ROOT file (:func:`iter_delphes`) into one :class:`Events`."""
    return _read(iter_delphes(path, tree=tree, btag_bit=btag_bit, label=label), "GeV", label)


def read_root_ntuple(path, *, label: int | None = None, **mapping) -> Events:
    """Read a whole flat ROOT ntuple (:func:`iter_root_ntuple`) into one :class:`Events`."""
    return _read(iter_root_ntuple(path, label=label, **mapping), mapping.get("unit") or "GeV", label)


# --------------------------------------------------------------------------- recognising files
def is_root_name(path) -> bool:
    """Whether ``path`` is named like a ROOT file (``.root``)."""
    return Path(path).suffix.lower() == ".root"


def delphes_tree(path) -> str | None:
    """The Delphes tree of a ``.root`` file: the tree named ``Delphes``, else the first tree with a
    ``Jet.PT`` branch; None when there is none or the file cannot be read (never raises)."""
    if not is_root_name(path):
        return None
    try:
        with open_root(path) as handle:
            found = trees(handle)
            if DELPHES["tree"] in found:
                return DELPHES["tree"]
            return next((name for name in found if DELPHES["objects"]["j"]["pt"] in branch_index(handle[name])), None)
    except Exception:  # noqa: BLE001 (a sniff must not raise: any unreadable file is simply not Delphes)
        return None


def is_delphes(path) -> bool:
    """Whether ``path`` is a ``.root`` file with a Delphes tree (:func:`delphes_tree`; the sniff of the
    ``delphes`` format; never raises)."""
    return delphes_tree(path) is not None


def unrecognised(path) -> DataFormatError:
    """The error for a ``.root`` file that is not Delphes: what it holds, and how to read it."""
    with open_root(path) as handle:  # raises for a file that is not ROOT, truncated or corrupt
        listing = ", ".join(f"{n!r} ({c})" for n, c in trees(handle).items()) or "no tree"
    return DataFormatError(path, f"ROOT file without a Delphes tree (it holds {listing}): for a flat ntuple name "
                                 "the format root-ntuple and map its branches (data.format: root-ntuple with "
                                 "data.root, or --format root-ntuple --root-mapping FILE.yaml)")


__all__ = ["TreeMapping", "ObjectBranches", "DELPHES", "parse_mapping", "delphes_mapping", "iter_root",
           "iter_delphes", "iter_root_ntuple", "read_delphes", "read_root_ntuple", "delphes_tree", "is_delphes", "open_root",
           "trees", "branch_index"]
