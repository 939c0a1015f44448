"""Typed ids and references at the domain boundary.

Stored references are always local and literal (`Patient/<id>`): intake rewrites Bundle-local
`urn:uuid:` references before anything is stored. Domain code passes `Ref` and the `NewType` ids
below instead of splitting strings, so a Task id can never be passed where an organisation id is
expected, and "the id part of a reference" is written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

# The id of an organisation: the tenant of every stored row (a practice, a time bank, a board).
OrgId = NewType("OrgId", str)
# The logical id of one stored FHIR resource, unique within its type.
ResourceId = NewType("ResourceId", str)


@dataclass(frozen=True, slots=True)
class Ref:
    """A local literal reference, `<type>/<id>`."""

    rtype: str
    id: ResourceId

    @classmethod
    def parse(cls, text: str) -> Ref:
        """`Patient/1` -> Ref("Patient", "1"); ValueError for anything else (no type, no id,
        a version, a full URL): stored references were made local at intake."""
        rtype, slash, rid = text.partition("/")
        if not slash or not rtype or not rid or "/" in rid:
            raise ValueError("not a local reference of the form Type/id")
        return cls(rtype, ResourceId(rid))

    @classmethod
    def of(cls, element: object) -> Ref | None:
        """The Ref in a FHIR Reference element (`{"reference": "Type/id"}`), or None when the
        element is absent or names no local resource."""
        if not isinstance(element, dict):
            return None
        text = element.get("reference")
        if not isinstance(text, str):
            return None
        try:
            return cls.parse(text)
        except ValueError:
            return None

    def element(self) -> dict[str, str]:
        """As a FHIR Reference element."""
        return {"reference": str(self)}

    def __str__(self) -> str:
        return f"{self.rtype}/{self.id}"


def id_of(text: str) -> ResourceId:
    """The id part of a stored `Type/id` reference (ValueError if it is not one)."""
    return Ref.parse(text).id
