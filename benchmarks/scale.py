"""Scale through the command line: a channel-3-sized Dark Machines file converted, trained, scored and
reported, each stage one ``tfp-anomaly`` command in a process of its own, with its wall time, CPU time
and peak resident memory (the child's own ``ru_maxrss``, from ``os.wait4``: exact, not sampled).

The file: ``--events`` (default 8,500,000, the size of the Dark Machines channel-3 background) events
resampled with replacement (seed 0) from the embedded Pythia 8 background and renumbered 0..N-1, as a
plain Dark Machines CSV. The stages:

1. ``tfp-anomaly data convert events.csv events.h5``: the columnar cache, written chunk by chunk.
2. ``tfp-anomaly train convvae.yaml -o data.background=events.h5 data.stream=true training.epochs=1``:
   the DarkFlow ConvVAE of ``examples/configs/convvae.yaml``, one epoch over the training part
   (60 % of the events) streamed from the cache, which a cache given as ``data.background`` is read
   from in place (a CSV named there instead would be converted through the automatic cache inside this
   stage, the same code as stage 1); the scaler and the scoring statistics on ``data.fit_events``
   (500,000) training events.
3. ``tfp-anomaly score RUN``: every applicable score of the held-out test part (20 %) and of the
   embedded signals (``data.signals: sample``), chunk by chunk, into ``RUN/scores.h5``.
4. ``tfp-anomaly report RUN --out REPORT --bootstrap 10``: the comparison report.

The target: every stage under 2 GiB of resident memory, whatever the file size.

``--workers-events N`` (default 400,000; 0 skips it) then compares training throughput on one machine:
the same streamed N-event file trained for one epoch by one process and by two workers of
``training.strategy: multi_worker`` (``tfp-anomaly train ... --worker-index I --workers
127.0.0.1:P0,127.0.0.1:P1``) at equal global batch and at equal per-worker batch; and it measures the
all-reduce alone: two processes of a ``tf.distribute.MultiWorkerMirroredStrategy`` summing the model's
gradient-sized vector (its parameter count in float32) step after step, against the same strategy with
one worker. On this machine the two workers share its cores, so no speed-up is expected: what the
figures give is the price of synchronous data parallelism per step, the part a cluster does not divide.

    python benchmarks/scale.py [--events 8500000] [--workers-events 400000] [--markdown docs/benchmarks.md]
    python benchmarks/scale.py --events 200000 --workers-events 100000      # a quick check, a few minutes
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import command_line, machine, markdown_table, write_section  # noqa: E402

MARK = "<!-- scale -->"
LIMIT_MIB = 2048
CONFIG = ROOT / "examples" / "configs" / "convvae.yaml"


# --------------------------------------------------------------------------- the file

def make_file(n: int, seed: int, out: Path) -> Path:
    """``n`` events resampled with replacement from the embedded background, renumbered 0..n-1, as a
    Dark Machines CSV."""
    from tfp_anomaly.data.sample import sample_files

    with gzip.open(sample_files()["background"], "rt") as handle:
        bodies = [line.split(";", 1)[1] for line in handle if line.strip()]
    rng = random.Random(seed)
    with out.open("w") as handle:
        for start in range(0, n, 100_000):
            picked = rng.choices(bodies, k=min(100_000, n - start))
            handle.writelines(f"{start + i};{body}" for i, body in enumerate(picked))
    return out


# --------------------------------------------------------------------------- one command, measured

def _environment(work: Path) -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["TFP_ANOMALY_CACHE"] = str(work / "cache")  # nothing written to the user's ~/.cache
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _wait(process: subprocess.Popen) -> tuple[int, float, float]:
    """(exit code, peak RSS in MiB, CPU seconds) of a child, from ``os.wait4``'s resource usage of that
    child alone (Linux: ``ru_maxrss`` in KiB)."""
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def start_cli(argv: list[str], work: Path, log: Path, extra_env: dict | None = None) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "tfp_anomaly", *map(str, argv)], stdout=out,
                                stderr=subprocess.STDOUT, env={**_environment(work), **(extra_env or {})},
                                cwd=work)


def run_cli(name: str, argv: list[str], work: Path) -> dict:
    """Run ``tfp-anomaly ARGV`` in a child process; its wall and CPU time, peak memory and output."""
    log = work / f"{name}.log"
    start = time.perf_counter()
    code, peak, cpu = _wait(start_cli(argv, work, log))
    result = {"stage": name, "argv": [str(a) for a in argv], "rc": code, "seconds": time.perf_counter() - start,
              "cpu_seconds": cpu, "peak_mib": peak, "output": log.read_text()[-4000:],
              "load": os.getloadavg()[1]}  # the machine's 5-minute load average at the end
    status = "ok" if code == 0 else f"FAILED (exit {code})"
    print(f"{name:8s} {result['seconds']:8.1f} s  cpu {cpu:8.1f} s  peak {peak:7.0f} MiB  {status}", flush=True)
    if code:
        print(result["output"], flush=True)
    return result


def shown(argv, work: Path) -> str:
    """A command as the table shows it: ``tfp-anomaly ...`` with the work folder as ``WORK`` and the
    repository's files relative to it."""
    return " ".join(["tfp-anomaly", *(str(a).replace(str(work), "WORK").replace(f"{ROOT}{os.sep}", "")
                                      for a in argv)])


