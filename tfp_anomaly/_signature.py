"""The keyword arguments a class's constructor accepts, over the classes it extends."""
from __future__ import annotations

import inspect


def constructor_keywords(cls, package: str | None = None) -> set[str]:
    """Names of the ``__init__`` parameters of ``cls`` and its bases (only bases defined in modules
    of ``package`` when given, e.g. to leave out ``keras.Model``'s own ``name``/``dtype``)."""
    names = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass) and (package is None or klass.__module__.startswith(package)):
            names |= {p for p, v in inspect.signature(klass.__init__).parameters.items()
                      if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY) and p != "self"}
    return names
