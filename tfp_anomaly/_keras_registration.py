"""Make ``keras.models.load_model`` restore this package's models after a plain ``import tfp_anomaly``.

Keras finds a saved custom class only when the class was registered, that is when the module that
defines it was imported (``tfp_anomaly.models`` registers all of them). Importing it costs TensorFlow,
so ``import tfp_anomaly`` does not; instead it puts a cheap stand-in under each registered name into
Keras' table of custom objects (``keras.saving.get_custom_objects()``, public and meant to be
edited) as soon as Keras is imported (at once when it already is, else right after its import). A
stand-in's ``from_config`` imports ``tfp_anomaly.models``, whose real classes then replace every
stand-in, and builds the object with the real class. A name already registered is left alone.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

#: the names this package registers with Keras (``package>Class``); tests/test_config_checks.py checks
#: that this is every one ``tfp_anomaly.models`` registers
REGISTERED = {
    "tfp_anomaly.models": ("VAE", "SWAE", "Ensemble", "ScalerLayer", "SeededDropout", "EdgeConv", "MaskedPooling",
                           "ObjectTypes", "Conv2DTranspose"),
    "tfp_anomaly.flows": ("ActNorm", "ConvFlow", "FFJORD", "FlowChain", "FlowDensity", "GlowStep", "Householder",
                          "HouseholderSylvester", "IAF", "InvertibleLinearLU", "MADE", "MAF", "MLP", "NICE",
                          "OrthogonalSylvester", "Planar", "Radial", "RandomPermutation", "RealNVP", "Reverse",
                          "SplineAutoregressive", "SplineCoupling", "TriangularSylvester"),
}


def registered_names() -> list[str]:
    """Every ``package>Class`` name of :data:`REGISTERED`."""
    return [f"{package}>{name}" for package, names in REGISTERED.items() for name in names]


class StandIn:
    """Stands for the class registered as ``name`` until ``tfp_anomaly.models`` is imported."""

    def __init__(self, name: str):
        self.name = name

    def real_class(self):
        import keras

        import tfp_anomaly.models  # noqa: F401  (registers the real classes, replacing the stand-ins)

        cls = keras.saving.get_custom_objects().get(self.name)
        if cls is None or isinstance(cls, StandIn):
            raise TypeError(f"{self.name} is not a class of this version of tfp_anomaly")
        return cls

    def from_config(self, config, custom_objects=None):
        return self.real_class().from_config(config)

    def __repr__(self):
        return f"StandIn({self.name!r})"


def add_stand_ins(custom_objects: dict) -> None:
    """Put a :class:`StandIn` under each name of :data:`REGISTERED` that ``custom_objects`` lacks."""
    for name in registered_names():
        custom_objects.setdefault(name, StandIn(name))


def _register_now() -> None:
    keras = sys.modules.get("keras")
    saving = getattr(keras, "saving", None)
    if saving is not None and hasattr(saving, "get_custom_objects"):
        add_stand_ins(saving.get_custom_objects())


class _AfterKerasImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``keras`` with the other finders and runs :func:`_register_now` once it is imported."""

    def __init__(self):
        self.loader = None

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)  # once only; and the search below must not find this finder again
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        try:
            _register_now()
        except Exception:  # a Keras without get_custom_objects: the classes register on import as before
            pass


def install() -> None:
    """Register the stand-ins now if Keras is imported, else as soon as it is."""
    if "keras" in sys.modules:
        _register_now()
    elif not any(isinstance(finder, _AfterKerasImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKerasImport())
