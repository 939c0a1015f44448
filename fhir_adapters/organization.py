"""Organisation view → FHIR Organization (UK Core shape: ODS code identifier)."""

from __future__ import annotations

from typing import Any

from fhir_adapters.codes import ODS_SYSTEM, SPIS_CODESYSTEM_BASE

ORG_KIND_SYSTEM = f"{SPIS_CODESYSTEM_BASE}/organisation-kind"


def organization(
    org_id: str, name: str, kind: str, ods_code: str | None, board_id: str | None = None
) -> dict[str, Any]:
    """`board_id`: the health board whose area a practice or time bank is in (`partOf`)."""
    resource: dict[str, Any] = {
        "resourceType": "Organization",
        "id": org_id,
        "active": True,
        "type": [{"coding": [{"system": ORG_KIND_SYSTEM, "code": kind}]}],
        "name": name,
    }
    if ods_code:
        resource["identifier"] = [{"system": ODS_SYSTEM, "value": ods_code}]
    if board_id:
        resource["partOf"] = {"reference": f"Organization/{board_id}"}
    return resource
