"""Reader and writer for the Dark Machines unsupervised-challenge CSV format (arXiv:2105.14027).

One event per line, ``;``-separated, usually with a trailing ``;``::

    event_id;process_id;weight;MET;METphi;obj1,E1,pt1,eta1,phi1;obj2,E2,pt2,eta2,phi2;...

``process_id`` is a string (e.g. ``ttbar``, ``monojet_Zp2000.0_DM_50.0``); E, pt and MET are in MeV;
object codes are ``j b e- e+ m- m+ g``. Background files reach 8.5 M events and several GB, so
reading is chunked: :func:`iter_darkmachines` holds one chunk of lines at a time.

Parsing strategy: each chunk is parsed by a vectorised fast path (one ``split`` over the whole
chunk, numeric conversion column by column). Every line has ``5 * (1 + n_objects)`` tokens, which is
checked per line before conversion. If anything in a chunk fails (field count, number, object code,
NaN/inf), the chunk is re-read line by line to name the exact line and field; with
``on_error="skip"`` the bad lines are dropped and counted (:class:`~.errors.SkipLog`) and the good
ones parsed. Blank lines carry no event and are ignored (counted as ``n_blank``). ``.gz`` files are
read transparently; a truncated or damaged gzip stream, or a plain file named ``.gz``, is an error.

One grammar for numbers, in both paths (:data:`NUMBER`): plain ASCII decimal or scientific notation,
``[+-]digits[.digits][(e|E)[+-]digits]`` (``947383``, ``-0.5``, ``.5``, ``5.``, ``9.47e5``). No
spaces, no ``_`` digit separators, no non-ASCII digits (``١٢٣``, ``１２３``), no ``nan``/``inf``:
Python's ``float()`` accepts several of these, the fast path does not, and a line is valid only if
both would read it the same. ``event_id`` must be an integer with |value| ≤ 2^53 (the integers a
float64 holds exactly; ``1e30`` would not fit the int64 column).
"""
from __future__ import annotations

import gzip
import io
import itertools
import logging
import math
import re
import zlib
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from ..atomic import atomic_path
from . import objects
from .errors import DataFormatError, SkipLog, check_file, check_on_error
from .events import Events, concatenate

log = logging.getLogger(__name__)

HEADER_FIELDS = ("event_id", "process_id", "weight", "MET", "METphi")
OBJECT_FIELDS = ("code", "E", "pt", "eta", "phi")
_CODE_TO_ID = {c: objects.type_id(c) for c in objects.DARKMACHINES_CODES}


class _ChunkInvalid(Exception):
    """Raised by the fast path when a chunk holds something it cannot parse."""


_GZIP_MAGIC = b"\x1f\x8b"


def _open_binary(path: Path):
    check_file(path, "Dark Machines file")
    if path.suffix != ".gz":
        return open(path, "rb")
    with open(path, "rb") as probe:
        if probe.read(2) != _GZIP_MAGIC:
            raise DataFormatError(path, "named .gz but not gzip-compressed (no gzip header); "
                                        "rename it without .gz if it is plain text")
    return gzip.open(path, "rb")


def _strip(line):
    """Drop the line end and the one trailing ';' the challenge files put after the last object."""
    line = line.rstrip(b"\r\n" if isinstance(line, bytes) else "\r\n")
    return line[:-1] if line[-1:] in (b";", ";") else line


# --------------------------------------------------------------------------- fast path
# The fast path works on the bytes of a whole chunk with numpy. It proves the layout from the
# separator positions (every header field free of ',', every object field holding exactly four ','
# and starting with a known code followed by ','), overwrites the codes and process names with '0'
# digits, and parses every remaining token as one flat float array with pandas' C tokenizer.
_SEMI, _COMMA, _NL, _ZERO = (ord(c) for c in ";,\n0")
_CODE_TABLE = np.full((256, 256), -1, np.int8)  # (first byte, second byte or 0) -> object type id
for _code, _id in _CODE_TO_ID.items():
    _b = _code.encode()
    _CODE_TABLE[_b[0], _b[1] if len(_b) > 1 else 0] = _id
_FLOAT32_MAX = float(np.finfo(np.float32).max)
#: the largest |event_id|: every integer up to 2^53 is exact in the float64 both parsers read it as
EVENT_ID_MAX = 2 ** 53
_TO_NEWLINE = bytes.maketrans(b";,", b"\n\n")
# bytes a numeric field may hold (the grammar NUMBER's alphabet); with the separators and the line end
# they are all the fast path lets through to pandas once codes and process names are blanked. On
# this alphabet pandas' C parser accepts exactly the strings NUMBER matches (checked by a test).
_NUMERIC_BYTES = b"0123456789+-.eE;,\n"


