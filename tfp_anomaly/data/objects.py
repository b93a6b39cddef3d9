"""Registry of reconstructed object types.

Codes follow the Dark Machines challenge (arXiv:2105.14027): ``j`` jet, ``b`` b-tagged jet,
``e-``/``e+`` electron/positron, ``m-``/``m+`` muon/antimuon, ``g`` photon. Formats that do not
record the charge (ADC2021) use ``e`` and ``m``; particle-level formats (LHC Olympics raw) use
``h`` for a hadron / particle-flow candidate. Type ids are small integers stored per object.
"""
from __future__ import annotations

import dataclasses

from ..registry import Registry


@dataclasses.dataclass(frozen=True)
class ObjectType:
    """One kind of reconstructed object.

    Args:
        id: the small integer stored per object (``Events.obj_type``).
        code: the short name used in files and configurations (``"j"``, ``"e-"``).
        name: the name in words.
        charge: electric charge in units of e; None where the format does not record it.
    """

    id: int
    code: str
    name: str
    charge: int | None = None


_TYPES = (
    ObjectType(0, "j", "jet", 0),
    ObjectType(1, "b", "b-jet", 0),
    ObjectType(2, "e-", "electron", -1),
    ObjectType(3, "e+", "positron", +1),
    ObjectType(4, "m-", "muon", -1),
    ObjectType(5, "m+", "antimuon", +1),
    ObjectType(6, "g", "photon", 0),
    ObjectType(7, "e", "electron (charge not recorded)", None),
    ObjectType(8, "m", "muon (charge not recorded)", None),
    ObjectType(9, "h", "hadron / particle-flow candidate", None),
)

#: object code -> :class:`ObjectType`, in id order.
BY_CODE = Registry("object code", listing="known codes")
for _type in _TYPES:
    BY_CODE.register(_type.code, _type)
#: type id -> :class:`ObjectType`.
BY_ID = {t.id: t for t in _TYPES}
#: The object codes a Dark Machines CSV may contain.
DARKMACHINES_CODES = ("j", "b", "e-", "e+", "m-", "m+", "g")


def type_id(code: str) -> int:
    """Integer id of an object code; an unknown code raises ``KeyError`` naming the known codes."""
    return BY_CODE.lookup(code).id


def code_of(type_id_: int) -> str:
    """The object code of a type id."""
    return BY_ID[int(type_id_)].code


def available() -> list[str]:
    """All registered object codes, in id order."""
    return list(BY_CODE)
