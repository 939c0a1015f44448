"""Time credit ledger → FHIR: a member's enrolment, and the Procedure + hours Observation of an
exchange that involves a referred member (DESIGN §3 step 4, standards.md §4).

Pure builders: ids and codes in, JSON out; no database, no HTTP. The shapes follow the SDOH Clinical
Care IG (SDOHCC Procedure, SDOHCC-ObservationProgramEnrollmentStatus) without claiming the
profiles: the IG binds Procedure.code to US Core procedure codes and no code exists for time bank
activities or time credits (standards.md §4), so SPIS names them in its own CodeSystems.
Nothing here carries free text from the broker: only codes and fixed wording.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

from fhir_adapters.codes import (
    OFFER_CATEGORIES,
    OFFER_SYSTEM,
    SNOMED,
    SOCIAL_SERVICE_PROCEDURE,
    SPIS_CODESYSTEM_BASE,
)

# TODO(lead): move the system URLs below to codes.py, where every system is named once
# (wellbeing.py names OBSERVATION_CATEGORY_SYSTEM and UCUM too; codes.TASK_OUTPUT_TYPE_SYSTEM is
# the same URL as SDOHCC_TEMPORARY_CODES).
# Category codes (standards.md §1.6 and §3.6; the IG's STU3 code systems).
OBSERVATION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
SOCIAL_HISTORY: Final = "social-history"
US_CORE_CATEGORY_SYSTEM: Final = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
SDOH: Final = "sdoh"
SDOHCC_TEMPORARY_CODES: Final = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
)
PROGRAM_ENROLLMENT: Final = "program-enrollment"
ENROLLED: Final = "enrolled"
SOCIAL_CONNECTION: Final = "social-connection"
UCUM: Final = "http://unitsofmeasure.org"

# SPIS's own codes: no standard code was found for any of these (standards.md §4, §7).
LEDGER_CODE_SYSTEM: Final = f"{SPIS_CODESYSTEM_BASE}/time-credit-ledger"
PROGRAM_ENROLLMENT_STATUS: Final = "program-enrollment-status"
TIME_CREDIT_HOURS: Final = "time-credit-hours"
TIME_CREDIT_DIRECTION: Final = "time-credit-direction"
# An exchange is coded with the offer categories time banks and referrals use (OFFER_CATEGORIES).
ACTIVITY_SYSTEM: Final = OFFER_SYSTEM


class Direction(StrEnum):
    """Which way the time went, from the referred member's point of view."""

    GIVEN = "given"
    RECEIVED = "received"


_DIRECTION_DISPLAY = {Direction.GIVEN: "Time given", Direction.RECEIVED: "Time received"}
_DIRECTION_NOTE = {
    Direction.GIVEN: "The person gave this time to another time bank member.",
    Direction.RECEIVED: "The person received this time from another time bank member.",
}


@dataclass(frozen=True, slots=True)
class ReferredMember:
    """What every resource about a referred member points at: ids only."""

    patient_id: str
    service_request_id: str  # the practice's original ServiceRequest, not the filler order
    timebank_org_id: str


def enrolment_observation(member: ReferredMember, enrolled_at: datetime) -> dict[str, Any]:
    """ProgramEnrollmentStatus Observation: the person is now a member of the time bank."""
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            _concept(OBSERVATION_CATEGORY_SYSTEM, SOCIAL_HISTORY, "Social History"),
            _concept(US_CORE_CATEGORY_SYSTEM, SDOH, "SDOH"),
            _concept(SDOHCC_TEMPORARY_CODES, PROGRAM_ENROLLMENT, "Program Enrollment"),
        ],
        "code": _concept(
            LEDGER_CODE_SYSTEM, PROGRAM_ENROLLMENT_STATUS, "Time bank membership status"
        ),
        **_about(member),
        "effectiveDateTime": _instant(enrolled_at),
        "performer": [_org(member.timebank_org_id)],
        "valueCodeableConcept": _concept(SDOHCC_TEMPORARY_CODES, ENROLLED, "Enrolled"),
    }


