"""Awkward Array interchange: :class:`~.events.Events` ⇄ an ``ak.Array`` of event records.

The layout of :func:`to_awkward` (N events, M objects in all)::

    N * {event_id: int64, process: categorical[string], weight: float64, met: float32, met_phi: float32,
         [label: int8,]  objects: var * Momentum4D[code: categorical[string], pt, eta, phi, E: float32]}

with the parameters ``{"unit": "GeV" | "MeV", "processes": [...], "meta": {...}}`` on the event records
(``processes`` is :attr:`Events.processes`, the process table, kept there too because awkward's
serialisation, ``ak.to_buffers`` / ``ak.to_parquet``, drops the categories no event uses). ``label`` is there
for labelled events only (1 = signal). The objects of event ``i`` are ``array.objects[i]``; their
offsets into the flat object columns are :attr:`Events.offsets` itself (``ak.num(array.objects)`` is
:attr:`Events.n_objects`), and nothing is copied but the two small string tables.

Why these names: ``pt, eta, phi, E`` under the record name ``Momentum4D`` are the field names the
scikit-hep ``vector`` library recognises, so after ``vector.register_awkward()`` the objects are Lorentz
vectors (``(jets[:, 0] + jets[:, 1]).mass`` is m_jj, ``.deltaR``, boosts, ...). The toolkit does not
need ``vector``: without it the name is an inert parameter. ``E`` (capital) is also the name of the
energy feature of the object grid (:data:`~.representation.FEATURES`). ``code`` is the object code of
:mod:`~.objects` (``"j"``, ``"b"``, ``"e-"``, ...); it is not called ``type`` because ``array.type`` is
awkward's own attribute (the array's data type), so ``objects.type`` would not reach a field of that
name (``objects["type"]`` would). ``process`` and ``code`` are
*categorical* string arrays (an index into a table of names, as :attr:`Events.process` indexes
:attr:`Events.processes`): they compare as strings (``array[array.process == "ttbar"]``,
``objects[objects.code == "j"]``) yet take four bytes per event or object, and they carry the process
table through the round trip exactly.

:func:`from_awkward` reads this layout back exactly (dtypes, offsets, process table and codes, labels,
unit), and also arrays a user built (``ak.zip`` of their own columns, any numeric dtypes): ``weight``
defaults to 1, ``process`` to ``"unknown"``, ``event_id`` to 0…N−1; the object code (``code`` or
``type``) may be strings,
categorical strings or the integer type ids of :mod:`~.objects`; the energy may be named ``E``, ``e``,
``energy`` or ``t``, or be given by a mass (``mass``, ``m`` or ``M``: E = √(m² + (pT cosh η)²)); the
unit is the ``unit`` parameter or the ``unit=`` argument. Slicing (``array[mask]``) keeps the
parameters; selecting fields (``array[["met"]]``) drops them: pass ``unit=`` then.

Awkward (a dependency of the toolkit, as for the ROOT readers) is imported when first needed.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING, Mapping

import numpy as np

from . import objects
from .events import UNITS, Events

if TYPE_CHECKING:
    import awkward as ak

#: the record name of the objects: the four-vectors of the ``vector`` library (pt, eta, phi, E)
OBJECT_RECORD = "Momentum4D"
#: object fields read back, each from the first of its accepted names present (the energy, or else a mass)
OBJECT_ALIASES = {"code": ("code", "type"), "pt": ("pt",), "eta": ("eta",), "phi": ("phi",),
                  "E": ("E", "e", "energy", "t"), "mass": ("mass", "m", "M")}


def _awkward():
    import awkward  # a dependency of the toolkit (install_requires), imported on first use

    return awkward


# --------------------------------------------------------------------------- Events -> awkward
def categorical(codes: np.ndarray, names) -> ak.Array:
    """A categorical string array: ``names[codes[i]]`` for each i, stored as the int32 ``codes`` into the
    table ``names`` (an awkward ``IndexedArray`` with ``__array__ = "categorical"``)."""
    ak = _awkward()
    table = ak.to_layout(ak.from_numpy(np.asarray(list(names), dtype=str)))
    index = ak.index.Index32(np.ascontiguousarray(codes, np.int32))
    return ak.Array(ak.contents.IndexedArray(index, table, parameters={"__array__": "categorical"}))


def _json_meta(meta: dict) -> dict:
    """The entries of ``meta`` that JSON can hold (as JSON reads them back); the others are left out."""
    kept = {}
    for key, value in meta.items():
        try:
            kept[str(key)] = json.loads(json.dumps(value))
        except (TypeError, ValueError):
            continue
    return kept


def to_awkward(events: Events) -> ak.Array:
    """``events`` as an awkward array of event records (the module docstring's layout).

    The objects are ``ak.unflatten`` of the flat record of (``obj_type``, ``obj_pt``, ``obj_eta``,
    ``obj_phi``, ``obj_e``) by ``n_objects``; the kinematic columns are wrapped, not copied."""
    ak = _awkward()
    flat = ak.zip({"code": categorical(events.obj_type, objects.available()), "pt": events.obj_pt,
                   "eta": events.obj_eta, "phi": events.obj_phi, "E": events.obj_e}, with_name=OBJECT_RECORD)
    fields = {"event_id": events.event_id, "process": categorical(events.process, events.processes),
              "weight": events.weight, "met": events.met, "met_phi": events.met_phi}
    if events.labels is not None:
        fields["label"] = events.labels
    fields["objects"] = ak.unflatten(flat, events.n_objects)
    array = ak.zip(fields, depth_limit=1)
    for name, value in {"unit": events.unit, "processes": list(events.processes),
                        "meta": _json_meta(events.meta)}.items():
        array = ak.with_parameter(array, name, value)
    return array


def with_scores(array, scores: Mapping[str, np.ndarray], field: str = "scores") -> ak.Array:
    """``array`` (N event records) with a record field ``field`` holding one (N,) column per score:
    ``with_scores(array, {"mse": s1, "kl": s2}).scores.mse``. Scores already in ``field`` are kept
    unless named again. The event records keep their parameters (unit, meta); :func:`from_awkward`
    ignores the field. (One column alone: ``ak.with_field(array, values, "score")``.)"""
    ak = _awkward()
    columns = {}
    if field in ak.fields(array):
        columns = {name: array[field, name] for name in ak.fields(array[field])}
    for name, values in scores.items():
        values = np.asarray(values)
        if values.shape != (len(array),):
            raise ValueError(f"score {name!r} has shape {values.shape}, expected ({len(array)},): one per event")
        columns[str(name)] = values
    return ak.with_field(array, ak.zip(columns, depth_limit=1), field)


# --------------------------------------------------------------------------- awkward -> Events
def _parameters(layout) -> dict:
    """The parameters of the event records: those of ``layout``, or of the records an ``IndexedArray``
    (what slicing with a mask or an index makes) points into."""
    while not layout.parameters and layout.is_indexed and not layout.is_option:
        layout = layout.content
    return dict(layout.parameters)


def _describe(ak, array) -> str:
    return str(ak.type(array)).replace("\n", " ")[:200]


def _numbers(ak, array, field: str) -> np.ndarray:
    """A numeric column of one value per entry as numpy; a ValueError naming ``field`` otherwise."""
    try:
        values = ak.to_numpy(array, allow_missing=False)
    except (ValueError, TypeError):
        raise ValueError(f"field {field!r}: expected one number per entry (none missing), got "
                         f"{_describe(ak, array)}") from None
    if values.ndim != 1 or values.dtype.kind not in "biuf":
        raise ValueError(f"field {field!r}: expected one number per entry, got {_describe(ak, array)}")
    return values


def _names_and_codes(ak, array, field: str) -> tuple[list[str], np.ndarray]:
    """``(table, codes)`` of a string column (categorical or plain): ``array[i] == table[codes[i]]``. A
    categorical column gives its own table; plain strings their sorted distinct values."""
    layout = ak.to_layout(array)
    if layout.is_indexed and not layout.is_option and layout.parameter("__array__") == "categorical":
        return [str(s) for s in ak.to_list(layout.content)], np.asarray(layout.index, np.int64)
    if layout.is_indexed and not layout.is_option:  # e.g. the strings of ak.concatenate: project them
        layout = ak.to_layout(ak.to_packed(array))
    if layout.parameter("__array__") != "string":
        raise ValueError(f"field {field!r}: expected strings, got {_describe(ak, array)}")
    names, codes = np.unique(ak.to_numpy(array) if len(array) else np.zeros(0, "U1"), return_inverse=True)
    return [str(s) for s in names], codes.reshape(-1)


def _process_codes(ak, array, table) -> tuple[tuple, np.ndarray]:
    """``(processes, codes)`` of the ``process`` field: its names and codes, the codes made to index
    ``table`` (the ``processes`` parameter) when every name is in it."""
    names, codes = _names_and_codes(ak, array, "process")
    if table and set(names) <= set(table):
        table = [str(p) for p in table]
        return tuple(table), np.array([table.index(n) for n in names], np.int64)[codes] if len(codes) else codes
    return tuple(names), codes


def _event_columns(ak, array, table=None) -> dict:
    """The per-event arguments of :class:`Events` from the event records (defaults for the optional ones);
    ``table``: the process table of the ``processes`` parameter, if any."""
    fields, n = set(ak.fields(array)), len(array)
    missing = [f for f in ("met", "met_phi", "objects") if f not in fields]
    if missing:
        raise ValueError(f"missing field {missing[0]!r}: an event record needs met, met_phi and objects "
                         f"(optional: event_id, process, weight, label); the array has {', '.join(sorted(fields))}")
    columns = {"met": _numbers(ak, array["met"], "met"), "met_phi": _numbers(ak, array["met_phi"], "met_phi"),
               "event_id": _numbers(ak, array["event_id"], "event_id") if "event_id" in fields else np.arange(n),
               "weight": _numbers(ak, array["weight"], "weight") if "weight" in fields else np.ones(n),
               "labels": _numbers(ak, array["label"], "label") if "label" in fields else None}
    if "process" in fields:
        columns["processes"], columns["process"] = _process_codes(ak, array["process"], table)
    else:
        columns["processes"], columns["process"] = ("unknown",), np.zeros(n, np.int64)
    return columns


def _object_field(ak, objects_, name: str, counts: np.ndarray):
    """The flat (M,) values of object field ``name`` (the first of its aliases present), checked to have
    the objects' counts per event; None when no alias is present."""
    present = set(ak.fields(objects_))
    field = next((f for f in OBJECT_ALIASES[name] if f in present), None)
    if field is None:
        return None
    values = objects_[field]
    try:
        if np.array_equal(ak.to_numpy(ak.num(values, axis=1)), counts):
            return ak.flatten(values, axis=1)
    except (ValueError, TypeError):
        pass
    raise ValueError(f"field 'objects.{field}': expected one value per object of each event (as many as "
                     f"objects.pt), got {_describe(ak, values)}")


def _object_types(ak, flat) -> np.ndarray:
    """(M,) type ids of the flat ``objects.code`` values: object codes (strings, categorical or not) or
    integer ids of :mod:`~.objects`; an unknown code or id is an error naming the field."""
    layout = ak.to_layout(flat)
    if layout.is_numpy:
        ids = _numbers(ak, flat, "objects.code")
        unknown = sorted(set(np.unique(ids).tolist()) - set(objects.BY_ID))
        if unknown:
            raise ValueError(f"field 'objects.code': unknown object type id {unknown[0]}; known ids: "
                             + ", ".join(f"{i} ({t.code})" for i, t in objects.BY_ID.items()))
        return ids
    names, codes = _names_and_codes(ak, flat, "objects.code")
    try:
        ids = np.array([objects.type_id(code) for code in names], np.int64)  # one per distinct code
    except KeyError as err:
        raise ValueError(f"field 'objects.code': {err}") from None
    return ids[codes] if len(codes) else np.zeros(0, np.int64)


def _energy(ak, objects_, counts, pt, eta) -> np.ndarray:
    """(M,) object energies: the energy field, else E = √(m² + (pT cosh η)²) from a mass field."""
    energy = _object_field(ak, objects_, "E", counts)
    if energy is not None:
        return _numbers(ak, energy, "objects.E")
    mass = _object_field(ak, objects_, "mass", counts)
    if mass is None:
        raise ValueError(f"missing field 'objects.E': an object needs its energy ({', '.join(OBJECT_ALIASES['E'])}) "
                         f"or its mass ({', '.join(OBJECT_ALIASES['mass'])}); the objects have "
                         f"{', '.join(ak.fields(objects_))}")
    m = _numbers(ak, mass, "objects.mass").astype(np.float64)
    p = pt.astype(np.float64) * np.cosh(eta.astype(np.float64))
    return np.sqrt(m ** 2 + p ** 2)


def _object_columns(ak, objects_) -> dict:
    """The per-object arguments of :class:`Events` (``offsets``, ``obj_*``) from the ``objects`` field:
    a list of object records per event (or a record of lists, one value per object each)."""
    if not ak.fields(objects_):
        raise ValueError(f"field 'objects': expected object records (code, pt, eta, phi, E) per event, got "
                         f"{_describe(ak, objects_)}")
    missing = [n for n in ("code", "pt", "eta", "phi") if not set(OBJECT_ALIASES[n]) & set(ak.fields(objects_))]
    if missing:
        raise ValueError(f"missing field 'objects.{missing[0]}': an object record needs code (or type), pt, eta, "
                         f"phi and E (or a mass); the objects have {', '.join(ak.fields(objects_))}")
    try:
        counts = ak.to_numpy(ak.num(objects_["pt"], axis=1))
    except (ValueError, TypeError):
        raise ValueError(f"field 'objects': expected a list of object records per event, got "
                         f"{_describe(ak, objects_)}") from None
    columns = {"offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
               "obj_type": _object_types(ak, _object_field(ak, objects_, "code", counts))}
    for name in ("pt", "eta", "phi"):
        columns[f"obj_{name}"] = _numbers(ak, _object_field(ak, objects_, name, counts), f"objects.{name}")
    columns["obj_e"] = _energy(ak, objects_, counts, columns["obj_pt"], columns["obj_eta"])
    return columns


def _unit(parameters: dict, unit: str | None) -> str:
    """The unit of the values: the ``unit`` parameter, or the ``unit`` argument (which must agree)."""
    stored = parameters.get("unit")
    if unit is not None and unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if stored is None and unit is None:
        raise ValueError("the array carries no unit (parameter 'unit'): pass unit='GeV' or unit='MeV', the unit "
                         "of its energies and momenta")
    if stored is not None and unit is not None and stored != unit:
        raise ValueError(f"the array's values are in {stored} (parameter 'unit'), unit={unit!r} given: read it as "
                         f"{stored} and convert with Events.to_unit({unit!r})")
    return unit or stored


def from_awkward(array, unit: str | None = None, meta: dict | None = None) -> Events:
    """:class:`Events` of an awkward array of event records: the layout of :func:`to_awkward` (read back
    exactly) or one built by a user (the module docstring says what may be left out or named otherwise).

    Args:
        array: ``N * {met, met_phi, objects: var * {code, pt, eta, phi, E}, ...}`` (anything
            ``ak.Array`` takes); extra fields (scores, ...) are ignored.
        unit: ``"GeV"`` or ``"MeV"``: the unit of the values when the array carries no ``unit``
            parameter (when it does, the two must agree).
        meta: provenance added to the array's ``meta`` parameter.

    Raises:
        ValueError: naming the field that is missing or of the wrong type, or the unit problem.
    """
    ak = _awkward()
    array = ak.Array(array)
    if array.ndim != 1 or not ak.fields(array):
        raise ValueError(f"expected an array of event records (N * {{met, met_phi, objects, ...}}), got "
                         f"{_describe(ak, array)}")
    parameters = _parameters(ak.to_layout(array))
    columns = {**_event_columns(ak, array, parameters.get("processes")), **_object_columns(ak, array["objects"])}
    return Events(**columns, unit=_unit(parameters, unit), meta={**dict(parameters.get("meta") or {}), **(meta or {})})
