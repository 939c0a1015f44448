"""`spis synth`: the practice's referral Task and its history: created at intake, routed (again
after a decline or a silence), accepted, started, completed with its outputs or failed, as the
referrals lifecycle moves it; rejected by SPIS when no time bank could take it; cancelled when
the practice withdrew it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_adapters import task as fhir_task
from referral_service.demo.synth_area import Area
from referral_service.demo.synth_fhir import PRACTICE_CANCELLED, Emit, Referral
from referral_service.demo.synth_plan import ACCEPTED, Plan
from referral_service.kit.clock import fhir_instant
from referral_service.referrals.rules import SPIS_OWNER
from referral_service.store.bulk import BulkResource

REJECTED_TEXT = {
    "no-address": (
        "SPIS could not read the patient's home postcode, so no time bank could be chosen. "
        "Update the Patient's address and refer again."
    ),
    "no-time-bank": (
        "No time bank serving {district} could take this referral. Consider another service, "
        "or refer again later when capacity may have freed up."
    ),
}


@dataclass(frozen=True, slots=True)
class Record:
    """A time bank's record based on the referral: a Task output once the referral completes,
    if it existed then and was not entered in error by then."""

    rtype: str  # Procedure or Observation
    rid: str
    created_at: datetime
    withdrawn_at: datetime | None = None


def referral_task(
    emit: Emit, p: Plan, ref: Referral, area: Area, practice_id: str, records: list[Record]
) -> None:
    sr = ref.service_request
    task = fhir_task.referral_task(
        focus=f"ServiceRequest/{ref.sr_id}",
        patient=sr["subject"],
        requester=dict(sr["requester"]),
        owner=SPIS_OWNER,
        authored_on=fhir_instant(p.received_at),
    )
    versions: list[tuple[datetime, dict[str, Any]]] = [(p.received_at, task)]

    def then(when: datetime, changed: dict[str, Any]) -> None:
        versions.append((when, changed))

    for attempt in p.attempts:
        then(
            attempt.routed_at,
            fhir_task.routed(versions[-1][1], area.timebanks[attempt.timebank].name),
        )
        if attempt.answer == ACCEPTED and attempt.answered_at is not None:
            then(attempt.answered_at, _moved(versions[-1][1], "accepted"))
    if p.rejected is not None:
        code, when = p.rejected
        text = REJECTED_TEXT[code].format(district=p.person.district)
        then(when, fhir_task.rejected(versions[-1][1], text, code))
    if p.cancelled_at is not None:
        then(p.cancelled_at, _moved(versions[-1][1], "cancelled", PRACTICE_CANCELLED))
    if p.started_at is not None:
        then(p.started_at, _moved(versions[-1][1], "in-progress"))
    if p.ended is not None:
        status, when, reason = p.ended
        ended = _moved(versions[-1][1], status, f"Time bank: {reason}" if reason else None)
        if status == "completed" and p.person.share_back:
            outputs = _outputs(records, when)
            if outputs:  # FHIR allows no empty arrays
                ended["output"] = outputs
        then(when, ended)
    emit(BulkResource("Task", ref.task_id, practice_id, versions))


def _moved(task: dict[str, Any], status: str, reason: str | None = None) -> dict[str, Any]:
    moved = dict(task)
    fhir_task.set_status(moved, status, reason)
    return moved


def _outputs(records: list[Record], when: datetime) -> list[dict[str, Any]]:
    """Procedures as resulting activities, then Observations as additional content: what the
    lifecycle finds under the ServiceRequest when the referral completes."""
    live = [
        r
        for r in records
        if r.created_at <= when and (r.withdrawn_at is None or r.withdrawn_at > when)
    ]
    return [
        fhir_task.output("resulting-activity", f"Procedure/{r.rid}")
        for r in live
        if r.rtype == "Procedure"
    ] + [
        fhir_task.output("additional-content", f"Observation/{r.rid}")
        for r in live
        if r.rtype == "Observation"
    ]