# --------------------------------------------------------------------------- the four stages

def stages(work: Path, args) -> list[dict]:
    csv_file, cache, run, report = work / "events.csv", work / "events.h5", work / "run", work / "report"
    overrides = [f"data.background={cache}", "data.stream=true", "training.epochs=1", "data.signals=sample",
                 "training.verbose=2", *(["data.chunk_events=%d" % args.chunk_events] if args.chunk_events else []),
                 *args.override]
    commands = [
        ("convert", ["data", "convert", csv_file, cache, "--no-progress"]),
        ("train", ["train", args.config, "--run-dir", run, "--override", *overrides]),
        ("score", ["score", run, "--no-progress"]),
        ("report", ["report", run, "--out", report, "--bootstrap", str(args.bootstrap)]),
    ]
    results = []
    for name, argv in commands:
        results.append(run_cli(name, argv, work))
        if results[-1]["rc"]:
            break
    return results


def run_facts(work: Path) -> dict:
    """What the run wrote: its events per part, fit seconds, parameters, events scored, the AUCs."""
    facts = {}
    summary = work / "run" / "summary.json"
    if summary.exists():
        facts["summary"] = json.loads(summary.read_text())
    score_log = work / "score.log"
    if score_log.exists():  # "RUN: K scores (...) of N test background events and a (n), b (n) -> ..."
        match = re.search(r"of ([\d,]+) test background events and (.*) -> ", score_log.read_text())
        if match:
            facts["scored"] = {"background": int(match.group(1).replace(",", "")),
                               **{name: int(n.replace(",", "")) for name, n in
                                  re.findall(r"([^\s,(]+) \(([\d,]+)\)", match.group(2))}}
    comparison = work / "report" / "comparison.csv"
    if comparison.exists():
        with comparison.open() as handle:
            facts["comparison"] = list(csv.DictReader(handle))
    return facts


# --------------------------------------------------------------------------- two workers

