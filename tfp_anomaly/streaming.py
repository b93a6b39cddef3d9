"""Event files as rows of their columnar caches: the background of a run selected, split and read block
by block, so that ``tfp-anomaly train`` and ``score`` work on files larger than memory.

Every event file a configuration names is converted once to its columnar HDF5 cache
(:func:`tfp_anomaly.data.cache.ensure_cache`: reused afterwards, converted again when the source changes)
and read back by event ranges (:class:`tfp_anomaly.data.cache.CacheReader`). :class:`EventFiles` numbers
the events of several files as one sequence of *rows*.

**The selection is one byte per row.** :func:`select_background` gives every row a code: its part of the
split (0 train, 1 validation, 2 test: :data:`tfp_anomaly.data.splits.PARTS`) or :data:`UNUSED` (a signal
event of a labelled file, or a row ``data.max_events`` does not keep). The codes are made exactly as the
in-memory reading always made them (label-1 events removed, ``data.subset`` of ``data.max_events``, the
seeded permutation split of :func:`tfp_anomaly.data.splits.split_indices`), so a streamed run and an
in-memory run of one configuration train and score the same events. Memory: one byte per row kept, and
for a moment 17 bytes per event while the permutation is drawn (8.5 M events: 145 MB).

**A part streamed** (:class:`StreamedPart`) reads its rows block by block. In order (scoring, validation):
consecutive events in chunks. Shuffled (training), epoch ``e``: the blocks of :data:`BLOCK_ROWS` rows (the
cache's HDF5 chunk length, so one block is one contiguous read) are visited in an order drawn from
``(seed, e)``, ``data.chunk_events`` events of several blocks are gathered into a buffer, permuted and cut
into batches (a remainder waits for the next buffer, so every batch but an epoch's last is full). This is a
block-wise approximation of a global shuffle: a batch mixes the events of a buffer's blocks. A file
written process by process still gives every batch several processes once a buffer holds several blocks
(``data.chunk_events`` ≥ 4 blocks by default). Memory: one buffer of model input.

The scaler and the scoring statistics are fitted on :func:`fit_rows`, a seeded uniform sample of at most
``data.fit_events`` training events (all of them when there are fewer), in both modes.
"""
from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .data import Events, concatenate
from .data.observables import compute as compute_observables
from .data.splits import PARTS, split_indices, subset_indices

log = logging.getLogger(__name__)

#: the code of a row that is in no part (a signal event of a labelled file, a row not kept)
UNUSED = 255
#: rows per block of a shuffled pass: the cache's HDF5 chunk length (one block = one contiguous read)
BLOCK_ROWS = 1 << 16