def _parse_numbers(text: bytes, expected: int) -> np.ndarray:
    """Parse newline-separated numbers with pandas' C tokenizer; raise ``_ChunkInvalid`` on any defect."""
    try:
        values = pd.read_csv(io.BytesIO(text), header=None, names=["v"], dtype=np.float64,
                             engine="c", skip_blank_lines=False)["v"].to_numpy()
    except (ValueError, pd.errors.ParserError) as exc:
        raise _ChunkInvalid from exc
    if values.shape != (expected,):
        raise _ChunkInvalid
    return values


def _concat_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + l) for s, l in zip(starts, lengths)])`` without a Python loop."""
    ends = np.cumsum(lengths)
    return np.repeat(starts - (ends - lengths), lengths) + np.arange(int(ends[-1]) if len(ends) else 0)


def _parse_fast(buf: bytes, n: int, processes: dict[str, int]) -> dict[str, np.ndarray]:
    """Parse ``n`` newline-terminated, stripped lines held in ``buf``; raise ``_ChunkInvalid`` on any defect."""
    a = np.frombuffer(buf + b"\0\0\0", np.uint8)  # padding: code look-ups may read 3 bytes ahead
    nl = np.flatnonzero(a == _NL)
    semi = np.flatnonzero(a == _SEMI)
    comma = np.flatnonzero(a == _COMMA)
    if len(nl) != n:
        raise _ChunkInvalid
    semi_line = np.searchsorted(nl, semi)  # line of each ';'
    n_semi = np.bincount(semi_line, minlength=n)
    n_obj = n_semi - 4
    if np.any(n_obj < 0):
        raise _ChunkInvalid
    semi_rank = np.arange(len(semi)) - np.concatenate([[0], np.cumsum(n_semi)[:-1]])[semi_line]
    # every ',' must lie in an object field (after the 5th ';' of its line), four per object field
    prev = np.searchsorted(semi, comma) - 1
    if len(comma) and (prev.min() < 0 or np.any(semi_line[prev] != np.searchsorted(nl, comma))
                       or np.any(semi_rank[prev] < 4)):
        raise _ChunkInvalid
    is_obj = semi_rank >= 4
    if np.any(np.bincount(prev, minlength=len(semi))[is_obj] != 4):
        raise _ChunkInvalid
    # object codes: one or two bytes after the field's ';', then ','
    at = semi[is_obj] + 1
    second = a[at + 1]
    two = (second == ord("+")) | (second == ord("-"))
    obj_type = _CODE_TABLE[a[at], np.where(two, second, 0)]
    if np.any(obj_type < 0) or np.any(a[at + 1 + two] != _COMMA):
        raise _ChunkInvalid
    # process names: bytes between the 1st and 2nd ';' of each line
    first, second_semi = semi[semi_rank == 0], semi[semi_rank == 1]
    if np.any(second_semi - first < 2):
        raise _ChunkInvalid
    digits = a[:-3].copy()
    digits[at] = _ZERO
    digits[at[two] + 1] = _ZERO
    name_bytes = _concat_ranges(first + 1, second_semi - first - 1)
    digits[name_bytes] = _ZERO
    text = digits.tobytes()
    if text.translate(None, _NUMERIC_BYTES):  # a space, a quote, '_', a letter, a non-ASCII digit in a number
        raise _ChunkInvalid
    n_total = int(n_obj.sum())
    rows = _parse_numbers(text.translate(_TO_NEWLINE), 5 * (n + n_total)).reshape(-1, 5)
    offsets = np.concatenate([[0], np.cumsum(n_obj)])
    is_header = np.zeros(len(rows), bool)
    is_header[offsets[:-1] + np.arange(n)] = True
    head, body = rows[is_header], rows[~is_header]
    if not (np.isfinite(head).all() and np.isfinite(body).all()) or np.any(head[:, 0] != np.round(head[:, 0])):
        raise _ChunkInvalid
    if np.abs(head[:, 0]).max(initial=0) > EVENT_ID_MAX:
        raise _ChunkInvalid
    if np.abs(head[:, 3:]).max(initial=0) > _FLOAT32_MAX or np.abs(body[:, 1:]).max(initial=0) > _FLOAT32_MAX:
        raise _ChunkInvalid  # kinematics are stored as float32: larger values would become inf
    # the chunk is valid: only now do its process names enter the reader's table
    names = [buf[i + 1:j] for i, j in zip(first.tolist(), second_semi.tolist())]
    process = np.fromiter((processes.setdefault(p.decode("utf-8", "replace"), len(processes))
                           for p in names), np.int32, n)
    return dict(event_id=head[:, 0].astype(np.int64), process=process, weight=head[:, 2],
                met=head[:, 3], met_phi=head[:, 4], offsets=offsets, obj_type=obj_type,
                obj_e=body[:, 1], obj_pt=body[:, 2], obj_eta=body[:, 3], obj_phi=body[:, 4])


# --------------------------------------------------------------------------- diagnosis
#: The one grammar of a number in a Dark Machines file (both parsers): plain ASCII decimal or scientific.
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_NON_FINITE = re.compile(r"[+-]?(?:nan|inf|infinity)", re.IGNORECASE)


def _number(text: str, path, line_no: int, field: str, float32: bool = True) -> float:
    if NUMBER.fullmatch(text) is None:
        if _NON_FINITE.fullmatch(text.strip()):
            raise DataFormatError(path, f"non-finite value {text!r}", line_no, field)
        raise DataFormatError(path, f"cannot parse {text!r} as a number (plain ASCII decimal or scientific "
                                    "notation only, e.g. 947383 or 9.47383e5)", line_no, field)
    value = float(text)
    if not math.isfinite(value):
        raise DataFormatError(path, f"non-finite value {text!r} (beyond float64)", line_no, field)
    if float32 and abs(value) > _FLOAT32_MAX:
        raise DataFormatError(path, f"value {text!r} overflows float32 storage", line_no, field)
    return value


def _check_line(line: str, path, line_no: int):
    """Parse one line (as read, line end and trailing ';' included) field by field: ``(header, objects)``
    with ``header = (event_id, process_id, weight, MET, METphi)`` and ``objects`` a list of
    ``(type id, E, pt, eta, phi)``; raise :class:`DataFormatError` naming the first defect."""
    fields = _strip(line).split(";")
    if len(fields) < 5:
        raise DataFormatError(path, f"expected at least 5 ';'-separated fields ({';'.join(HEADER_FIELDS)}),"
                                    f" found {len(fields)}", line_no)
    event_id = _number(fields[0], path, line_no, "field 1 (event_id)", float32=False)
    if event_id % 1:
        raise DataFormatError(path, f"event_id {fields[0]!r} is not an integer", line_no, "field 1 (event_id)")
    if abs(event_id) > EVENT_ID_MAX:
        raise DataFormatError(path, f"event_id {fields[0]!r} is outside the integer range read exactly "
                                    f"(|event_id| <= 2^53 = {EVENT_ID_MAX})", line_no, "field 1 (event_id)")
    if not fields[1] or "," in fields[1]:
        raise DataFormatError(path, f"process_id {fields[1]!r} is empty or contains ','", line_no,
                              "field 2 (process_id)")
    header = [int(event_id), fields[1]]
    for k in (2, 3, 4):
        header.append(_number(fields[k], path, line_no, f"field {k + 1} ({HEADER_FIELDS[k]})", float32=k > 2))
    found = []
    for j, text in enumerate(fields[5:], start=1):
        where = f"field {j + 5} (object {j})"
        parts = text.split(",")
        if len(parts) != 5:
            raise DataFormatError(path, f"expected 5 ','-separated values (code,E,pt,eta,phi), found "
                                        f"{len(parts)} in {text!r}", line_no, where)
        if parts[0] not in _CODE_TO_ID:
            raise DataFormatError(path, f"unknown object code {parts[0]!r} (known: "
                                        f"{' '.join(objects.DARKMACHINES_CODES)})", line_no, where)
        found.append((_CODE_TO_ID[parts[0]], *(
            _number(value, path, line_no, f"field {j + 5} (object {j} {parts[0]!r} {name})")
            for name, value in zip(OBJECT_FIELDS[1:], parts[1:]))))
    return tuple(header), found


def diagnose_line(line: str, path, line_no: int) -> None:
    """Check one line (as read from the file: its line end and its one trailing ';' are dropped here)
    field by field; raise :class:`DataFormatError` naming the first defect. A line passes exactly when
    the vectorised reader accepts it."""
    _check_line(line, path, line_no)


def _arrays_of(parsed: list, processes: dict[str, int]) -> dict[str, np.ndarray]:
    """The reader's arrays from lines parsed by :func:`_check_line` (what the fast path returns)."""
    heads = [head for head, _ in parsed]
    objs = [o for _, found in parsed for o in found]
    body = np.array(objs, np.float64).reshape(-1, 5)
    offsets = np.concatenate([[0], np.cumsum([len(found) for _, found in parsed])]).astype(np.int64)
    return dict(event_id=np.array([h[0] for h in heads], np.int64),
                process=np.array([processes.setdefault(h[1], len(processes)) for h in heads], np.int32),
                weight=np.array([h[2] for h in heads], np.float64), met=np.array([h[3] for h in heads]),
                met_phi=np.array([h[4] for h in heads]), offsets=offsets, obj_type=body[:, 0].astype(np.int8),
                obj_e=body[:, 1], obj_pt=body[:, 2], obj_eta=body[:, 3], obj_phi=body[:, 4])


