"""Name → implementation registries: flows, priors, losses, networks, scores, formats, …

Every registry of the package is a :class:`Registry`: a read-only mapping that grows through
:meth:`Registry.register` (a decorator, or a call with the object) and says, in one wording, what it
knows when a name is not in it. A user plugs in their own flow, prior or reader by registering it
under a new name; registering a name twice is an error unless ``replace=True``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any


class UnknownNameError(KeyError, ValueError):
    """A name that is not in a registry. A ``KeyError`` (mapping look-up) and a ``ValueError`` (a bad
    configuration value) at once, whose message is not quoted like a bare ``KeyError``'s."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Registry(Mapping):
    """A mapping ``name → object`` for one kind of thing (``kind`` names it in error messages).

    Args:
        kind: what the registry holds, in words (``"flow"``, ``"prior"``): the error reads
            ``unknown <kind> 'name'; <listing>: a, b, c``.
        listing: the word before the list of known names (``"available"``).
        name_attribute: the attribute of a registered class set to the name it is registered under
            (``"name"``: a scoring method knows its own name, e.g. to write it into its config).
        on_register: called as ``on_register(name, obj)`` when an object is registered and returns
            the object to store and hand back (e.g. to register a class with Keras).
    """

    def __init__(self, kind: str, listing: str = "available", name_attribute: str | None = None,
                 on_register: Callable[[str, Any], Any] | None = None):
        self.kind, self.listing = kind, listing
        self._name_attribute, self._on_register = name_attribute, on_register
        self._entries: dict[str, Any] = {}

    def register(self, name: str, obj: Any = None, *, replace: bool = False):
        """``registry.register("name")`` as a decorator, or ``registry.register("name", obj)``;
        returns the object."""
        if obj is None:
            return lambda target: self.register(name, target, replace=replace)
        if name in self._entries and not replace:
            raise ValueError(f"{self.kind} {name!r} registered twice")
        if self._name_attribute is not None:
            setattr(obj, self._name_attribute, name)
        stored = obj if self._on_register is None else self._on_register(name, obj)
        self._entries[name] = stored
        return stored

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def unknown(self, name, what: str | None = None, hint: str = "") -> UnknownNameError:
        """The error for ``name``: ``what`` (the configuration key or context that gave it) is put in
        front, ``hint`` (e.g. ``"or a combination such as mse+kl"``) after the list."""
        prefix = f"{what}: " if what else ""
        suffix = f", {hint}" if hint else ""
        return UnknownNameError(f"{prefix}unknown {self.kind} {name!r}; {self.listing}: "
                                f"{', '.join(self.names())}{suffix}")

    def lookup(self, name, what: str | None = None, hint: str = ""):
        """The object registered as ``name``, or :meth:`unknown`'s error."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable value given as a name
            raise self.unknown(name, what, hint) from None

    def __getitem__(self, name):
        return self.lookup(name)

    def __contains__(self, name) -> bool:
        try:
            return name in self._entries
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self.names())})"