def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def train_workers(name: str, work: Path, config, overrides: list[str], workers: int) -> dict:
    """One epoch by ``workers`` processes (1: a plain ``tfp-anomaly train``); the chief's summary."""
    run = work / f"run-{name}"
    argv = ["train", config, "--run-dir", run, "--override", *overrides]
    start = time.perf_counter()
    if workers == 1:
        processes = [start_cli(argv, work, work / f"{name}.log")]
    else:
        cluster = ",".join(f"127.0.0.1:{p}" for p in free_ports(workers))
        processes = [start_cli([*argv, "--worker-index", str(i), "--workers", cluster], work, work / f"{name}.{i}.log")
                     for i in range(workers)]
    waited = [_wait(p) for p in processes]
    seconds = time.perf_counter() - start
    logs = [work / f"{name}.log"] if workers == 1 else [work / f"{name}.{i}.log" for i in range(workers)]
    result = {"name": name, "workers": workers, "rc": max(w[0] for w in waited), "seconds": seconds,
              "peak_mib": max(w[1] for w in waited), "cpu_seconds": sum(w[2] for w in waited),
              "argv": [str(a) for a in argv], "output": "\n".join(p.read_text()[-3000:] for p in logs)}
    if result["rc"] == 0:
        result["summary"] = json.loads((run / "summary.json").read_text())
    print(f"{name:24s} {seconds:7.1f} s  peak {result['peak_mib']:6.0f} MiB  exit {result['rc']}", flush=True)
    if result["rc"]:
        print(result["output"], flush=True)
    return result


ALLREDUCE = """
import json, sys, time
import numpy as np
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
sizes, repeat = [int(s) for s in sys.argv[1].split(",")], int(sys.argv[2])
result = {}
for params in sizes:
    @tf.function
    def step():
        def replica():
            grad = tf.fill([params], tf.constant(1.0))  # a fresh gradient-sized tensor each step
            return tf.distribute.get_replica_context().all_reduce("sum", grad)
        return strategy.run(replica)
    for _ in range(20):
        step()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        np.asarray(strategy.experimental_local_results(step())[0])
        times.append(time.perf_counter() - start)
    result[params] = 1e3 * float(np.median(times))
print(json.dumps(result))
"""


