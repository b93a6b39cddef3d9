"""Peer implementations the benchmarks run beside ours, in the same process and on the same data.

* :mod:`.darkflow_torch`: the DarkFlow ConvVAE and its Planar, Householder-Sylvester and IAF
  posteriors in PyTorch (Jawahar et al. 2022, arXiv:2110.08508), architecture for architecture the
  Keras models of ``benchmarks/train_speed.py``. Needs the ``peers`` extra (the CPU build of
  PyTorch): ``pip install -e .[peers]``.

Without the extra :func:`darkflow` is None and the benchmarks print :data:`NOT_RUN` where the
peer's figures would be: never a figure copied from another run.
"""
from __future__ import annotations

import importlib
import importlib.util

#: what a benchmark table says in place of a peer figure when PyTorch is not installed
NOT_RUN = "not run (pip install -e .[peers])"


def darkflow():
    """The :mod:`.darkflow_torch` module, or None when ``torch`` is not installed (an error inside an
    installed torch or inside the peer is raised, not hidden)."""
    if importlib.util.find_spec("torch") is None:
        return None
    return importlib.import_module(".darkflow_torch", __name__)
