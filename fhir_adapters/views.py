"""What another organisation sees of a practice's resource (DESIGN §6: only the fields needed).

A time bank broker needs to reach the person and know them by name: not their NHS number, their
GP, or anything else the practice holds. Subsetted resources carry the SUBSETTED tag, as FHIR
asks of any resource returned with elements left out.
"""

from __future__ import annotations

from typing import Any

from fhir_adapters.search_params import elements_of

SUBSETTED = {
    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
    "code": "SUBSETTED",
}
BROKER_FIELDS: dict[str, frozenset[str]] = {
    "Patient": frozenset(
        {
            "resourceType",
            "id",
            "meta",
            "active",
            "name",
            "telecom",
            "gender",
            "birthDate",
            "address",
            "communication",
        }
    ),
}


def broker_can_search(rtype: str, param: str) -> bool:
    """A time bank may search another organisation's resources only by elements it is shown:
    matching on a hidden element (a Patient's NHS number) would reveal it one guess at a time."""
    fields = BROKER_FIELDS.get(rtype)
    return fields is None or elements_of(rtype, param) <= fields


def needs_subsetting(rtype: str) -> bool:
    return rtype in BROKER_FIELDS


def broker_view(rtype: str, data: dict[str, Any]) -> dict[str, Any]:
    fields = BROKER_FIELDS.get(rtype)
    if fields is None:
        return data
    view = {key: value for key, value in data.items() if key in fields}
    meta = dict(view.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    view["meta"] = meta
    return view
