"""The practice's view: a GP practice reads the audit trail of its own patients (`/fhir/AuditEvent`).
Each reading is itself audited.

A read of several patients is stored as one event (service.record_read) and shown here as the
events it stands for, one per tenant and patient, each with the id `<event id>-<n>`
(chain.parts): the repository finds only the caller's own groups, so these functions see a part
exactly as they would a separate event."""

from __future__ import annotations

from referral_service.audit import chain, repository
from referral_service.audit.models import Action, Kind
from referral_service.audit.service import record
from referral_service.context import Context
from referral_service.errors import Forbidden, Invalid, NotFound
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store import service as resources


def patient_events(
    ctx: Context, patient_id: str, *, count: int, offset: int, until: str | None = None
) -> list[chain.Recorded]:
    """The caller's events about one of its patients, newest first (one more than `count`, to
    tell whether there is a next page). Only a practice reads its audit trail; a patient it cannot
    read is a 404, like any other resource. The reading is itself audited.

    `until` is the id of the newest event of the first page: the trail grows while it is paged
    (each page read adds an event), so later pages count their offset from that event. `seq` is
    insert order, not commit order: an event inserted just before that one but committed after
    the first page was read shows on a later page (and repeats one event there)."""
    _practice_only(ctx.principal)
    resources.load(ctx, "Patient", patient_id)
    max_seq = None
    if until is not None:
        max_seq = repository.seq_of(ctx.session, ctx.principal.org_id, until)
        if max_seq is None:
            raise Invalid("_until does not name one of your AuditEvents", status=400)
    found = repository.for_patient(
        ctx.session,
        ctx.principal.org_id,
        patient_id,
        limit=count + 1,
        offset=offset,
        max_seq=max_seq,
    )
    record(
        ctx.session,
        ctx.principal,
        kind=Kind.SEARCH,
        action=Action.EXECUTE,
        entities=[f"Patient/{patient_id}"],
        patient_id=patient_id,
        tenant=ctx.principal.org_id,
        detail=f"AuditEvent search: {len(found[:count])} returned",
    )
    return found


def _practice_only(principal: Principal) -> None:
    if principal.org_kind is not OrgKind.PRACTICE:
        raise Forbidden("Only a GP practice may read the audit trail of its patients")


def patient_event(ctx: Context, event_id: str) -> chain.Recorded:
    _practice_only(ctx.principal)
    found = repository.get(ctx.session, ctx.principal.org_id, event_id)
    if found is None:
        raise NotFound(f"AuditEvent/{event_id} is not known")
    record(
        ctx.session,
        ctx.principal,
        kind=Kind.READ,
        action=Action.READ,
        entities=[f"AuditEvent/{event_id}"],
        patient_id=found.event.patient_id,
        tenant=ctx.principal.org_id,
    )
    return found
