"""Routing a referral Task to a time bank (DESIGN §3 step 2, §4), as SPIS itself.

Idempotent: a referral that already has an open child Task is left alone, so a redelivered job
routes nothing twice. The referral Task row is locked while routing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from fhir_adapters import codes
from fhir_adapters import referral as fhir_referral
from fhir_adapters import task as fhir_task
from fhir_adapters.codes import ENDED_TASK_STATUSES, OPEN_TASK_STATUSES
from fhir_adapters.rules import reference
from fhir_adapters.summaries import postcode_district
from referral_service.audit import service as audit
from referral_service.config import Settings
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.jobs.service import JobName, enqueue, handles
from referral_service.kit.clock import fhir_instant, utcnow
from referral_service.kit.refs import OrgId, Ref, ResourceId, id_of
from referral_service.organisations import repository as organisations
from referral_service.principal import Principal
from referral_service.routing.rules import Candidate, rank
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.repository import TokenMatch
from referral_service.timebanks import repository as timebanks

NO_CONSENT = "Not routed: no active Consent permits sharing this referral with a time bank"


def system_context(session: Session, settings: Settings) -> Context:
    return Context(session, Principal.spis(), settings)


@handles(JobName.ROUTE_REFERRAL)
def route_job(session: Session, settings: Settings, args: dict[str, str]) -> None:
    route(system_context(session, settings), ResourceId(args["referral_task"]))


def request_routing(session: Session, referral_task_id: str) -> None:
    enqueue(session, JobName.ROUTE_REFERRAL, referral_task=referral_task_id)


def children(
    ctx: Context, referral_task_id: ResourceId
) -> list[tuple[StoredResource, dict[str, Any]]]:
    query = [[TokenMatch("part-of", str(Ref("Task", referral_task_id)))]]
    rows = store.search(ctx.session, ctx.principal, "Task", query, limit=1000, offset=0)
    return [(row, resources.as_dict(row)) for row in rows]


def route(ctx: Context, referral_task_id: ResourceId) -> ResourceId | None:
    """Route once; returns the open child Task id, or None when the referral is not waiting."""
    row = resources.load(ctx, "Task", referral_task_id, for_update=True)
    task = resources.as_dict(row)
    if task["status"] != "requested":
        return None
    kids = children(ctx, referral_task_id)
    for kid_row, kid in kids:
        if kid["status"] in OPEN_TASK_STATUSES:
            return ResourceId(kid_row.id)
    patient_ref = Ref.parse(str(reference(task.get("for"))))
    if not decide(ctx, row.org_id, str(patient_ref), Purpose.REFERRAL).permitted:
        resources.update(ctx, row, fhir_task.cancelled(task, NO_CONSENT))
        return None
    tried = {owner for _, kid in kids if (owner := _owner(kid)) is not None}
    sr_ref = Ref.parse(str(reference(task.get("focus"))))
    sr = resources.load_json(ctx, "ServiceRequest", sr_ref.id) or {}
    patient = resources.load_json(ctx, "Patient", patient_ref.id) or {}
    district = postcode_district(fhir_referral.home_postcode(patient) or "")
    refused = 0
    for candidate in rank(_candidates(ctx, district, fhir_referral.needs(sr), tried)):
        recipient = _organization(candidate.org_id)
        if not decide(ctx, row.org_id, str(patient_ref), Purpose.REFERRAL, recipient).permitted:
            refused += 1  # the patient's Consent denies this time bank
            continue
        if _spare(ctx, candidate.org_id, lock=True) > 0:
            return _assign(ctx, row, task, sr_ref, sr, patient_ref, candidate)
    _reject(
        ctx, row, task, _no_one_code(district, refused), _no_one_reason(district, kids, refused)
    )
    return None


def _owner(task: dict[str, Any]) -> OrgId | None:
    """The organisation a time bank's Task is with: `Organization/<id>` as routing set it."""
    owner = Ref.of(task.get("owner"))
    return OrgId(owner.id) if owner is not None and owner.rtype == "Organization" else None


def _candidates(
    ctx: Context, district: str | None, needs: frozenset[str], tried: set[OrgId]
) -> list[Candidate]:
    if district is None:
        return []
    found = []
    for profile in timebanks.serving(ctx.session, district):
        org_id = OrgId(profile.org_id)
        if org_id in tried:
            continue
        if needs and not needs & profile.offer_set:
            continue
        spare = _spare(ctx, org_id)
        org = organisations.get(ctx.session, org_id)
        if spare > 0 and org is not None:
            found.append(Candidate(org_id, org.name, len(needs & profile.offer_set), spare))
    return found


