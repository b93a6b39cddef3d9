"""Several processes at once: in parallel, background mixed by cross section.

:func:`generate_many` spreads processes and parallel streams of a process over ``jobs`` workers. :func:`mixture_counts`
shares a total number of background events between processes in proportion to their accepted
cross sections σ·ε, measured by a short pilot run of each process (a different seed stream from
the production run), so the mixture is the Standard Model composition after the selection.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import multiprocessing
import os

import numpy as np

from ..events import Events, concatenate
from .pythia import GenerationStats, generate

PILOT_SEED_OFFSET = 7_919  # the pilot's seed stream is never the production one


_ACCEPTED = None  # in a worker: the shared counter of accepted events, for the progress bar


def _share_counter(counter):
    global _ACCEPTED
    _ACCEPTED = counter


def _count(_):
    if _ACCEPTED is not None:
        with _ACCEPTED.get_lock():
            _ACCEPTED.value += 1


def _one(args):
    process, n_events, seed, selection, stream = args
    return generate(process, n_events, seed=seed, selection=selection, stream=stream, progress=_count)


def _run(tasks, jobs: int, progress: bool) -> list:
    """Results of ``_one`` for every task, ``jobs`` worker processes at a time, with a Keras progress
    bar over accepted events fed by a counter the workers share."""
    counter = multiprocessing.Value("q", 0)
    bar = None
    if progress:
        from keras.utils import Progbar

        bar = Progbar(sum(t[1] for t in tasks), unit_name="event")
    with concurrent.futures.ProcessPoolExecutor(max(1, min(jobs, len(tasks))), initializer=_share_counter,
                                                initargs=(counter,)) as pool:
        futures = [pool.submit(_one, t) for t in tasks]
        while concurrent.futures.wait(futures, timeout=1.0).not_done:
            if bar is not None:
                bar.update(counter.value)
        if bar is not None:
            bar.update(counter.value, finalize=True)
        return [f.result() for f in futures]


def _streams(n_events: int, jobs: int, min_events: int = 2000) -> list[int]:
    """Event counts of the parallel streams of one process (one stream for small requests)."""
    parts = max(1, min(jobs, n_events // min_events))
    return [n_events // parts + (k < n_events % parts) for k in range(parts)]


def _merge(stats: list[GenerationStats]) -> GenerationStats:
    """One process' statistics over its streams (cross sections averaged by generated events)."""
    generated = sum(s.generated for s in stats)
    sigma = sum(s.sigma_mb * s.generated for s in stats) / max(generated, 1)
    error = np.sqrt(sum((s.sigma_error_mb * s.generated) ** 2 for s in stats)) / max(generated, 1)
    return GenerationStats(stats[0].process, stats[0].seed, stats[0].pythia_seed, generated,
                           sum(s.accepted for s in stats), sigma, error)


def generate_many(counts: dict, seed: int = 0, selection: str = "ht400", jobs: int | None = None,
                  report=print, progress: bool = False) -> tuple[Events, list[GenerationStats]]:
    """All processes of ``{process: events}``, concatenated with one ``process_id`` per process.

    Work is spread over ``jobs`` worker processes (default: all cores); a large request for one
    process is split into independent random streams (stream k of (process, seed)), so the result
    depends on ``jobs`` only through how many streams a process gets: fix ``jobs`` to reproduce.
    """
    jobs = max(1, jobs or os.cpu_count() or 1)
    tasks = [(p, n_k, seed, selection, k) for p, n in counts.items() if n > 0
             for k, n_k in enumerate(_streams(n, jobs))]
    results = _run(tasks, jobs, progress)
    per_process, merged = {}, []
    for (process, *_), result in zip(tasks, results):
        per_process.setdefault(process, []).append(result)
    for process, parts in per_process.items():
        stats = _merge([s for _, s in parts])
        merged.append(stats)
        report(f"{process}: {stats.accepted:,} of {stats.generated:,} generated events pass {selection!r} "
               f"(σ = {stats.sigma_mb * 1e9:,.4g} pb, accepted σ·ε = {stats.accepted_sigma_pb:,.4g} pb, "
               f"{len(parts)} stream(s), first Pythia seed {stats.pythia_seed})")
    events = concatenate([e for parts in per_process.values() for e, _ in parts])  # one process_id per process
    events = dataclasses.replace(events, event_id=np.arange(len(events)))  # unique over the file
    return events, merged


def mixture_counts(processes: list[str], total: int, seed: int = 0, selection: str = "ht400",
                   pilot_events: int = 200, jobs: int | None = None, report=print) -> dict:
    """``{process: events}`` summing to ``total``, in proportion to each process' accepted σ·ε."""
    _, pilot = generate_many({p: pilot_events for p in processes}, seed + PILOT_SEED_OFFSET, selection, jobs,
                             report=lambda line: report("pilot " + line))
    accepted = {s.process: s.accepted_sigma_pb for s in pilot}
    norm = sum(accepted.values())
    counts = {p: int(round(total * accepted[p] / norm)) for p in processes}
    counts[max(counts, key=counts.get)] += total - sum(counts.values())  # rounding goes to the largest
    return counts
