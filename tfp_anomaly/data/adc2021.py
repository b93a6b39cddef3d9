"""Reader for the ADC2021 "Anomaly Detection Data Challenge 2021" / 40 MHz HDF5 files (arXiv:2107.02157).

Each file holds a dataset ``Particles`` of shape (N, 19, 4): 19 object slots of (pT [GeV], η, φ, class),
zero-padded. Slot 0 is MET (its pT is the MET magnitude, its φ the MET direction), slots 1–4
electrons, 5–8 muons, 9–18 jets. Class ids: 1 MET, 2 electron, 3 muon, 4 jet, 0 empty slot.

The format records neither energy nor charge: objects are stored as ``e``/``m``/``j`` (see
:mod:`.objects`) and their energy is the massless approximation E = pT cosh η.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from . import objects
from .errors import DataFormatError, open_hdf5, read_error
from .events import Events, concatenate

N_SLOTS = 19
#: (slot range, class id, object code) per block
BLOCKS = ((slice(0, 1), 1, "MET"), (slice(1, 5), 2, "e"), (slice(5, 9), 3, "m"), (slice(9, 19), 4, "j"))


#: object type id of each of the 18 object slots after MET
_SLOT_TYPES = np.concatenate([np.full(rows.stop - rows.start, objects.type_id(code)) for rows, _, code in BLOCKS[1:]])


@contextlib.contextmanager
def _open(path: Path):
    """The file's ``Particles`` dataset, checked to be (N, 19, 4)."""
    with open_hdf5(path, "ADC2021 file") as handle:
        data = handle.get("Particles")
        if data is None or not hasattr(data, "shape"):
            raise DataFormatError(path, "no dataset 'Particles' (expected ADC2021 layout (N, 19, 4))")
        shape = data.shape
        if shape is None or len(shape) != 3 or shape[1:] != (N_SLOTS, 4):
            raise DataFormatError(path, f"dataset 'Particles' has shape {shape}, expected (N, 19, 4)",
                                  field="Particles")
        yield data


def _validate(path, block: np.ndarray, first_row: int) -> None:
    bad = ~np.isfinite(block)
    if bad.any():
        ev, slot, col = np.argwhere(bad)[0]
        raise DataFormatError(path, f"non-finite value {block[ev, slot, col]}", first_row + ev,
                              f"Particles[{first_row + ev}, {slot}, {col}]", where="event")
    for rows, class_id, code in BLOCKS:
        cls = block[:, rows, 3]
        wrong = (cls != 0) & (cls != class_id)
        if wrong.any():
            ev, slot = np.argwhere(wrong)[0]
            raise DataFormatError(path, f"class {cls[ev, slot]:g} in the {code} block (expected {class_id} or 0)",
                                  first_row + ev, f"Particles[{first_row + ev}, {rows.start + slot}, 3]",
                                  where="event")
    if np.any(block[:, :, 0] < 0):
        ev, slot = np.argwhere(block[:, :, 0] < 0)[0]
        raise DataFormatError(path, "negative pT", first_row + ev, f"Particles[{first_row + ev}, {slot}, 0]",
                              where="event")


def _to_events(path, block: np.ndarray, first_row: int, label) -> Events:
    pt, eta, phi = block[:, 1:, 0], block[:, 1:, 1], block[:, 1:, 2]
    n = len(block)
    return Events.from_padded(
        _SLOT_TYPES[None, :], pt * np.cosh(eta), pt, eta, phi, met=block[:, 0, 0], met_phi=block[:, 0, 2],
        event_id=np.arange(first_row, first_row + n), processes=(Path(path).stem,),
        labels=None if label is None else np.full(n, label), unit="GeV",
        meta={"source": str(path), "format": "adc2021"})


def iter_adc2021(path, chunk_size: int = 100_000, *, label: int | None = None) -> Iterator[Events]:
    """Stream an ADC2021 file in chunks of ``chunk_size`` events (GeV); ``label`` (0 or 1), if given, is
    the truth label of every event (the events' ``labels``)."""
    path = Path(path)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    with _open(path) as data:
        for start in range(0, data.shape[0], chunk_size):
            try:
                block = np.asarray(data[start:start + chunk_size], dtype=np.float64)
            except (OSError, ValueError, TypeError) as err:  # a truncated dataset, a non-numeric dtype
                raise read_error(path, err, f"Particles[{start}:{start + chunk_size}]") from None
            _validate(path, block, start)
            yield _to_events(path, block, start, label)


def read_adc2021(path, *, label: int | None = None) -> Events:
    """Read a whole ADC2021 file; malformed content raises :class:`DataFormatError` naming event and slot."""
    parts = list(iter_adc2021(path, label=label))
    return concatenate(parts) if parts else Events.empty(unit="GeV", with_label=label is not None)
