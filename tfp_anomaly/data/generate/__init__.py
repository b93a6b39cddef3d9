"""Monte-Carlo event generation: Pythia 8 processes, a fast detector simulation, selections.

Needs the optional extra ``generate`` (pythia8mc + fastjet); everything else in the toolkit works
without it. See :mod:`.processes` (cards), :mod:`.detector` (object reconstruction, MET),
:mod:`.selections` and :mod:`.pythia` (the generation loop).
"""
from .detector import DetectorConfig, Particles, reconstruct
from .processes import PROCESSES, ProcessCard
from .pythia import GenerationStats, generate, process_seed
from .selections import SELECTIONS

__all__ = ["DetectorConfig", "Particles", "reconstruct", "PROCESSES", "ProcessCard", "GenerationStats",
           "generate", "process_seed", "SELECTIONS"]
