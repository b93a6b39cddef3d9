"""Generate ``docs/api.md``, the API reference, from the docstrings and signatures of the public objects.

    python docs/build_api.py            # rewrite docs/api.md (``make docs``)
    python docs/build_api.py --check    # exit 1 when docs/api.md is not what the code says (tests do this)

Public means: the names in a module's ``__all__``, else the functions and classes the module defines
whose names do not start with ``_``. For a class: its constructor's signature and docstring, then the
public methods and properties it defines itself (inherited Keras and TFP members are not repeated).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"

#: (module, one-line role); in the order a reader meets them (docs/getting-started.md)
MODULES = [
    ("tfp_anomaly.data", "readers, the object grid, scalers, splits, tf.data pipelines"),
    ("tfp_anomaly.data.awkward_io", "Events <-> awkward arrays of event records (vector-compatible objects)"),
    ("tfp_anomaly.data.representation", "events -> model input: the object grid, observables on it or flat"),
    ("tfp_anomaly.data.arrays", "the model input's two forms: an array or {x, mask}"),
    ("tfp_anomaly.data.pipeline", "tf.data pipelines, in memory or streamed from a file (imports TensorFlow)"),
    ("tfp_anomaly.data.store", "event files converted once to their caches, reused until they change"),
    ("tfp_anomaly.data.observables", "physics observables per event: HT, MET, m_eff, m_jj, multiplicities"),
    ("tfp_anomaly.data.root", "ROOT files through uproot: Delphes trees and flat ntuples, the branch mapping"),
    ("tfp_anomaly.data.parts", "a split part as training reads it: batches, worker shards, weights"),
    ("tfp_anomaly.flows", "normalizing flows as Keras layers over TFP bijectors"),
    ("tfp_anomaly.priors", "SWAE priors as TFP distributions"),
    ("tfp_anomaly.models", "the VAE, the SWAE and their networks"),
    ("tfp_anomaly.models.sets", "Deep Sets and EdgeConv encoders over the object list"),
    ("tfp_anomaly.models.strategies", "flow-training strategies"),
    ("tfp_anomaly.models.training", "training, checkpoints, resuming"),
    ("tfp_anomaly.losses", "reconstruction losses and the sliced-Wasserstein distance"),
    ("tfp_anomaly.config", "YAML configurations"),
    ("tfp_anomaly.inputs", "configuration -> data: background, signals, split, model input, scaler"),
    ("tfp_anomaly.streaming", "event files as rows of their caches: selection, split codes, streamed parts"),
    ("tfp_anomaly.distribute", "training strategies: one process, mirrored, multi-worker"),
    ("tfp_anomaly.experiment", "configuration -> model, and training into a run directory"),
    ("tfp_anomaly.rundir", "the run directory: its files, every read and write of them"),
    ("tfp_anomaly.scoring", "scoring methods"),
    ("tfp_anomaly.evaluate", "scoring a run directory"),
    ("tfp_anomaly.detector", "the PyOD-style detector"),
    ("tfp_anomaly.report", "figures of merit, tables, the report"),
    ("tfp_anomaly.trigger", "trigger export through hls4ml"),
    ("tfp_anomaly.registry", "the name -> implementation registries"),
    ("tfp_anomaly.seeds", "stateless random streams that survive a checkpoint"),
    ("tfp_anomaly.atomic", "atomic file and model output"),
    ("tuning.space", "Keras Tuner search spaces from YAML"),
    ("tuning.search", "searches on one machine or distributed"),
]


def public_names(module) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
            and getattr(obj, "__module__", None) == module.__name__]


def signature(obj) -> str:
    """Parameter names and defaults (annotations left out: the docstrings say what each parameter is);
    ``self`` and ``cls`` dropped."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    parameters = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()
                  if p.name not in ("self", "cls")]
    text = str(sig.replace(parameters=parameters, return_annotation=inspect.Signature.empty))
    return re.sub(r" at 0x[0-9a-f]+", "", text)  # default values' addresses change from run to run


def doc(obj) -> str:
    return inspect.cleandoc(obj.__doc__) if obj.__doc__ else ""


def members(cls) -> list[str]:
    lines = []
    for name, member in vars(cls).items():
        if name.startswith("_") or not (inspect.isfunction(member) or isinstance(member, (property, classmethod,
                                                                                          staticmethod))):
            continue
        function = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        text = doc(function)
        if not text:
            continue
        head = f"`{name}`" if isinstance(member, property) else f"`{name}{signature(function)}`"
        lines += [f"- {head}: " + text.replace("\n", "\n  "), ""]
    return lines


def section(module_name: str, role: str) -> list[str]:
    module = importlib.import_module(module_name)
    lines = [f"## `{module_name}`: {role}", "", doc(module), ""]
    for name in public_names(module):
        obj = getattr(module, name)
        if inspect.isclass(obj):
            lines += [f"### class `{name}{signature(obj)}`", "", doc(obj), ""] + members(obj)
        elif callable(obj) and not inspect.ismodule(obj):
            lines += [f"### `{name}{signature(obj)}`", "", doc(obj), ""]
        elif not inspect.ismodule(obj):
            lines += [f"### `{name}`", "", f"{type(obj).__name__}" + (f": {sorted(obj)}" if isinstance(obj, dict)
                                                                       else ""), ""]
    return lines


def build() -> str:
    lines = ["# API reference", "",
             "Generated from the docstrings by `python docs/build_api.py` (`make docs`); "
             "`tests/test_docs.py` fails when this page and the code disagree. The pages beside it explain "
             "how the pieces fit together; this one lists them.", ""]
    lines += [f"- [`{name}`](#{name.replace('.', '')}) {role}" for name, role in MODULES] + [""]
    for name, role in MODULES:
        lines += section(name, role)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).rstrip() + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with docs/api.md instead of writing it")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    text = build()
    if args.check:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date: run `python docs/build_api.py`", file=sys.stderr)
            return 1
        return 0
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(OUT)
    print(f"wrote {OUT} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
