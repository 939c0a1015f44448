"""What the ledger writes into the FHIR store about referred members (DESIGN §3 steps 4–5).

Every resource is the time bank's own record (tenant = the time bank that writes it), so the
broker can read back what it recorded. It is shared with the practice that owns the referral while
the patient permits share-back (`consent.service.share_back_to`; withdrawing it takes the grant
away), so the GP finds it under `based-on=ServiceRequest/<original>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhir_adapters import ledger as fhir
from fhir_adapters.codes import TaskStatus
from fhir_adapters.rules import reference, split_reference
from referral_service.consent.service import share_back_to
from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation
from referral_service.ledger.models import Member
from referral_service.routing.service import system_context
from referral_service.store import service as store

# A referred person can join while the time bank is working on the referral, not before or after.
ENROLLABLE_TASK_STATUSES = frozenset({TaskStatus.ACCEPTED, TaskStatus.IN_PROGRESS})


@dataclass(frozen=True, slots=True)
class Referral:
    """The ids behind one child Task: the practice that owns the referral, the person, and the
    practice's original ServiceRequest."""

    practice_org_id: str
    patient_id: str
    service_request_id: str


def referral_of_task(ctx: Context, task_id: str) -> Referral:
    """The child Task, checked for enrolment: readable (else 404); owned by the caller's time
    bank, in an enrollable status, naming a Patient and a filler order based on the practice's
    ServiceRequest (else 409). Locked until commit, so that two enrolments from one Task are
    serialised and the second finds the first's member (`ledger.service.enrol`)."""
    row = store.load(ctx, "Task", task_id, for_update=True)
    task = store.as_dict(row)
    if reference(task.get("owner")) != f"Organization/{ctx.principal.org_id}":
        raise _not_enrollable(task_id, "is not assigned to this time bank")
    if task.get("status") not in ENROLLABLE_TASK_STATUSES:
        raise _not_enrollable(task_id, "must be accepted or in-progress to enrol the person")
    patient_id = _target_id(task.get("for"), "Patient")
    filler_id = _target_id(task.get("focus"), "ServiceRequest")
    if patient_id is None or filler_id is None:
        raise _not_enrollable(task_id, "has no Patient (for) or ServiceRequest (focus)")
    return Referral(row.org_id, patient_id, _original_request(ctx, task_id, filler_id))


def _original_request(ctx: Context, task_id: str, filler_id: str) -> str:
    """The practice's ServiceRequest, which the routed filler order is `basedOn`."""
    filler = store.as_dict(store.load(ctx, "ServiceRequest", filler_id))
    based_on = filler.get("basedOn") or []
    original = _target_id(based_on[0], "ServiceRequest") if based_on else None
    if filler.get("intent") != "filler-order" or original is None:
        raise _not_enrollable(task_id, "does not focus on a filler order based on a referral")
    return original


def referral_of_member(member: Member) -> Referral | None:
    """The referral a member was enrolled from; None for members who joined on their own."""
    practice, patient, request = (
        member.practice_org_id,
        member.patient_id,
        member.service_request_id,
    )
    if practice is None or patient is None or request is None:
        return None
    return Referral(practice, patient, request)


def record_enrolment(ctx: Context, referral: Referral, enrolled_at: datetime) -> str:
    """The ProgramEnrollmentStatus Observation; returns its id."""
    body = fhir.enrolment_observation(_fhir_view(ctx, referral), enrolled_at)
    return _create(ctx, referral, "Observation", body)


@dataclass(frozen=True, slots=True)
class Produced:
    procedure_id: str
    observation_id: str


def record_exchange(
    ctx: Context,
    referral: Referral,
    *,
    activity: str,
    minutes: int,
    performed_on: date,
    direction: fhir.Direction,
) -> Produced:
    """One Procedure and its hours Observation for a referred member's side of an exchange."""
    view = _fhir_view(ctx, referral)
    procedure = fhir.exchange_procedure(view, activity, performed_on, direction)
    procedure_id = _create(ctx, referral, "Procedure", procedure)
    hours = fhir.hours_observation(view, procedure_id, minutes, performed_on, direction)
    return Produced(procedure_id, _create(ctx, referral, "Observation", hours))


def mark_entered_in_error(ctx: Context, produced: Produced) -> list[str]:
    """A reversed exchange's Procedure and hours Observation become entered-in-error: a new
    version of each through the store (the practice keeps its grant, so the GP sees the
    correction under the same ServiceRequest). Returns the `Type/id`s changed."""
    changed = []
    for rtype, rid in (
        ("Procedure", produced.procedure_id),
        ("Observation", produced.observation_id),
    ):
        row = store.load(ctx, rtype, rid, for_update=True)
        corrected = fhir.entered_in_error(store.as_dict(row))
        if corrected is not None:
            store.update(ctx, row, corrected)
            changed.append(f"{rtype}/{rid}")
    return changed


def _fhir_view(ctx: Context, referral: Referral) -> fhir.ReferredMember:
    return fhir.ReferredMember(
        referral.patient_id, referral.service_request_id, ctx.principal.org_id
    )


def _create(ctx: Context, referral: Referral, rtype: str, body: dict[str, Any]) -> str:
    # The time bank's own record; the practice may read it while the patient permits share-back.
    system = system_context(ctx.session, ctx.settings)
    patient = f"Patient/{referral.patient_id}"
    readers = share_back_to(system, referral.practice_org_id, patient)
    return store.create(ctx, rtype, body, tenant=ctx.principal.org_id, share_with=readers).id


def _target_id(element: object, rtype: str) -> str | None:
    ref = reference(element)
    parts = split_reference(ref) if ref else None
    return parts[1] if parts is not None and parts[0] == rtype else None


def _not_enrollable(task_id: str, why: str) -> BusinessRuleViolation:
    return BusinessRuleViolation(f"Task/{task_id} {why}", expression=["child_task_id"])