class EventFiles:
    """The event files of one configuration key as one sequence of rows, each file through its cache.

    Args:
        paths: the event files, in the configuration's order.
        key: the configuration key that named them (errors name it).
        formats: the format name of each file (``data.format`` or detected).
        on_error: the Dark Machines reader's policy for malformed lines (``data.on_error``).
        unit: the unit events are returned in (the cache keeps the file's).
        cache_dir: where the caches are written (None: the default of ``ensure_cache``).
        options: the reader options of each file (:func:`tfp_anomaly.data.formats.reader_options`:
            a ROOT file's tree and branch mapping), None for none.
    """

    def __init__(self, paths, key: str, formats, on_error: str = "raise", unit: str = "GeV", cache_dir=None,
                 options=None):
        from .data.cache import CacheReader
        from .data.store import ensure_cache

        self.paths, self.key, self.unit = [Path(p) for p in paths], key, unit
        options = options or [None] * len(self.paths)
        self.infos = [ensure_cache(p, format=f, on_error=on_error, cache_dir=cache_dir, options=o)
                      for p, f, o in zip(self.paths, formats, options)]
        self.readers = [CacheReader(info.path) for info in self.infos]
        self.starts = np.concatenate([[0], np.cumsum([r.n_events for r in self.readers])]).astype(np.int64)

    @property
    def n_rows(self) -> int:
        return int(self.starts[-1])

    @property
    def n_skipped(self) -> int:
        """Malformed lines skipped when the files were converted (``data.on_error: skip``)."""
        return int(sum(info.n_skipped for info in self.infos))

    def close(self) -> None:
        for reader in self.readers:
            reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _pieces(self, start: int, stop: int):
        """``(file number, first row in the file, last row + 1 in the file)`` of rows [start, stop)."""
        for k in range(len(self.readers)):
            lo, hi = max(start, self.starts[k]), min(stop, self.starts[k + 1])
            if lo < hi:
                yield k, int(lo - self.starts[k]), int(hi - self.starts[k])

    def read(self, start: int, stop: int) -> Events:
        """The events of rows [start, stop), in ``unit``; unlabelled files' events labelled 0 when
        another file of the key carries labels."""
        parts = [self.readers[k].read(lo, hi).to_unit(self.unit) for k, lo, hi in self._pieces(start, stop)]
        if any(p.labels is not None for p in parts):
            parts = [p if p.labels is not None else p.with_label(0) for p in parts]
        return concatenate(parts) if parts else Events.empty(unit=self.unit)

    def column(self, name: str, start: int = 0, stop: int | None = None) -> np.ndarray:
        """One per-event column of rows [start, stop): ``labels`` (0 where a file has none), ``weights``
        or ``event_ids``."""
        stop = self.n_rows if stop is None else stop
        parts = []
        for k, lo, hi in self._pieces(start, stop):
            reader = self.readers[k]
            if name == "labels" and not reader.has_labels:
                parts.append(np.zeros(hi - lo, np.int8))
            else:
                parts.append(np.asarray(getattr(reader, name)(lo, hi)))
        return np.concatenate(parts) if parts else np.zeros(0)

    def file_of(self, rows: np.ndarray) -> np.ndarray:
        """The number of the file (in :attr:`paths`) each row comes from."""
        return (np.searchsorted(self.starts, np.asarray(rows), side="right") - 1).astype(np.int16)

    def read_rows(self, rows: np.ndarray, block: int | None = None) -> Events:
        """The events of the sorted ``rows``, read block by block (only the blocks that hold some)."""
        rows, block = np.asarray(rows, np.int64), block or BLOCK_ROWS
        parts = []
        for lo in np.unique(rows // block) * block:
            inside = rows[(rows >= lo) & (rows < lo + block)]
            events = self.read(int(lo), int(min(lo + block, self.n_rows)))
            parts.append(events[inside - lo])
        return concatenate(parts) if parts else Events.empty(unit=self.unit)


# --------------------------------------------------------------------------- the selection

def select_background(files: EventFiles, max_events: int | None, subset: str, fractions, seed: int,
                      chunk: int = 1 << 22) -> tuple[np.ndarray, dict]:
    """(row codes, counts) of the background of ``files``: label-1 rows removed, ``max_events`` kept by
    ``subset`` (seeded by ``seed``), the rest split by ``fractions`` with ``seed``; the codes of the
    module docstring. Reads only the label column."""
    keep = np.empty(files.n_rows, bool)
    for start in range(0, files.n_rows, chunk):
        keep[start:start + chunk] = files.column("labels", start, min(start + chunk, files.n_rows)) != 1
    n_background = int(keep.sum())
    counts = {"rows": files.n_rows, "signal_events_removed": files.n_rows - n_background}
    if max_events:
        chosen = np.zeros(n_background, bool)
        chosen[subset_indices(n_background, int(max_events), subset, seed)] = True
        keep[keep] = chosen
    n = int(keep.sum())
    codes = np.full(files.n_rows, UNUSED, np.uint8)
    codes[keep] = split_indices(n, fractions, seed).codes()
    counts.update(background_events=n, split={part: int((codes == c).sum()) for c, part in enumerate(PARTS)})
    return codes, counts


def part_rows(codes: np.ndarray, part: str) -> np.ndarray:
    """The rows of ``part`` (``"train"``, ``"val"``, ``"test"``), sorted."""
    return np.flatnonzero(codes == PARTS.index(part))


def fit_rows(codes: np.ndarray, fit_events: int | None, seed: int) -> np.ndarray:
    """The training rows the scaler and the scores are fitted on: a uniform random sample of at most
    ``fit_events`` (``data.fit_events``) of them, drawn with ``default_rng([seed, 1])``
    (:func:`tfp_anomaly.data.splits.subset_indices`), in row order; all of them without a limit."""
    train = part_rows(codes, "train")
    if not fit_events:
        return train
    return train[subset_indices(len(train), int(fit_events), "random", seed)]


# --------------------------------------------------------------------------- a streamed part

@dataclasses.dataclass
class Chunk:
    """Consecutive events of a part: their model input, weights (or None), event ids and file numbers,
    and, for a part read to be scored, ``{name: (n,)}`` physics observables
    (:mod:`tfp_anomaly.data.observables`; None otherwise, e.g. in training)."""

    inputs: object
    weights: np.ndarray | None
    event_id: np.ndarray
    file: np.ndarray
    observables: dict | None = None


class _Part:
    """What training and scoring read of a part: ``n_events`` and its events in order, in chunks."""

    n_events: int

    def chunks(self, size: int | None = None) -> Iterator[Chunk]:
        raise NotImplementedError

    def events(self, first: int, stop: int, size: int | None = None) -> Iterator[Chunk]:
        """The part's events [first, stop) in order, in chunks of about ``size`` (scoring a shard)."""
        seen = 0
        for chunk in self.chunks(size):
            n = len(chunk.event_id)
            lo, hi = max(first - seen, 0), min(stop - seen, n)
            if lo < hi:
                yield _slice(chunk, slice(lo, hi))
            seen += n
            if seen >= stop:
                return



@dataclasses.dataclass
class MemoryPart(_Part):
    """A part held in memory: its model input, weights (or None), event ids and file numbers (default:
    the row numbers and file 0), and its events' physics observables ``{name: (N,)}`` (or None)."""

    inputs: object
    weights: np.ndarray | None = None
    event_id: np.ndarray | None = None
    file: np.ndarray | None = None
    observables: dict | None = None

    def __post_init__(self):
        from .data import arrays

        self.n_events = arrays.n_events(self.inputs)
        if self.event_id is None:
            self.event_id = np.arange(self.n_events, dtype=np.int64)
        if self.file is None:
            self.file = np.zeros(self.n_events, np.int16)

    def chunks(self, size: int | None = None) -> Iterator[Chunk]:
        size = size or max(self.n_events, 1)
        for start in range(0, self.n_events, size):
            yield _slice(Chunk(self.inputs, self.weights, self.event_id, self.file, self.observables),
                         slice(start, start + size))


@dataclasses.dataclass
class StreamedPart(_Part):
    """One part of a split read from :class:`EventFiles` block by block (the module docstring).

    Args:
        files: the event files.
        codes: the row codes of :func:`select_background`, or None for every row (a signal, an
            independent background).
        part: the part's code (0, 1, 2), ignored with ``codes`` None.
        to_input: events → model input (the run's object grid).
        weighted: whether batches carry the events' weights (``data.weights``).
        chunk_events: events per buffer (``data.chunk_events``).
        limit: read at most this many events of the part (the first ones).
        observables: the physics observables each chunk carries (names of
            :data:`tfp_anomaly.data.observables.OBSERVABLES`; a part to be scored), none by default.
    """

    files: EventFiles
    codes: np.ndarray | None
    part: int
    to_input: Callable[[Events], object]
    weighted: bool = True
    chunk_events: int = 1 << 18
    limit: int | None = None
    observables: tuple = ()

    def __post_init__(self):
        total = self.files.n_rows if self.codes is None else int((self.codes == self.part).sum())
        self.n_events = total if self.limit is None else min(total, int(self.limit))

    def _rows_in(self, start: int, stop: int) -> np.ndarray:
        """The part's rows in [start, stop), as offsets from ``start``."""
        if self.codes is None:
            return np.arange(stop - start)
        return np.flatnonzero(self.codes[start:stop] == self.part)

    def _blocks(self):
        """Row ranges of :data:`BLOCK_ROWS` rows holding events of the part, in order, up to ``limit``."""
        seen = 0
        for start in range(0, self.files.n_rows, BLOCK_ROWS):
            if seen >= self.n_events:
                return
            stop = min(start + BLOCK_ROWS, self.files.n_rows)
            count = len(self._rows_in(start, stop))
            if count:
                yield start, stop, min(count, self.n_events - seen)
                seen += count

    def _read(self, blocks, order: np.ndarray | None = None) -> Chunk:
        """The part's events in ``blocks``, in ``order`` when given (applied to the events before they
        are put on the grid, so that the buffer's model input exists once)."""
        events, rows = [], []
        for start, stop, take in blocks:
            inside = self._rows_in(start, stop)[:take]
            events.append(self.files.read(start, stop)[inside])
            rows.append(start + inside)
        table, rows = concatenate(events), np.concatenate(rows)
        if order is not None:
            table, rows = table[order], rows[order]
        return Chunk(self.to_input(table), table.weight if self.weighted else None, table.event_id,
                     self.files.file_of(rows), compute_observables(table, self.observables) if self.observables else None)

    def chunks(self, size: int | None = None) -> Iterator[Chunk]:
        """The part's events in order, in chunks of about ``size`` events (whole blocks; default
        ``chunk_events``)."""
        size, group, count = size or self.chunk_events, [], 0
        for block in self._blocks():
            group.append(block)
            count += block[2]
            if count >= size:
                yield self._read(group)
                group, count = [], 0
        if group:
            yield self._read(group)

    def shuffled(self, seed: int, epoch: int) -> Iterator[Chunk]:
        """The part's events in the shuffled order of ``epoch``: blocks in an order drawn from
        ``(seed, epoch)``, each buffer of about ``chunk_events`` events permuted."""
        rng = np.random.default_rng([int(seed), int(epoch)])
        blocks = list(self._blocks())
        per_buffer = max(1, self.chunk_events // BLOCK_ROWS)
        order = rng.permutation(len(blocks))
        for k in range(0, len(order), per_buffer):
            group = [blocks[i] for i in sorted(order[k:k + per_buffer])]
            yield self._read(group, rng.permutation(sum(take for _, _, take in group)))


    def epoch_dataset(self, batch_size: int, seed: int, epoch, shuffle: bool = True, worker: int = 0,
                      workers: int = 1):
        """One epoch in batches, the protocol of :mod:`tfp_anomaly.data.parts`: the events of
        :meth:`shuffled` for ``epoch`` (or in order) cut into global batches of ``batch_size``
        (:func:`batches`), of which worker ``worker`` of ``workers`` takes its rows
        (:func:`tfp_anomaly.data.parts.shard_bounds`); elements ``x``, or ``(x, (), w)`` with weights."""
        import tensorflow as tf

        from .data.parts import NO_TARGET, check_shard, shard_bounds, steps_per_epoch

        check_shard(worker, workers)
        probe = next(self.chunks(1))

        @tf.autograph.experimental.do_not_convert
        def generate(epoch_number):
            chunks = self.shuffled(seed, int(epoch_number)) if shuffle else self.chunks()
            for inputs, weights in batches(chunks, batch_size):
                n = len(inputs["x"]) if isinstance(inputs, dict) else len(inputs)
                if n < workers:  # would leave a replica without events (parts.steps_per_epoch)
                    continue
                rows = slice(*shard_bounds(n, worker, workers))
                x = _take(inputs, rows)
                yield (x, weights[rows].astype(np.float32)) if self.weighted else x

        def spec(value):
            return tf.TensorSpec((None,) + np.shape(value)[1:], tf.as_dtype(np.asarray(value).dtype))

        signature = tf.nest.map_structure(spec, probe.inputs)
        if self.weighted:
            signature = (signature, tf.TensorSpec((None,), tf.float32))
        dataset = tf.data.Dataset.from_generator(generate, args=(tf.cast(epoch, tf.int64),),
                                                 output_signature=signature)
        if self.weighted:
            dataset = dataset.map(lambda x, w: (x, NO_TARGET, w))
        # the number of batches, known without reading (Keras then reads exactly one pass)
        steps = steps_per_epoch(self.n_events, batch_size, workers)
        return dataset.apply(tf.data.experimental.assert_cardinality(steps)).prefetch(2)

def _take(inputs, index):
    from .data import arrays

    return arrays.take(inputs, index)


def batches(chunks: Iterator[Chunk], batch_size: int) -> Iterator[tuple]:
    """``(inputs, weights)`` batches of ``batch_size`` events cut from consecutive chunks (:func:`rechunk`):
    every batch but the last is full."""
    for chunk in rechunk(chunks, batch_size):
        yield chunk.inputs, chunk.weights


def rechunk(chunks: Iterator[Chunk], size: int) -> Iterator[Chunk]:
    """Chunks of exactly ``size`` events (the last one may be smaller) cut from consecutive ``chunks``:
    views of each chunk, the events a chunk leaves over copied and completed from the next one, so that
    no chunk is ever copied whole (memory: one chunk and one ``size``)."""
    rest = None
    for chunk in chunks:
        n, start = len(chunk.event_id), 0
        if rest is not None:
            start = min(size - len(rest.event_id), n)
            rest = _join(rest, _slice(chunk, slice(0, start)))
            if len(rest.event_id) < size:
                continue
            yield rest
            rest = None
        full = start + (n - start) // size * size
        for first in range(start, full, size):
            yield _slice(chunk, slice(first, first + size))
        rest = _copy(_slice(chunk, slice(full, n))) if full < n else None
    if rest is not None:
        yield rest


def _join(a: Chunk, b: Chunk) -> Chunk:
    from .data import arrays

    return Chunk(arrays.concatenate([a.inputs, b.inputs]),
                 None if a.weights is None else np.concatenate([a.weights, b.weights]),
                 np.concatenate([a.event_id, b.event_id]), np.concatenate([a.file, b.file]),
                 None if a.observables is None else {k: np.concatenate([v, b.observables[k]])
                                                     for k, v in a.observables.items()})


def _copy(chunk: Chunk) -> Chunk:
    """A chunk that owns its arrays (not views keeping a whole buffer alive)."""
    import copy

    return Chunk(*(copy.deepcopy(v) if isinstance(v, dict) else None if v is None else np.array(v)
                   for v in (chunk.inputs, chunk.weights, chunk.event_id, chunk.file, chunk.observables)))


def _slice(chunk: Chunk, index) -> Chunk:
    return Chunk(_take(chunk.inputs, index), None if chunk.weights is None else chunk.weights[index],
                 chunk.event_id[index], chunk.file[index],
                 None if chunk.observables is None else {k: v[index] for k, v in chunk.observables.items()})