def allreduce_ms(work: Path, sizes: list[int], workers: int, repeat: int = 300) -> dict:
    """{size: median milliseconds of one all-reduce (sum) of ``size`` float32} over ``workers`` processes
    of a MultiWorkerMirroredStrategy on this machine (a gRPC ring on CPUs), one call per step as
    training makes it."""
    cluster = [f"127.0.0.1:{p}" for p in free_ports(workers)]
    processes = []
    for i in range(workers):
        env = {**_environment(work), "TF_CONFIG": json.dumps({"cluster": {"worker": cluster},
                                                              "task": {"type": "worker", "index": i}})}
        processes.append(subprocess.Popen([sys.executable, "-c", ALLREDUCE, ",".join(map(str, sizes)), str(repeat)],
                                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [p.communicate() for p in processes]
    if any(p.returncode for p in processes):
        raise RuntimeError("all-reduce probe failed:\n" + "\n".join(err[-2000:] for _, err in outputs))
    return {int(k): v for k, v in json.loads(outputs[0][0].strip().splitlines()[-1]).items()}


PIPELINE = """
import json, sys, time
from tfp_anomaly import config, inputs
prepared = inputs.prepare_data(config.load_config(sys.argv[1], sys.argv[2:]))
part = prepared.parts["train"]
start, n = time.perf_counter(), 0
for chunk in part.shuffled(0, 0):
    n += len(chunk.event_id)
print(json.dumps({"events": n, "seconds": time.perf_counter() - start}))
"""


def pipeline_rate(work: Path, config: Path, overrides: list[str]) -> float:
    """Events/s of the streamed input alone in one process: one shuffled epoch of the training part read
    from the cache and put on the object grid (what every worker does for every event of the epoch)."""
    done = subprocess.run([sys.executable, "-c", PIPELINE, str(config), *overrides], env=_environment(work),
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError("pipeline probe failed:\n" + done.stderr[-2000:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["events"] / result["seconds"]


def compare_workers(work: Path, args) -> dict:
    """One process against two workers on one ``--workers-events`` file; and the all-reduce alone."""
    csv_file, cache = work / "workers.csv", work / "workers.h5"
    make_file(args.workers_events, args.seed + 1, csv_file)
    convert = run_cli("convert (workers)", ["data", "convert", csv_file, cache, "--no-progress"], work)
    if convert["rc"]:
        return {"convert": convert}
    csv_file.unlink()
    base = [f"data.background={cache}", "data.stream=true", "training.epochs=1", "training.verbose=2",
            "split.fractions=[0.9,0.05,0.05]", "training.jit_compile=false", *args.override]
    batch = args.batch_size
    plan = [("one process", 1, batch, ["training.strategy=none"]),
            ("one process, XLA", 1, batch, ["training.strategy=none", "training.jit_compile=auto"]),
            ("two workers, same global batch", 2, batch, ["training.strategy=multi_worker"]),
            ("two workers, same batch per worker", 2, 2 * batch, ["training.strategy=multi_worker"])]
    rows = []
    for name, workers, global_batch, extra in plan:
        slug = name.replace(" ", "-").replace(",", "")
        result = train_workers(slug, work, args.config, [*base, f"training.batch_size={global_batch}", *extra], workers)
        rows.append({"configuration": name, "processes": workers, "global batch": global_batch,
                     "batch per worker": global_batch // workers, **result})
    params = next((r["summary"]["parameters"] for r in rows if "summary" in r), None)
    probe, sizes = {}, [params or 16_000, 1_000_000, 4_000_000]
    for workers in (1, 2):
        try:
            probe[workers] = allreduce_ms(work, sizes, workers)
            measured = ", ".join(f"{k:,} floats {v:.2f} ms" for k, v in probe[workers].items())
            print(f"all-reduce, {workers} worker(s): {measured}", flush=True)
        except RuntimeError as err:
            print(err, flush=True)
    try:
        pipeline = pipeline_rate(work, args.config, base)
        print(f"streamed input alone: {pipeline:,.0f} events/s", flush=True)
    except RuntimeError as err:
        print(err, flush=True)
        pipeline = None
    return {"convert": convert, "rows": rows, "parameters": params, "allreduce_ms": probe, "pipeline": pipeline}


# --------------------------------------------------------------------------- tables

def stage_table(results: list[dict], facts: dict, n_events: int) -> pd.DataFrame:
    summary = facts.get("summary", {})
    events = summary.get("events", {})
    scored = sum(facts.get("scored", {}).values())
    counts = {"convert": n_events, "train": events.get("train"), "score": scored or None, "report": scored or None}
    what = {"convert": "events read", "train": "training events, one epoch", "score": "events scored",
            "report": "events in the report"}
    rows = []
    for r in results:
        n = counts.get(r["stage"])
        rows.append({"stage": r["stage"], "events": f"{n:,} ({what[r['stage']]})" if n else "–",
                     "wall s": r["seconds"], "events/s": f"{n / r['seconds']:,.0f}" if n and not r["rc"] else "–",
                     "CPU s": r["cpu_seconds"], "peak RSS MiB": round(r["peak_mib"]),
                     f"< {LIMIT_MIB} MiB": ("yes" if r["peak_mib"] < LIMIT_MIB else "**no**") if not r["rc"]
                     else f"**failed (exit {r['rc']})**"})
    return pd.DataFrame(rows)


def worker_table(workers: dict) -> pd.DataFrame:
    rows, reference = [], None
    for r in workers.get("rows", []):
        summary = r.get("summary") or {}
        n, fit = (summary.get("events") or {}).get("train"), summary.get("train_seconds")
        rate = n / fit if n and fit else None
        reference = reference or rate
        steps = -(-n // r["global batch"]) if n else None
        rows.append({"configuration": r["configuration"], "processes": r["processes"],
                     "global batch": r["global batch"], "batch per worker": r["batch per worker"],
                     "fit s": fit if fit else "–", "events/s": f"{rate:,.0f}" if rate else "–",
                     "ms per step": f"{1e3 * fit / steps:.1f}" if fit else "–",
                     "vs one process": f"{rate / reference:.2f}×" if rate and reference else "–",
                     "peak RSS MiB (per process)": round(r["peak_mib"]),
                     "exit": r["rc"]})
    return pd.DataFrame(rows)


def auc_line(facts: dict) -> str:
    """Per signal, the best AUC of the report (``comparison.csv``), and the mean over signals of the
    model's likelihood score ``iwae`` when it is there."""
    best, iwae = {}, []
    for row in facts.get("comparison") or []:
        try:
            auc = float(row["AUC"])
        except (KeyError, TypeError, ValueError):
            continue
        if auc > best.get(row["signal"], ("", -1.0))[1]:
            best[row["signal"]] = (row["score"], auc)
        if row.get("score") == "iwae":
            iwae.append(auc)
    if not best:
        return ""
    return ("AUC after one epoch (a check that the model learnt something; per signal, the best of the report's "
            "scores): " + ", ".join(f"{signal} {auc:.3f} (`{score}`)" for signal, (score, auc) in best.items())
            + (f"; `iwae` {sum(iwae) / len(iwae):.3f} on average." if iwae else "."))


def _step_ms(row: dict) -> float | None:
    summary = row.get("summary") or {}
    n, fit = (summary.get("events") or {}).get("train"), summary.get("train_seconds")
    return 1e3 * fit / -(-n // row["global batch"]) if n and fit else None


def cluster_text(workers: dict) -> str:
    """What a cluster changes, from this machine's figures: the step time of one process, the extra
    per step of two workers at equal per-worker batch, the all-reduce alone, the input rate."""
    rows = {r["configuration"]: r for r in workers.get("rows", [])}
    one, pair = rows.get("one process"), rows.get("two workers, same batch per worker")
    if not one or not pair or _step_ms(one) is None or _step_ms(pair) is None:
        return ""
    t1, t2, b = _step_ms(one), _step_ms(pair), one["global batch"]
    rate1 = one["summary"]["events"]["train"] / one["summary"]["train_seconds"]
    probe, params = workers.get("allreduce_ms") or {}, workers.get("parameters")
    text = [f"What a cluster changes. Here one process takes {t1:.0f} ms per step of {b} events; two workers at "
            f"the same {pair['batch per worker']} events each take {t2:.0f} ms per (twice as large) step: "
            f"{t2 - t1:+.0f} ms, the two processes sharing these {os.cpu_count()} cores plus the all-reduce, so two "
            "workers do no more than one process here."]
    if 1 in probe and 2 in probe and params in probe[2]:
        ar, big = probe[2][params] - probe[1][params], max(probe[2])
        mb = 8 * params / 1e6  # a ring all-reduce sends about 2 x 4 bytes per parameter per worker
        text.append(
            f"The all-reduce alone costs {ar:.1f} ms per step for this model's {params:,} parameters "
            f"({probe[2][params]:.1f} ms with two workers against {probe[1][params]:.1f} ms with one), "
            f"{100 * ar / (t1 + ar):.0f} % of a step of {t1:.0f} ms; it is mostly latency (a {big // params}× "
            f"larger gradient, {big:,} floats, takes {probe[2][big]:.0f} ms). On machines of their own, each "
            "worker computes its batch as fast as one process alone, the global batch grows with the workers, "
            f"and the all-reduce is the cost that does not shrink: n workers train about n × {b} / ({t1:.0f} ms "
            "+ t_ar) events per second, t_ar the network's all-reduce time. A ring of n workers sends "
            f"2(n − 1)/n × 4 bytes per parameter per worker per step, {mb:.2f} MB here, "
            f"{mb * 8 / 10e3 * 1e3:.2f} ms at 10 Gb/s: t_ar grows with the 2(n − 1) hops of the ring, each a "
            "network latency, rather than with the model.")
    if workers.get("pipeline"):
        pipeline = workers["pipeline"]
        text.append(
            f"The input does not shrink either: each worker reads and grids every event of the epoch "
            f"({pipeline:,.0f} events/s on one core here, in a `tf.data` thread beside the training), so it "
            f"sets the pace beyond about {pipeline / rate1:.0f} workers ({pipeline:,.0f} / {rate1:,.0f} "
            "events/s of one training process here) and takes a core's share on each worker before that.")
    return " ".join(text)


def to_markdown(results, facts, workers, args, argv, info, work) -> str:
    table = stage_table(results, facts, args.events)
    summary = facts.get("summary", {})
    events = summary.get("events", {})
    loads = ", ".join(f"{r.get('load', 0):.1f}" for r in results)
    lines = [MARK, f"## Scale: {args.events:,} events through the command line (`benchmarks/scale.py`)", "",
             f"Command: `{command_line('scale.py', argv)}`  ",
             f"Machine: {machine()}; {info['date']}; one child process per stage, one stage at a time; the "
             f"machine was shared with other work (5-minute load average at the end of each stage: "
             f"{loads} on {os.cpu_count()} cores), "
             "so wall times are upper bounds; CPU seconds are the stage's own  ",
             f"File: {args.events:,} events resampled (seed {args.seed}) from the embedded background, Dark "
             f"Machines CSV ({info['csv_mib']:,.0f} MiB, written in {info['csv_seconds']:.0f} s), cache "
             f"{info.get('cache_mib', 0):,.0f} MiB. Model: `examples/configs/convvae.yaml` (the DarkFlow ConvVAE, "
             f"{summary.get('parameters', 0):,} parameters, "
             f"batch {args.batch_size}, XLA), one epoch, streamed (`data.stream: true`)"
             + (f"; split {events.get('train', 0):,} / {events.get('val', 0):,} / {events.get('test', 0):,} events"
                if events else "") + ". Peak RSS: the child's own `ru_maxrss` (`os.wait4`); seconds include its "
             "start-up (importing TensorFlow: about 10 s here).", "",
             markdown_table(table, digits=1), "", "The commands (`WORK` the benchmark's folder):", "", "```"]
    lines += [shown(r["argv"], work) for r in results]
    lines += ["```", ""]
    if summary.get("train_seconds"):
        fit = summary["train_seconds"]
        lines.append(f"Of the train stage, {fit:,.0f} s are `model.fit` (one epoch of {events['train']:,} events "
                     f"and the validation pass over {events['val']:,}: {events['train'] / fit:,.0f} training "
                     "events/s); the rest is start-up, the split (one byte per event), reading the "
                     "`data.fit_events` sample and fitting the scaler on it, the diagnostics after training "
                     "and saving.")
    line = auc_line(facts)
    if line:
        lines += ["", line]
    failed = [r for r in results if r["rc"]]
    for r in failed:
        lines += ["", f"**Stage {r['stage']} failed** (exit {r['rc']}, peak {r['peak_mib']:,.0f} MiB); its output "
                      "ends:", "", "```", r["output"].strip()[-1500:], "```"]
    if workers.get("rows"):
        lines += ["", f"### Two workers against one process ({args.workers_events:,} events, one machine)", "",
                  f"The same streamed file ({args.workers_events:,} events resampled, seed {args.seed + 1}; split "
                  "90 / 5 / 5 %), one epoch of the same ConvVAE, `training.jit_compile: false` in every row but "
                  "the XLA one (`train` compiles with XLA only without a distribution strategy). Two workers: "
                  "`tfp-anomaly train ... -o training.strategy=multi_worker --worker-index I --workers "
                  "127.0.0.1:P0,127.0.0.1:P1`, both on this machine's cores. `fit s`: the chief's `model.fit` "
                  "(one epoch, its validation pass, graph tracing); steps: training batches of the epoch.", "",
                  markdown_table(worker_table(workers), digits=1), ""]
        probe = workers.get("allreduce_ms") or {}
        if probe:
            sizes = sorted(next(iter(probe.values())))
            def row(size):
                name = f"{size:,}" + (" (this model's gradient)" if size == workers["parameters"] else "")
                return {"float32 summed per step": name,
                        **{f"{w} worker{'s' if w > 1 else ''} ms": probe[w].get(size) for w in sorted(probe)}}

            table = pd.DataFrame([row(size) for size in sizes])
            lines += ["All-reduce alone: one `tf.distribute.MultiWorkerMirroredStrategy` all-reduce (sum) per step "
                      "between processes on this machine (gRPC over loopback, the CPU ring), median of 300 steps "
                      "after 20 warm-up steps:", "", markdown_table(table, digits=2), ""]
        if workers.get("pipeline"):
            lines.append(f"The streamed input alone (one process reading the training part from the cache and "
                         f"putting it on the object grid, one shuffled epoch): {workers['pipeline']:,.0f} events/s. "
                         "Every worker reads and grids every event of each global batch and keeps its share.")
        lines += ["", cluster_text(workers)]
    lines.append(MARK)
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def render(path: Path, markdown: Path | None) -> int:
    """Write the section of an earlier run's ``--json`` file into ``markdown`` (or print it)."""
    saved = json.loads(path.read_text())
    workers = saved["workers"]
    if workers.get("allreduce_ms"):
        workers["allreduce_ms"] = {int(w): {int(k): v for k, v in sizes.items()}
                                   for w, sizes in workers["allreduce_ms"].items()}
    section = to_markdown(saved["stages"], saved["facts"], workers, argparse.Namespace(**saved["args"]),
                          saved["argv"], saved["info"], Path(saved["work"]))
    if markdown:
        write_section(markdown, section, MARK)
    else:
        print(section)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=8_500_000,
                        help="events in the file (default 8,500,000; 0: only the two-worker comparison)")
    parser.add_argument("--workers-events", type=int, default=400_000,
                        help="events of the one-process/two-worker comparison (0: skip it)")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the training configuration (default convvae.yaml)")
    parser.add_argument("--override", nargs="+", default=[], metavar="KEY=VALUE", help="more overrides for train")
    parser.add_argument("--chunk-events", type=int, default=None, help="data.chunk_events (default: the library's)")
    parser.add_argument("--batch-size", type=int, default=256, help="the configuration's batch (for the text)")
    parser.add_argument("--bootstrap", type=int, default=10, help="report --bootstrap")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", type=Path, default=None, help="folder for the work folder (default: $TMPDIR)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (files, runs, logs)")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--markdown", type=Path, help="write/refresh this section in a Markdown file")
    parser.add_argument("--from-json", type=Path, help="measure nothing: write --markdown from the --json file of "
                                                        "an earlier run")
    args = parser.parse_args(argv)
    if args.from_json:
        return render(args.from_json, args.markdown)
    if args.markdown and not args.events:
        parser.error("--markdown needs the stages (--events > 0)")
    args.config = args.config.resolve()

    work = Path(tempfile.mkdtemp(prefix="tfp-anomaly-scale-", dir=args.tmp))
    print(f"work folder {work}", flush=True)
    results, facts, workers, info = [], {}, {}, {"date": time.strftime("%Y-%m-%d")}
    try:
        if args.events:
            start = time.perf_counter()
            csv_file = make_file(args.events, args.seed, work / "events.csv")
            info.update(csv_seconds=time.perf_counter() - start, csv_mib=csv_file.stat().st_size / 2**20)
            print(f"file     {info['csv_seconds']:8.1f} s  {info['csv_mib']:,.0f} MiB", flush=True)
            results = stages(work, args)
            if (work / "events.h5").exists():
                info["cache_mib"] = (work / "events.h5").stat().st_size / 2**20
            csv_file.unlink(missing_ok=True)  # room for the rest
            facts = run_facts(work)
        if args.workers_events:
            workers = compare_workers(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if results:
        print(stage_table(results, facts, args.events).to_string(index=False))
    if workers.get("rows"):
        print(worker_table(workers).to_string(index=False))
        print("all-reduce ms per step:", workers.get("allreduce_ms"))
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args), "argv": sys.argv[1:] if argv is None else argv,
                                         "work": str(work), "info": info, "stages": results, "facts": facts,
                                         "workers": workers}, indent=1, default=str))
    if args.markdown:
        write_section(args.markdown, to_markdown(results, facts, workers, args, argv, info, work), MARK)
    ok = all(r["rc"] == 0 and r["peak_mib"] < LIMIT_MIB for r in results) and len(results) in (0, 4) \
        and all(r["rc"] == 0 for r in workers.get("rows", []))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
