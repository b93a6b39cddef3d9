"""An independent, deliberately naive Dark Machines parser: one line at a time with str.split/float.

Used only by the tests to check the vectorised reader against something obviously correct.
"""
from __future__ import annotations

CODES = {"j": 0, "b": 1, "e-": 2, "e+": 3, "m-": 4, "m+": 5, "g": 6}


def parse_line(line: str) -> dict:
    fields = line.rstrip("\n").rstrip(";").split(";")
    event = {"event_id": int(fields[0]), "process": fields[1], "weight": float(fields[2]),
             "met": float(fields[3]), "met_phi": float(fields[4]), "objects": []}
    for field in fields[5:]:
        code, e, pt, eta, phi = field.split(",")
        event["objects"].append((CODES[code], float(e), float(pt), float(eta), float(phi)))
    return event
