"""`spis synth`: a planned referral as the resources intake, routing and the broker's moves would
have stored, version by version, each at the time it happened.

Built with the same `fhir_adapters` builders the services use (the practice's referral form
Bundle with its references rewritten as intake does, the referral and time bank Tasks and every
status change, the filler orders), handed to the store's bulk writer. Grants are as they stand
at the end: a time bank keeps its Task, and loses the filler order and (unless another referral
of the person is still with it) the Patient when its part ended, as `routing.end_access` does.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir_adapters import referral as fhir_referral
from fhir_adapters import task as fhir_task
from fhir_adapters.codes import DECLINE_OTHER
from fhir_adapters.referral_form import ReferralForm, referral_bundle
from fhir_adapters.rules import rewrite_references
from referral_service.demo.synth_area import Area
from referral_service.demo.synth_plan import ACCEPTED, CANCELLED, DECLINED, NO_ANSWER, Plan
from referral_service.kit.clock import fhir_instant
from referral_service.routing.sla import NO_ANSWER as NO_ANSWER_REASON
from referral_service.store.bulk import BulkResource

REFERRAL_IDS = "https://fhir.example-practice.nhs.uk/referral-id"  # as the demo's GP system
REASON_TEXTS = (
    "Lives alone since a bereavement and rarely goes out",
    "Low mood; would like to meet people and feel useful",
    "Recently retired and isolated; keen on gardening and walking",
    "Carer for a partner, has lost touch with friends",
)
PRACTICE_CANCELLED = "The patient no longer wants to be referred"
WITHDRAWN_BY_PRACTICE = "Cancelled by the referring practice"
OTHER_DECLINE_NOTE = "Our volunteers cannot offer the evening visits the person asked for"
Emit = Callable[[BulkResource], None]


class Ids:
    """Random-looking resource ids (UUID version 4, as `kit.ids.new_person_id` makes) from a
    seeded generator, so the same seed gives the same ids: a time-ordered id (`kit.ids.new_id`)
    would differ from one run to the next."""

    def __init__(self, key: str) -> None:
        self.rng = random.Random(key)

    def new(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


@dataclass(frozen=True, slots=True)
class Referral:
    """The ids of what intake and routing stored for one referral."""

    patient_id: str
    consent_id: str
    sr_id: str
    task_id: str
    fillers: tuple[str, ...]  # one filler order and one child Task per routing attempt
    children: tuple[str, ...]
    service_request: dict[str, Any]  # as stored at intake (before any later version)


def referral_ids(key: str, index: int, patient_of: int, attempts: int) -> tuple[Ids, Referral]:
    """The ids of a referral's resources, drawn in a fixed order from its own generator; a
    person referred again keeps the Patient id of their first referral (its first id)."""
    ids = Ids(f"{key}/referral/{index}")
    first = ids.new()
    patient = first if patient_of == index else Ids(f"{key}/referral/{patient_of}").new()
    consent, sr, task = ids.new(), ids.new(), ids.new()
    fillers = tuple(ids.new() for _ in range(attempts))
    children = tuple(ids.new() for _ in range(attempts))
    return ids, Referral(patient, consent, sr, task, fillers, children, {})


def intake(
    emit: Emit, p: Plan, ref: Referral, practice_id: str, seed: int, readers: tuple[str, ...]
) -> tuple[Referral, dict[str, Any]]:
    """Patient (unless the person was referred before), Consent and ServiceRequest, as intake
    stores a referral Bundle; returns the ids with the stored ServiceRequest, and the Bundle.
    `readers` are the time banks that read the Patient in the end (over all their referrals)."""
    person = p.person
    form = ReferralForm(
        practice_org_id=practice_id,
        referral_id=f"SYN-{seed}-{p.index:06d}",
        referral_id_system=REFERRAL_IDS,
        nhs_number=person.nhs_number,
        family_name=person.family,
        given_name=person.given,
        birth_date=person.birth_date,
        postcode=person.postcode,
        phone=person.phone,
        reason_code=p.reason,
        reason_text=REASON_TEXTS[p.index % len(REASON_TEXTS)],
        needs=p.needs,
        share_referral=True,
        share_back=person.share_back,
        secondary_use=person.secondary_use,
        national_opt_out=person.national_opt_out,
    )
    bundle = referral_bundle(form, p.received_at)
    stored = _rewritten(bundle, ref)
    patient, consent, sr = stored
    if p.patient_of == p.index:
        emit(
            BulkResource(
                "Patient", ref.patient_id, practice_id, [(p.received_at, patient)], readers
            )
        )
    emit(BulkResource("Consent", ref.consent_id, practice_id, [(p.received_at, consent)]))
    versions = [(p.received_at, sr)]
    if p.cancelled_at is not None:
        versions.append((p.cancelled_at, {**sr, "status": "revoked"}))
    kept = dict(sr)  # stamping rewrites `sr` in place: the filler orders copy this one
    emit(BulkResource("ServiceRequest", ref.sr_id, practice_id, versions))
    return dataclasses.replace(ref, service_request=kept), bundle


def _rewritten(bundle: dict[str, Any], ref: Referral) -> list[dict[str, Any]]:
    urls = [entry["fullUrl"] for entry in bundle["entry"]]
    mapping = dict(
        zip(
            urls,
            (
                f"Patient/{ref.patient_id}",
                f"Consent/{ref.consent_id}",
                f"ServiceRequest/{ref.sr_id}",
            ),
            strict=True,
        )
    )
    resources = []
    for entry in bundle["entry"]:
        resource = copy.deepcopy(entry["resource"])  # the Bundle stays as sent (submissions)
        rewrite_references(resource, mapping)
        resources.append(resource)
    return resources


def routing(
    emit: Emit, p: Plan, ref: Referral, area: Area, practice_id: str, sla_days: int
) -> None:
    """Each routing attempt's filler order and time bank Task, with the Task's history."""
    for attempt, filler_id, child_id in zip(p.attempts, ref.fillers, ref.children, strict=True):
        tb = area.timebanks[attempt.timebank]
        tb_ref = f"Organization/{tb.id}"
        now = fhir_instant(attempt.routed_at)
        filler = fhir_referral.filler_order(
            ref.service_request, f"ServiceRequest/{ref.sr_id}", tb_ref, now
        )
        child = fhir_task.child_task(
            f"Task/{ref.task_id}",
            f"ServiceRequest/{filler_id}",
            f"Patient/{ref.patient_id}",
            tb_ref,
            now,
        )
        versions = [(attempt.routed_at, child)]
        if attempt.reminded_at is not None:
            versions.append((attempt.reminded_at, fhir_task.reminder_due(child, sla_days)))
        answered = _answered(attempt.answer, attempt.decline_code, versions[-1][1])
        if answered is not None and attempt.answered_at is not None:
            versions.append((attempt.answered_at, answered))
        if attempt.answer == ACCEPTED:
            versions += _engaged(p, versions[-1][1])
        ended = _child_ended(p, attempt.answer)
        tb_grant = () if ended else (tb.id,)
        emit(
            BulkResource(
                "ServiceRequest", filler_id, practice_id, [(attempt.routed_at, filler)], tb_grant
            )
        )
        emit(BulkResource("Task", child_id, practice_id, versions, (tb.id,)))


def _answered(answer: str, code: str | None, task: dict[str, Any]) -> dict[str, Any] | None:
    if answer == ACCEPTED:
        return fhir_task.accepted(task)
    if answer == DECLINED and code is not None:
        return fhir_task.declined(task, code, OTHER_DECLINE_NOTE if code == DECLINE_OTHER else None)
    if answer == NO_ANSWER:
        return fhir_task.cancelled(task, NO_ANSWER_REASON)
    if answer == CANCELLED:
        return fhir_task.cancelled(task, WITHDRAWN_BY_PRACTICE)
    return None


def _engaged(p: Plan, accepted: dict[str, Any]) -> list[tuple[datetime, dict[str, Any]]]:
    """The accepting time bank's Task after acceptance: started, then completed or failed (or
    cancelled with the referral)."""
    if p.cancelled_at is not None:
        return [(p.cancelled_at, fhir_task.cancelled(accepted, WITHDRAWN_BY_PRACTICE))]
    versions: list[tuple[datetime, dict[str, Any]]] = []
    task = accepted
    if p.started_at is not None:
        task = fhir_task.in_progress(task)
        versions.append((p.started_at, task))
    if p.ended is not None:
        status, when, reason = p.ended
        done = fhir_task.completed(task) if status == "completed" else None
        versions.append((when, done or fhir_task.failed(task, reason or "")))
    return versions


def _child_ended(p: Plan, answer: str) -> bool:
    """The time bank's part is over (rejected, cancelled): no more access through it."""
    return answer in (DECLINED, NO_ANSWER, CANCELLED) or (
        answer == ACCEPTED and p.cancelled_at is not None
    )


def holds_patient(p: Plan) -> set[int]:
    """The time banks that still read the person's Patient because of this referral."""
    return {a.timebank for a in p.attempts if not _child_ended(p, a.answer)}