def exchange_procedure(
    member: ReferredMember, activity: str, performed_on: date, direction: Direction
) -> dict[str, Any]:
    """SDOHCC-style Procedure for one exchange the referred member took part in.

    The ledger records the day of an exchange, not its clock times, so the period is that day
    (start = end = the date, day precision); the duration is in the hours Observation.
    """
    day = performed_on.isoformat()
    return {
        "resourceType": "Procedure",
        **_based_on(member),
        "status": "completed",
        "category": {
            "coding": [
                _coding(SNOMED, SOCIAL_SERVICE_PROCEDURE, "Social service procedure"),
                _coding(SDOHCC_TEMPORARY_CODES, SOCIAL_CONNECTION, "Social Connection"),
            ]
        },
        "code": _concept(ACTIVITY_SYSTEM, activity, OFFER_CATEGORIES[activity]),
        "subject": _patient(member),
        "performedPeriod": {"start": day, "end": day},
        "performer": [{"actor": _org(member.timebank_org_id)}],
        "note": [{"text": _DIRECTION_NOTE[direction]}],
    }


def hours_observation(
    member: ReferredMember,
    procedure_id: str,
    minutes: int,
    performed_on: date,
    direction: Direction,
) -> dict[str, Any]:
    """The time credits of that exchange, beside its Procedure.

    Integer minutes (UCUM `min`), never fractional hours: 20 minutes is not a finite decimal of an
    hour, and the ledger itself counts minutes.
    """
    return {
        "resourceType": "Observation",
        **_based_on(member),
        "partOf": [{"reference": f"Procedure/{procedure_id}"}],
        "status": "final",
        "category": [
            _concept(OBSERVATION_CATEGORY_SYSTEM, SOCIAL_HISTORY, "Social History"),
            _concept(US_CORE_CATEGORY_SYSTEM, SDOH, "SDOH"),
        ],
        "code": _concept(LEDGER_CODE_SYSTEM, TIME_CREDIT_HOURS, "Time credit hours exchanged"),
        "subject": _patient(member),
        "effectiveDateTime": performed_on.isoformat(),
        "performer": [_org(member.timebank_org_id)],
        "valueQuantity": {"value": minutes, "unit": "min", "system": UCUM, "code": "min"},
        "component": [
            {
                "code": _concept(LEDGER_CODE_SYSTEM, TIME_CREDIT_DIRECTION, "Direction of time"),
                "valueCodeableConcept": _concept(
                    LEDGER_CODE_SYSTEM, direction.value, _DIRECTION_DISPLAY[direction]
                ),
            }
        ],
    }


ENTERED_IN_ERROR: Final = "entered-in-error"
_IN_ERROR_NOTE = (
    "Recorded in error: the time bank reversed this exchange in its ledger, "
    "so this activity and its time credits no longer count."
)


def entered_in_error(resource: dict[str, Any]) -> dict[str, Any] | None:
    """The next version of an exchange's Procedure or hours Observation once the time bank has
    reversed the exchange: `status` entered-in-error (both resources have the code), with a fixed
    note saying why; the rest unchanged, so the GP's record shows what was withdrawn. None when it
    is entered-in-error already (nothing to change)."""
    if resource.get("status") == ENTERED_IN_ERROR:
        return None
    notes = [*resource.get("note", []), {"text": _IN_ERROR_NOTE}]
    return {**resource, "status": ENTERED_IN_ERROR, "note": notes}


def _about(member: ReferredMember) -> dict[str, Any]:
    return {**_based_on(member), "subject": _patient(member)}


def _based_on(member: ReferredMember) -> dict[str, Any]:
    return {"basedOn": [{"reference": f"ServiceRequest/{member.service_request_id}"}]}


def _patient(member: ReferredMember) -> dict[str, str]:
    return {"reference": f"Patient/{member.patient_id}"}


def _org(org_id: str) -> dict[str, str]:
    return {"reference": f"Organization/{org_id}"}


def _coding(system: str, code: str, display: str) -> dict[str, str]:
    return {"system": system, "code": code, "display": display}


def _concept(system: str, code: str, display: str) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)], "text": display}


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
