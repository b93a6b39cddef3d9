"""Registry of event file formats: name -> (how to recognise a file, how to stream it).

``open_events(path)`` picks the format by sniffing (extension, then HDF5 content) unless one is
named; every format streams :class:`~.events.Events` chunks with bounded memory.
Tabular formats (the LHCO high-level features) are read by :func:`.lhco.read_lhco_scalars`.
A new reader plugs in with ``register(Format(...))`` (into :data:`FORMATS`); formats are sniffed
in the order they were registered.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Iterator

from ..registry import Registry
from . import adc2021, cache, darkmachines, lhco, root
from .errors import DataFormatError, check_file, open_hdf5
from .events import Events, concatenate


@dataclasses.dataclass(frozen=True)
class Format:
    """An event file format: how to recognise a file of it and how to read one.

    Args:
        name: the format's name (``--format`` on the command line, ``format=`` of :func:`open_events`).
        description: one line for ``tfp-anomaly data formats``.
        sniff: ``sniff(path) -> bool``, whether ``path`` is a file of this format (its extension, then
            its HDF5 content); it must not raise on a file of another format.
        iterate: ``iterate(path, chunk_size=..., **options)`` yielding :class:`~.events.Events` chunks;
            None for a tabular format.
        kind: ``"events"`` (objects per event, read by :func:`open_events`) or ``"table"`` (one row of
            high-level features per event, read by :func:`.lhco.read_lhco_scalars`).
        options: the key of a configuration's ``data`` section whose mapping holds options of this
            reader (``"root"``: ``data.root`` for the ROOT formats), passed to ``iterate`` as keywords
            (:func:`reader_options`); None: the reader takes none from the configuration.
    """

    name: str
    description: str
    sniff: Callable[[Path], bool]
    iterate: Callable[..., Iterator[Events]]
    kind: str = "events"  # or "table"
    options: str | None = None


def _hdf5_keys(path: Path) -> set:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return set(handle.keys())
    except OSError:
        return set()


def _is_csv(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz", ".txt"))


def _is_h5(path: Path) -> bool:
    return path.suffix in (".h5", ".hdf5", ".hdf")


#: format name -> :class:`Format`, in sniffing order.
FORMATS = Registry("format")


def register(fmt: Format) -> Format:
    """Add a :class:`Format` to :data:`FORMATS` under its name (a new reader plugs in here)."""
    return FORMATS.register(fmt.name, fmt)


register(Format("darkmachines", "Dark Machines challenge CSV (event_id;process_id;weight;MET;METphi;obj,E,pt,eta,phi;...)",
                _is_csv, darkmachines.iter_darkmachines))
register(Format("cache", "tfp-anomaly columnar HDF5 cache (written by `tfp-anomaly data convert`)",
                lambda p: _is_h5(p) and cache.is_cache(p), cache.iter_cache))
register(Format("adc2021", "ADC2021 / 40 MHz HDF5, Particles (N, 19, 4)",
                lambda p: _is_h5(p) and "Particles" in _hdf5_keys(p), adc2021.iter_adc2021))
register(Format("delphes", "Delphes ROOT tree (Jet, Electron, Muon, Photon, MissingET, Event branches), GeV",
                root.is_delphes, root.iter_delphes, options="root"))
register(Format("root-ntuple", "flat ROOT ntuple, its branches mapped by data.root / --root-mapping (never "
                "detected: name it)", lambda p: False, root.iter_root_ntuple, options="root"))
register(Format("lhco-raw", "LHC Olympics raw hadrons, 700 x (pT, eta, phi) [+ label] (needs PyTables)",
                lambda p: _is_h5(p) and _hdf5_keys(p) == {"df"}, lhco.iter_lhco_raw))
register(Format("lhco-scalars", "LHC Olympics high-level jet features (pandas fixed frame 'bkg' or 'sig')",
                lambda p: _is_h5(p) and bool(_hdf5_keys(p) & set(lhco.LABEL_OF_KEY)), None, kind="table"))


def available() -> list[str]:
    """Names of the registered event file formats, in the order they are sniffed."""
    return list(FORMATS)


def get(name: str) -> Format:
    """The registered format ``name``; an unknown name raises naming the registered ones."""
    return FORMATS.lookup(name)


def reader_options(fmt: Format, data: dict | None) -> dict:
    """The keyword options of ``fmt``'s reader in ``data`` (a configuration's ``data`` section, or a
    mapping with some of its keys, such as ``{"root": {...}}``): the mapping under ``fmt.options``."""
    if fmt.options is None or not data:
        return {}
    return dict(data.get(fmt.options) or {})


def _hdf5_unrecognised(path: Path) -> Exception:
    with open_hdf5(path) as handle:  # raises "truncated or corrupt" when HDF5 cannot open it
        keys = sorted(handle.keys())
    return DataFormatError(path, f"HDF5 file with top-level entries {keys[:8]}{' ...' if len(keys) > 8 else ''}: "
                                 f"no registered layout matches; name one of {', '.join(FORMATS)} explicitly")


#: (is the file of this kind, the error saying what it holds) for files no format recognises
_UNRECOGNISED = ((_is_h5, _hdf5_unrecognised), (root.is_root_name, root.unrecognised))


def detect(path) -> Format:
    """The registered format of ``path``; raises naming the file when none matches (a directory, a
    truncated or corrupt HDF5 or ROOT file, an HDF5 file of an unknown layout and a ROOT file without a
    Delphes tree each say so)."""
    path = check_file(path)
    for fmt in FORMATS.values():
        if fmt.sniff(path):
            return fmt
    for matches, explain in _UNRECOGNISED:
        if matches(path):
            raise explain(path)
    raise ValueError(f"{path}: format not recognised; name one of {', '.join(FORMATS)} explicitly")


def open_events(path, format: str = "auto", **kwargs) -> Iterator[Events]:
    """Stream events from ``path`` in chunks; ``kwargs`` go to the format's reader (chunk_size, unit, ...)."""
    fmt = detect(path) if format == "auto" else get(format)
    if fmt.kind != "events":
        raise ValueError(f"{path}: format {fmt.name!r} holds tabular features, not events; "
                         "use tfp_anomaly.data.read_lhco_scalars")
    return fmt.iterate(path, **kwargs)


def read_events(path, format: str = "auto", **kwargs) -> Events:
    """Read a whole file of any registered event format into one :class:`Events`."""
    parts = list(open_events(path, format, **kwargs))
    return concatenate(parts) if parts else Events.empty()