# --------------------------------------------------------------------------- reader
class DarkMachinesReader:
    """Streaming reader of one file of the Dark Machines unsupervised challenge (arXiv:2105.14027):
    :meth:`chunks` yields :class:`Events` of the file's lines, ``chunk_size`` at a time.

    Args:
        path: a ``.csv`` or ``.csv.gz`` file.
        unit: ``"MeV"`` or ``"GeV"``, the unit of the returned energies and momenta (the file is in MeV).
        on_error: ``"raise"``: the first malformed line raises :class:`DataFormatError` (file, line,
            field); ``"skip"``: malformed lines are dropped and counted in :attr:`skipped`.
        label: the truth label given to every event read (1 for a signal file, 0 for background), as
            the events' ``labels``; None leaves them unlabelled.
    """

    def __init__(self, path, *, unit: str = "MeV", on_error: str = "raise", label: int | None = None):
        self.path = Path(path)
        self.unit = unit
        self.on_error = check_on_error(on_error)
        self.label = label
        self.skipped = SkipLog()
        self.bytes_read = 0
        self.lines_read = 0
        self._processes: dict[str, int] = {}

    @property
    def size(self) -> int | None:
        """Uncompressed size in bytes if known (for progress bars)."""
        return None if self.path.suffix == ".gz" else self.path.stat().st_size

    def chunks(self, chunk_size: int = 100_000) -> Iterator[Events]:
        """Yield :class:`Events` of at most ``chunk_size`` events; memory holds one chunk of lines."""
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        with _open_binary(self.path) as handle:
            while True:
                try:
                    raw = list(itertools.islice(handle, chunk_size))
                except (EOFError, OSError, zlib.error) as err:  # a truncated or damaged gzip stream
                    raise self._damaged(err) from None
                if not raw:
                    return
                first = self.lines_read + 1
                self.lines_read += len(raw)
                self.bytes_read += sum(map(len, raw))
                events = self._parse_chunk(raw, first)
                if len(events):
                    yield events

    def _damaged(self, error: BaseException) -> DataFormatError:
        """The error for a gzip stream that breaks off: re-read to the break to name the line."""
        complete = 0
        try:
            with gzip.open(self.path, "rb") as handle:
                for line in handle:
                    if not line.endswith(b"\n"):
                        break
                    complete += 1
        except (EOFError, OSError, zlib.error):
            pass
        return DataFormatError(self.path, f"gzip data is truncated or corrupt ({error}); {complete:,} complete "
                                          "line(s) precede the damage", complete + 1)

    def _parse_chunk(self, raw: list[bytes], first_line: int) -> Events:
        lines = [_strip(line) for line in raw]
        kept = [k for k, line in enumerate(lines) if line.strip()]
        if len(kept) != len(lines):
            lines = [lines[k] for k in kept]
        self.skipped.n_blank += len(raw) - len(lines)
        chunk_log = SkipLog()
        try:
            arrays = self._fast(lines)
        except _ChunkInvalid:
            arrays = self._line_by_line([(first_line + k, raw[k]) for k in kept], chunk_log)
        self.skipped.merge(chunk_log)
        if chunk_log.n_skipped:
            log.info("%s: %s", self.path, chunk_log.summary())
        if arrays is None:
            events = Events.empty(unit="MeV", with_label=self.label is not None)
        else:
            labels = None if self.label is None else np.full(len(arrays["event_id"]), self.label)
            events = Events(**arrays, processes=tuple(self._processes), labels=labels, unit="MeV",
                            meta={"source": str(self.path), "format": "darkmachines"})
        events.meta["n_skipped"] = chunk_log.n_skipped
        return events.to_unit(self.unit)

    def _fast(self, lines: list[bytes]):
        return _parse_fast(b"\n".join(lines) + b"\n", len(lines), self._processes) if lines else None

    def _line_by_line(self, numbered: list, chunk_log: SkipLog):
        """A chunk the fast path refused: check each ``(line number, raw line)``, raise at the first bad
        one or (``skip``) count it, and return the arrays of the good ones."""
        good, parsed = [], []
        for line_no, line in numbered:
            try:
                parsed.append(_check_line(line.decode("utf-8", "replace"), self.path, line_no))
                good.append(_strip(line))
            except DataFormatError as err:
                if self.on_error == "raise":
                    raise
                chunk_log.add(err)
        if not good:
            return None
        try:
            return self._fast(good)
        except _ChunkInvalid:  # cannot happen while both paths share one grammar; the checked values are right
            log.debug("%s: fast path refused lines the line checker accepted", self.path)
            return _arrays_of(parsed, self._processes)


