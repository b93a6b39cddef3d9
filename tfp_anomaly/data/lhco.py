"""Readers for the LHC Olympics 2020 R&D data set (Kasieczka et al., arXiv:2101.08320).

* :func:`read_lhco_scalars`: high-level features of the two leading large-R jets, stored as pandas
  "fixed" HDFStore frames that plain h5py reads (``bkg|sig/block0_*`` float64, ``block1_*`` int64,
  ``axis0`` column order, ``axis1`` the R&D event number). Returns a :class:`FeatureTable`.
* :func:`read_lhco_raw` / :func:`iter_lhco_raw`: the raw files, up to 700 hadrons × (pT, η, φ)
  zero-padded, plus a truth label in column 2100 (R&D set; the black boxes have no label column).
  They are Blosc-compressed, so they need PyTables (``pip install tfp-anomaly[lhco-raw]``).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from . import objects
from .errors import DataFormatError, check_file, open_hdf5
from .events import Events, concatenate

LABEL_OF_KEY = {"bkg": 0, "sig": 1}
#: Columns dropped by default: the jet azimuths carry no information (the physics is symmetric in φ).
DEFAULT_DROP = ("phi_1", "phi_2")
NONFINITE_POLICIES = ("drop", "raise", "keep")


@dataclasses.dataclass
class FeatureTable:
    """Events as one row of high-level features each: the LHC Olympics 2020 R&D scalars of the two
    leading large-R jets (Kasieczka et al., arXiv:2101.08320), as :func:`read_lhco_scalars` gives them.

    Index with a slice, an index array or a boolean mask (``table[mask]``): the result is a new
    ``FeatureTable`` of those rows (``names``, ``files`` and ``report`` unchanged).

    Args:
        features: ``(N, F)`` float64, one column per feature.
        names: the ``F`` column names (``mjj``, ``tau21_1``, ...).
        labels: ``(N,)`` int8 truth labels, 1 = signal, 0 = background (from the frame key: ``sig``, ``bkg``).
        event_index: ``(N,)`` the event number in the original data set.
        file_index: ``(N,)`` index into ``files`` of the file each event came from.
        files: the paths read.
        report: what the reader's policies dropped or changed, counted (see :func:`read_lhco_scalars`).
    """

    features: np.ndarray
    names: list
    labels: np.ndarray
    event_index: np.ndarray
    file_index: np.ndarray
    files: list
    report: dict

    def __len__(self) -> int:
        return len(self.labels)

    def to_frame(self):
        """A pandas DataFrame of the features plus a ``label`` column (``labels``) and ``event_index``."""
        import pandas as pd

        frame = pd.DataFrame(self.features, columns=self.names)
        frame["label"] = self.labels
        frame["event_index"] = self.event_index
        return frame

    def __getitem__(self, index) -> "FeatureTable":
        return dataclasses.replace(self, features=self.features[index], labels=self.labels[index],
                                   event_index=self.event_index[index], file_index=self.file_index[index])


def _names(path, group, name: str, key: str) -> list[str]:
    values = group[name][:]
    if values.ndim != 1:
        raise DataFormatError(path, f"has shape {values.shape}, expected a 1-D list of names", field=f"{key}/{name}")
    return [n.decode() if isinstance(n, bytes) else str(n) for n in values]


def _read_fixed_frame(path: Path):
    """(key, names, values, index) of the single frame in a pandas "fixed" HDFStore file."""
    with open_hdf5(path, "LHCO scalars file") as handle:
        keys = [k for k in handle if k in LABEL_OF_KEY]
        if len(keys) != 1:
            raise DataFormatError(path, f"expected exactly one frame named 'bkg' or 'sig', found {list(handle)}")
        key = keys[0]
        group = handle[key]
        try:
            order = _names(path, group, "axis0", key)
            index = group["axis1"][:]
            if index.ndim != 1:
                raise DataFormatError(path, f"has shape {index.shape}, expected 1-D", field=f"{key}/axis1")
            blocks = {}
            for b in range(int(group.attrs.get("nblocks", 0))):
                items = _names(path, group, f"block{b}_items", key)
                values = group[f"block{b}_values"][:]
                if values.ndim != 2 or values.shape != (len(index), len(items)):
                    raise DataFormatError(
                        path, f"has shape {values.shape}, expected ({len(index)}, {len(items)}): one row per "
                              f"event of {key}/axis1 and one column per name of {key}/block{b}_items",
                        field=f"{key}/block{b}_values")
                if not np.issubdtype(values.dtype, np.number):
                    raise DataFormatError(path, f"holds {values.dtype}, not numbers", field=f"{key}/block{b}_values")
                for j, name in enumerate(items):
                    blocks[name] = values[:, j]
        except KeyError as exc:
            raise DataFormatError(path, f"not a pandas fixed-format frame: missing {exc}", field=key) from None
        except (OSError, AttributeError, TypeError) as exc:  # a truncated dataset, a group where data belongs
            raise DataFormatError(path, f"cannot read the frame: truncated or corrupt ({exc})", field=key) from None
    missing = [n for n in order if n not in blocks]
    if missing:
        raise DataFormatError(path, f"columns {missing} listed in axis0 have no data block", field=keys[0])
    values = np.column_stack([blocks[n].astype(np.float64) for n in order])
    return keys[0], order, values, index.astype(np.int64)


def _recompute_tau21(names: list[str], values: np.ndarray) -> list[str]:
    """Replace each ``tau21_k`` column that copies ``tau32_k`` (the upstream bug) by τ2/τ1 of jet k,
    computed from the file's own ``tau1_k`` and ``tau2_k``; τ1 = 0 gives a non-finite ratio that the
    ``nonfinite`` policy then handles. Returns the names of the columns recomputed."""
    done = []
    for k in (1, 2):
        cols = [f"tau21_{k}", f"tau32_{k}", f"tau1_{k}", f"tau2_{k}"]
        if not all(c in names for c in cols):
            continue
        t21, t32, t1, t2 = (names.index(c) for c in cols)
        if np.array_equal(values[:, t21], values[:, t32], equal_nan=True):
            with np.errstate(divide="ignore", invalid="ignore"):
                values[:, t21] = values[:, t2] / values[:, t1]
            done.append(cols[0])
    return done


def read_lhco_scalars(paths: str | Path | Iterable, *, nonfinite: str = "drop", drop_constant: bool = True,
                      drop_duplicates: bool = True, drop: Sequence[str] = DEFAULT_DROP,
                      recompute_tau21: bool = True) -> FeatureTable:
    """Read one or more LHCO high-level feature files (labels from the frame key: bkg 0, sig 1).

    Policies (all counted in ``table.report``):

    * ``nonfinite``: ``"drop"`` removes events with any NaN/±inf feature (in the R&D scalars these
      are τ21/τ32 ratios of jets with τ1 or τ2 = 0); ``"raise"`` raises :class:`DataFormatError`
      naming file, row and column; ``"keep"`` leaves them.
    * ``drop_constant``: drop columns with a single value over all events read (``nj`` is always 2).
    * ``drop_duplicates``: drop a column identical to an earlier one. In the R&D scalar files
      ``tau21_k`` is an exact copy of ``tau32_k`` (= τ3/τ2), an upstream bug; a duplicate adds no
      information and makes covariance matrices singular. ``report["duplicate_columns"]`` maps each
      dropped column to the one it copies.
    * ``drop``: columns removed by name (default: the jet azimuths ``phi_1``, ``phi_2``).
    * ``recompute_tau21``: where ``tau21_k`` copies ``tau32_k``, compute the real N-subjettiness ratio
      τ21 = τ2/τ1 from the file's ``tau1_k``, ``tau2_k`` instead (before the ``nonfinite`` policy): the
      two-prong substructure of a W′ → XY → 4q signal lives in τ21 (Thaler & Van Tilburg 2011).
      ``report["recomputed_columns"]`` names them; with ``False`` the copies are dropped as duplicates.
    """
    if nonfinite not in NONFINITE_POLICIES:
        raise ValueError(f"nonfinite must be one of {NONFINITE_POLICIES}, got {nonfinite!r}")
    paths = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not paths:
        raise ValueError("no files given")
    names, parts = None, []
    report = {"files": {}, "nonfinite": {}, "dropped_events": 0, "constant_columns": [], "dropped_columns": [],
              "duplicate_columns": {}, "recomputed_columns": []}
    for k, path in enumerate(paths):
        key, order, values, index = _read_fixed_frame(path)
        if recompute_tau21:
            report["recomputed_columns"] = sorted(set(report["recomputed_columns"]) | set(_recompute_tau21(order, values)))
        if names is None:
            names = order
        elif order != names:
            raise DataFormatError(path, f"columns differ from {paths[0].name}: {order} vs {names}")
        bad = ~np.isfinite(values)
        if bad.any() and nonfinite == "raise":
            row, col = np.argwhere(bad)[0]
            raise DataFormatError(path, f"non-finite value {values[row, col]}", int(row), f"column {names[col]!r}",
                                  where="row")
        for col in np.flatnonzero(bad.any(axis=0)):
            report["nonfinite"][names[col]] = report["nonfinite"].get(names[col], 0) + int(bad[:, col].sum())
        keep = ~bad.any(axis=1) if nonfinite == "drop" else np.ones(len(values), bool)
        report["dropped_events"] += int((~keep).sum())
        report["files"][str(path)] = {"key": key, "events": int(len(values)), "kept": int(keep.sum())}
        parts.append((values[keep], np.full(keep.sum(), LABEL_OF_KEY[key], np.int8), index[keep],
                      np.full(keep.sum(), k, np.int32)))
    features, labels, event_index, file_index = (np.concatenate(x) for x in zip(*parts))
    unknown = [d for d in drop if d not in names]
    if unknown:
        raise KeyError(f"cannot drop unknown columns {unknown}; columns are {names}")
    columns = [j for j, n in enumerate(names) if n not in drop]
    report["dropped_columns"] = list(drop)
    if drop_constant and len(features):
        constant = [j for j in columns if np.all(features[:, j] == features[0, j])]
        report["constant_columns"] = [names[j] for j in constant]
        columns = [j for j in columns if j not in constant]
    if drop_duplicates:
        seen: dict[bytes, int] = {}
        for j in list(columns):
            original = seen.setdefault(features[:, j].tobytes(), j)
            if original != j:
                report["duplicate_columns"][names[j]] = names[original]
                columns.remove(j)
    return FeatureTable(features[:, columns], [names[j] for j in columns], labels, event_index, file_index,
                        [str(p) for p in paths], report)


# --------------------------------------------------------------------------- raw hadrons
N_PARTICLES = 700


def _need_tables():
    try:
        import tables  # noqa: F401
    except ImportError:
        raise ImportError("reading raw LHC Olympics files needs PyTables (Blosc-compressed HDF5): "
                          "pip install 'tfp-anomaly[lhco-raw]'") from None


def _raw_to_events(path, values: np.ndarray, first_row: int) -> Events:
    if values.ndim != 2:
        raise DataFormatError(path, f"rows {first_row}-{first_row + len(values) - 1} have shape {values.shape[1:]}, "
                                    f"expected {3 * N_PARTICLES} (+1 label) columns")
    ncol = values.shape[1]
    if ncol not in (3 * N_PARTICLES, 3 * N_PARTICLES + 1):
        raise DataFormatError(path, f"{ncol} columns, expected {3 * N_PARTICLES} (+1 label)")
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataFormatError(path, f"non-finite value {values[row, col]}", first_row + int(row), f"column {col}",
                              where="row")
    hadrons = values[:, :3 * N_PARTICLES].reshape(len(values), N_PARTICLES, 3)
    pt, eta, phi = hadrons[..., 0], hadrons[..., 1], hadrons[..., 2]
    labels = values[:, -1].astype(np.int8) if ncol == 3 * N_PARTICLES + 1 else None
    # MET: magnitude and direction of minus the vector sum of all hadron transverse momenta
    mex, mey = -(pt * np.cos(phi)).sum(axis=1), -(pt * np.sin(phi)).sum(axis=1)
    return Events.from_padded(
        objects.type_id("h"), pt * np.cosh(eta), pt, eta, phi, met=np.hypot(mex, mey),
        met_phi=np.arctan2(mey, mex), event_id=np.arange(first_row, first_row + len(values)),
        process=labels, processes=("background", "signal") if labels is not None else (Path(path).stem,),
        labels=labels, unit="GeV", meta={"source": str(path), "format": "lhco-raw"})


def _brief(error: BaseException) -> str:
    """An exception in one line: its class and the first line of its message."""
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def iter_lhco_raw(path, chunk_size: int = 10_000, *, key: str | None = None,
                  max_events: int | None = None) -> Iterator[Events]:
    """Stream a raw LHCO file in chunks (GeV). Objects have type ``h``; E = pT cosh η (massless)."""
    _need_tables()
    import pandas as pd

    path = check_file(path, "LHCO raw file")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    try:
        with pd.HDFStore(path, mode="r") as store:
            keys = store.keys()
            key = key or (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise DataFormatError(path, f"several frames {keys}: pass key=")
            storer = store.get_storer(key)
            shape = getattr(storer, "shape", None)
            total = shape[0] if shape else None
    except DataFormatError:
        raise
    except Exception as err:  # noqa: BLE001 (PyTables raises its own classes for a damaged file)
        raise DataFormatError(path, f"cannot be read as a pandas HDF5 frame: truncated or corrupt ({_brief(err)})") from None
    stop_all = max_events if total is None else min(total, max_events or total)
    start = 0
    while stop_all is None or start < stop_all:
        stop = start + chunk_size if stop_all is None else min(start + chunk_size, stop_all)
        try:
            frame = pd.read_hdf(path, key=key, start=start, stop=stop)
            values = frame.to_numpy(np.float64)
        except Exception as err:  # noqa: BLE001
            raise DataFormatError(path, f"cannot read rows {start}-{stop - 1}: truncated, corrupt or not numeric "
                                        f"({_brief(err)})", field=key) from None
        if frame.empty:
            return
        yield _raw_to_events(path, values, start)
        start += len(frame)


def read_lhco_raw(path, *, key: str | None = None, max_events: int | None = None) -> Events:
    """Read a raw LHCO file (or its first ``max_events``) into one :class:`Events`."""
    parts = list(iter_lhco_raw(path, key=key, max_events=max_events))
    return concatenate(parts) if parts else Events.empty(unit="GeV")
