"""Small ROOT files written with uproot for the tests: a Delphes-like tree (the branch names and split
layout of a Delphes file: ``Jet.PT`` counted by ``Jet_size``) and a flat ntuple, from seeded events of
realistic kinematics (pT 20-500 GeV, |eta| < 2.5), so that the DarkFlow object grid accepts them."""
from __future__ import annotations

from pathlib import Path

import numpy as np

#: Delphes class -> (multiplicity range, {member: dtype})
DELPHES_CLASSES = {
    "Jet": ((1, 7), {"PT": np.float32, "Eta": np.float32, "Phi": np.float32, "Mass": np.float32, "BTag": np.uint32}),
    "Electron": ((0, 3), {"PT": np.float32, "Eta": np.float32, "Phi": np.float32, "Charge": np.int32}),
    "Muon": ((0, 3), {"PT": np.float32, "Eta": np.float32, "Phi": np.float32, "Charge": np.int32}),
    "Photon": ((0, 3), {"PT": np.float32, "Eta": np.float32, "Phi": np.float32, "E": np.float32}),
    "MissingET": ((1, 2), {"MET": np.float32, "Phi": np.float32}),
    "Event": ((1, 2), {"Number": np.int64, "Weight": np.float32}),
}


def _member(rng, member: str, size: int, pt, eta):
    draws = {
        "PT": lambda: rng.uniform(20, 500, size), "MET": lambda: rng.uniform(0, 400, size),
        "Eta": lambda: rng.uniform(-2.5, 2.5, size), "Phi": lambda: rng.uniform(-np.pi, np.pi, size),
        "Mass": lambda: rng.uniform(0, 30, size), "BTag": lambda: rng.choice([0, 1, 2, 3], size, p=[0.6, 0.15, 0.15, 0.1]),
        "Charge": lambda: rng.choice([-1, 1], size), "Weight": lambda: rng.uniform(0.5, 2.0, size),
        "E": lambda: pt * np.cosh(eta) * rng.uniform(1.0, 1.01, size), "Number": lambda: np.zeros(size),
    }
    return draws[member]()


def delphes_branches(n: int = 300, seed: int = 0, *, drop=()) -> dict:
    """``{"Jet.PT": awkward array, ...}``: ``n`` events of every class of :data:`DELPHES_CLASSES` but
    ``drop``; ``Event.Number`` counts from 1000."""
    import awkward as ak

    rng = np.random.default_rng(seed)
    out = {}
    for name, ((low, high), members) in DELPHES_CLASSES.items():
        if name in drop:
            continue
        counts = rng.integers(low, high, n)
        total = int(counts.sum())
        flat = {}
        for member, dtype in members.items():
            flat[member] = _member(rng, member, total, flat.get("PT"), flat.get("Eta")).astype(dtype)
        if name == "Event":
            flat["Number"] = np.arange(1000, 1000 + n, dtype=np.int64)
        for member, values in flat.items():
            out[f"{name}.{member}"] = ak.unflatten(values, counts)
    return out


def delphes_counter(branch: str) -> str:
    """Delphes' counter of a split TClonesArray branch: ``Jet.PT`` -> ``Jet_size``."""
    return branch.split(".")[0] + "_size"


def write_tree(path, branches: dict, tree: str = "Delphes", counter=delphes_counter, pieces: int = 3) -> Path:
    """Write ``branches`` (name -> awkward or numpy array, all of one length) as the TTree ``tree`` of
    ``path``, in ``pieces`` baskets; jagged branches are counted by ``counter(name)``."""
    import awkward as ak
    import uproot

    types = {name: (f"var * {ak.type(a).content.content}" if a.ndim == 2 else np.asarray(a).dtype)
             if isinstance(a, ak.Array) else np.asarray(a).dtype for name, a in branches.items()}
    n = len(next(iter(branches.values())))
    bounds = np.linspace(0, n, pieces + 1).astype(int)
    with uproot.recreate(path) as handle:
        out = handle.mktree(tree, types, counter_name=counter)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            out.extend({name: a[lo:hi] for name, a in branches.items()})
    return Path(path)


def write_delphes(path, n: int = 300, seed: int = 0, *, drop=(), change=None, tree: str = "Delphes") -> dict:
    """A Delphes-like file of ``n`` events; ``change(branches)`` may edit the branches first. Returns the branches."""
    branches = delphes_branches(n, seed, drop=drop)
    if change is not None:
        change(branches)
    write_tree(path, branches, tree)
    return branches


#: the mapping of :func:`write_ntuple`'s branches (a ``data.root`` / ``--root-mapping``)
NTUPLE_MAPPING = {
    "tree": "events",
    "objects": {"j": {"pt": "jet_pt", "eta": "jet_eta", "phi": "jet_phi", "e": "jet_e"},
                "m": {"pt": "mu_pt", "eta": "mu_eta", "phi": "mu_phi", "charge": "mu_q"},
                "g": {"pt": "ph_pt", "eta": "ph_eta", "phi": "ph_phi"}},
    "met": {"met": "met", "phi": "met_phi"},
    "weight": "w",
    "event_id": "evt",
}


def ntuple_branches(n: int = 200, seed: int = 1) -> dict:
    """Branches of a flat ntuple: jagged jets, muons and photons, flat MET, weight and event number."""
    import awkward as ak

    rng = np.random.default_rng(seed)
    out = {}
    for prefix, (low, high) in {"jet": (1, 6), "mu": (0, 3), "ph": (0, 2)}.items():
        counts = rng.integers(low, high, n)
        total = int(counts.sum())
        pt, eta = rng.uniform(20, 500, total), rng.uniform(-2.5, 2.5, total)
        columns = {"pt": pt, "eta": eta, "phi": rng.uniform(-np.pi, np.pi, total)}
        if prefix == "jet":
            columns["e"] = pt * np.cosh(eta) + rng.uniform(0, 20, total)
        if prefix == "mu":
            columns["q"] = rng.choice([-1, 1], total).astype(np.int32)
        for name, values in columns.items():
            out[f"{prefix}_{name}"] = ak.unflatten(values.astype(np.float32) if name != "q" else values, counts)
    out.update(met=rng.uniform(0, 300, n).astype(np.float32), met_phi=rng.uniform(-np.pi, np.pi, n).astype(np.float32),
               w=rng.uniform(0.1, 1, n), evt=np.arange(n, dtype=np.int64) * 7 + 3)
    return out


def write_ntuple(path, n: int = 200, seed: int = 1, change=None) -> dict:
    """A flat ntuple of ``n`` events in the tree ``events``; ``change(branches)`` may edit them first."""
    branches = ntuple_branches(n, seed)
    if change is not None:
        change(branches)
    write_tree(path, branches, "events", counter=lambda name: "n" + name)
    return branches