def iter_darkmachines(path, chunk_size: int = 100_000, *, unit: str = "MeV", on_error: str = "raise",
                      label: int | None = None, skipped: SkipLog | None = None) -> Iterator[Events]:
    """Stream a Dark Machines CSV in chunks of ``chunk_size`` events (see :class:`DarkMachinesReader`).

    Pass a :class:`SkipLog` as ``skipped`` to collect the skip count across the whole file.
    """
    reader = DarkMachinesReader(path, unit=unit, on_error=on_error, label=label)
    try:
        yield from reader.chunks(chunk_size)
    finally:
        if skipped is not None:
            skipped.merge(reader.skipped)
        elif reader.skipped.n_skipped:
            log.warning("%s: %s", reader.path, reader.skipped.summary())


def read_darkmachines(path, *, unit: str = "MeV", on_error: str = "raise", label: int | None = None,
                      chunk_size: int = 100_000) -> Events:
    """Read a whole Dark Machines CSV into one :class:`Events`.

    ``events.meta["n_skipped"]`` and ``meta["skip_log"]`` report what ``on_error="skip"`` dropped.
    """
    reader = DarkMachinesReader(path, unit=unit, on_error=on_error, label=label)
    parts = list(reader.chunks(chunk_size))
    if reader.skipped.n_skipped:
        log.warning("%s: %s", reader.path, reader.skipped.summary())
    events = concatenate(parts) if parts else Events.empty(unit=unit, with_label=label is not None)
    events.meta.update(source=str(reader.path), format="darkmachines", n_skipped=reader.skipped.n_skipped,
                       n_blank=reader.skipped.n_blank, skip_log=reader.skipped)
    return events


