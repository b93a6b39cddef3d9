"""Normalizing flows as Keras 3 layers over TFP bijectors.

Every step is a ``keras.layers.Layer`` returning ``(z_out, log_det)``; ``get(name, **kwargs)`` makes
one by name, ``available()`` lists the names, :class:`FlowChain` composes them from a spec. The
registry :data:`FLOWS` maps names to classes: ``@FLOWS.register("name")`` adds a flow of one's own.
"""
# importing every flow module registers its flows in FLOWS
from . import (autoregressive, convflow, coupling, ffjord, glow, householder, permute, planar,  # noqa: F401
               radial, sylvester)
from .autoregressive import IAF, MAF, SplineAutoregressive
from .base import FLOWS, AmortizedFlowLayer, FlowLayer
from .convflow import ConvFlow, ConvFlowBijector
from .chain import FlowChain, available, get, parse_spec
from .density import FlowDensity
from .conditioners import MADE, MLP
from .coupling import NICE, RealNVP, SplineCoupling
from .ffjord import FFJORD
from .glow import ActNorm, GlowStep, InvertibleLinearLU
from .householder import Householder, HouseholderBijector
from .permute import RandomPermutation, Reverse
from .planar import Planar, PlanarBijector
from .radial import Radial, RadialBijector
from .sylvester import HouseholderSylvester, OrthogonalSylvester, SylvesterBijector, TriangularSylvester

__all__ = [
    "FLOWS", "FlowLayer", "AmortizedFlowLayer", "FlowChain", "FlowDensity", "available", "get", "parse_spec",
    "MADE", "MLP", "Planar", "PlanarBijector", "Radial", "RadialBijector", "Householder", "HouseholderBijector",
    "OrthogonalSylvester", "HouseholderSylvester", "TriangularSylvester", "SylvesterBijector",
    "NICE", "RealNVP", "SplineCoupling", "MAF", "IAF", "SplineAutoregressive",
    "ActNorm", "InvertibleLinearLU", "GlowStep", "FFJORD", "ConvFlow", "ConvFlowBijector",
    "Reverse", "RandomPermutation",
]