def _spare(ctx: Context, org_id: OrgId, lock: bool = False) -> int:
    """Open slots left: capacity minus open child Tasks (capacity in use is derived, never stored)."""
    profile = (
        timebanks.get_for_update(ctx.session, org_id)
        if lock
        else timebanks.get(ctx.session, org_id)
    )
    if profile is None:
        return 0
    query = [
        [TokenMatch("owner", _organization(org_id))],
        [TokenMatch("status", status) for status in OPEN_TASK_STATUSES],
    ]
    return profile.capacity - store.count(ctx.session, ctx.principal, "Task", query)


def _assign(
    ctx: Context,
    row: StoredResource,
    task: dict[str, Any],
    sr_ref: Ref,
    sr: dict[str, Any],
    patient_ref: Ref,
    chosen: Candidate,
) -> ResourceId:
    now = fhir_instant(utcnow())
    timebank_ref = _organization(chosen.org_id)
    share = (chosen.org_id,)
    filler = resources.create(
        ctx,
        "ServiceRequest",
        fhir_referral.filler_order(sr, str(sr_ref), timebank_ref, now),
        tenant=row.org_id,
        share_with=share,
    )
    filler_ref = str(Ref("ServiceRequest", ResourceId(filler.id)))
    referral_ref = str(Ref("Task", ResourceId(row.id)))
    child = fhir_task.child_task(referral_ref, filler_ref, str(patient_ref), timebank_ref, now)
    created = resources.create(ctx, "Task", child, tenant=row.org_id, share_with=share)
    resources.grant(ctx, resources.load(ctx, "Patient", patient_ref.id), [chosen.org_id])
    audit.record_share(
        ctx,
        [str(sr_ref), filler_ref, str(Ref("Task", ResourceId(created.id))), str(patient_ref)],
        recipient_org_id=chosen.org_id,
        tenant=row.org_id,
        patient_id=patient_ref.id,
    )
    resources.update(ctx, row, fhir_task.routed(task, chosen.name))
    return ResourceId(created.id)


def _organization(org_id: OrgId) -> str:
    return str(Ref("Organization", ResourceId(org_id)))


def end_access(ctx: Context, child: dict[str, Any]) -> None:
    """A time bank whose part in a referral is over (it declined, was passed over, or the referral
    was cancelled) keeps its own Task, so it knows, but no longer reads the filler order, nor the
    Patient unless another referral of that patient is still with it. The audit trail keeps
    what was shared and when."""
    owner = _owner(child)
    if owner is None:
        return  # not a Task routing made: no time bank was given access through it
    filler_id = id_of(str(reference(child.get("focus"))))
    patient_ref = str(reference(child.get("for")))
    store.revoke(ctx.session, filler_id, owner)
    if not _still_with(ctx, owner, patient_ref, except_task=str(child.get("id"))):
        store.revoke(ctx.session, id_of(patient_ref), owner)


def _still_with(ctx: Context, owner: OrgId, patient_ref: str, except_task: str) -> bool:
    query = [[TokenMatch("owner", _organization(owner))], [TokenMatch("patient", patient_ref)]]
    rows = store.search(ctx.session, ctx.principal, "Task", query, limit=1000, offset=0)
    return any(
        row.id != except_task and resources.as_dict(row)["status"] not in ENDED_TASK_STATUSES
        for row in rows
    )


def _reject(
    ctx: Context, row: StoredResource, task: dict[str, Any], code: str, reason: str
) -> None:
    resources.update(ctx, row, fhir_task.rejected(task, reason, code))


def _no_one_code(district: str | None, refused: int) -> str:
    """Why no time bank, as a code reports count: the address, the Consent (it ruled out a time
    bank that could have taken the referral), or no time bank with room."""
    if district is None:
        return codes.REJECTED_NO_ADDRESS
    return codes.REJECTED_CONSENT_DENIES if refused else codes.REJECTED_NO_TIME_BANK


def _no_one_reason(
    district: str | None, kids: list[tuple[StoredResource, dict[str, Any]]], refused: int
) -> str:
    if district is None:
        return (
            "SPIS could not read the patient's home postcode, so no time bank could be chosen. "
            "Update the Patient's address and refer again."
        )
    declined = [
        fhir_task.status_reason(kid) or "no reason given"
        for _, kid in kids
        if kid["status"] in ("rejected", "cancelled")
    ]
    text = f"No time bank serving {district} could take this referral"
    if declined:
        text += f"; {len(declined)} declined or did not answer (" + "; ".join(declined) + ")"
    if refused:
        text += f"; the patient's Consent does not permit sharing it with {refused} of them"
    return (
        text + ". Consider another service, or refer again later when capacity may have freed up."
    )