# --------------------------------------------------------------------------- writer
def _format_event(events: Events, i: int, codes: np.ndarray) -> str:
    lo, hi = events.offsets[i], events.offsets[i + 1]
    head = (f"{events.event_id[i]};{events.processes[events.process[i]]};{events.weight[i]:.6g};"
            f"{events.met[i]:.6g};{events.met_phi[i]:.6g};")
    body = "".join(f"{codes[t]},{e:.6g},{p:.6g},{h:.6g},{f:.6g};" for t, e, p, h, f in zip(
        events.obj_type[lo:hi], events.obj_e[lo:hi].tolist(), events.obj_pt[lo:hi].tolist(),
        events.obj_eta[lo:hi].tolist(), events.obj_phi[lo:hi].tolist()))
    return head + body + "\n"


def write_darkmachines(events: Events, path, *, append_chunks=None) -> Path:
    """Write events in the challenge CSV format (MeV, six significant digits, trailing ``;``).

    Written atomically (temporary file, then rename). ``append_chunks``, an iterable of further
    :class:`Events`, lets a large file be written chunk by chunk with bounded memory.
    Objects must have Dark Machines codes (``j b e- e+ m- m+ g``).
    """
    path = Path(path)
    codes = np.array([objects.code_of(i) if i in objects.BY_ID else "?" for i in range(len(objects.BY_ID))])
    allowed = np.array([_CODE_TO_ID[c] for c in objects.DARKMACHINES_CODES])
    opener = gzip.open if path.suffix == ".gz" else open
    with atomic_path(path) as tmp:
        with opener(tmp, "wt", encoding="utf-8", newline="") as out:
            for chunk in itertools.chain([events], append_chunks or []):
                chunk = chunk.to_unit("MeV")
                bad = ~np.isin(chunk.obj_type, allowed)
                if bad.any():
                    raise ValueError(f"object code {codes[chunk.obj_type[bad][0]]!r} has no Dark Machines "
                                     f"equivalent; allowed: {' '.join(objects.DARKMACHINES_CODES)}")
                out.writelines(_format_event(chunk, i, codes) for i in range(len(chunk)))
    return path


__all__ = ["DarkMachinesReader", "iter_darkmachines", "read_darkmachines", "write_darkmachines",
           "diagnose_line", "HEADER_FIELDS", "OBJECT_FIELDS"]
