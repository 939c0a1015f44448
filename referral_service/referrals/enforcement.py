"""When a practice's Consent changes (a new one, or the current one set inactive), the flows it
no longer permits stop at once, in the same transaction:

- referral sharing withdrawn: open referral Tasks for the patient are cancelled, their time banks'
  child Tasks too (the child Task, with its reason, is how the broker is told), the ServiceRequest
  is revoked, and the time banks lose their grants on the Patient and the filler-order;
- referral sharing still permitted, but no longer with one time bank (a nested `deny` naming it):
  that time bank's open Task is cancelled with a reason and its access ends; a referral still
  waiting for an answer goes to the next time bank, one already taken up is cancelled;
- share-back withdrawn: the practice loses its grants on what time banks recorded about the
  patient (activities, hours, scores); given again if a later Consent permits it.

It lives with the referral Task lifecycle, not in `consent`: consent only decides (`decide`), and
the package that owns the Tasks acts on the answer, so `consent` imports neither side.
"""

from __future__ import annotations

from fhir_adapters.codes import OPEN_TASK_STATUSES
from fhir_adapters.rules import reference
from referral_service.consent.rules import Purpose
from referral_service.consent.service import decide
from referral_service.context import Context
from referral_service.referrals import propagation
from referral_service.routing import service as routing
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.models import StoredResource
from referral_service.store.repository import TokenMatch

WITHDRAWN = "The patient's consent to share this referral was withdrawn"
RECIPIENT_DENIED = (
    "The patient's consent no longer permits sharing this referral with this time bank"
)
TAKEN_UP_BY_DENIED = (
    "The patient's consent no longer permits sharing this referral with the time bank that had "
    "taken it up; refer again to choose another"
)
RECORDED_BY_TIME_BANKS = ("Procedure", "Observation", "QuestionnaireResponse")


def apply_change(system: Context, tenant: str, patient_ref: str) -> None:
    if not decide(system, tenant, patient_ref, Purpose.REFERRAL).permitted:
        _stop_referrals(system, tenant, patient_ref)
    else:
        _stop_denied_time_banks(system, tenant, patient_ref)
    practice = f"Organization/{tenant}"
    share_back = decide(system, tenant, patient_ref, Purpose.SHARE_BACK, practice).permitted
    for rtype in RECORDED_BY_TIME_BANKS:
        for row in _about(system, rtype, patient_ref):
            if row.org_id == tenant:
                continue  # the practice's own record
            if share_back:
                store.grant(system.session, row.id, [tenant])
            else:
                store.revoke(system.session, row.id, tenant)


def _stop_referrals(system: Context, tenant: str, patient_ref: str) -> None:
    for row in _about(system, "Task", patient_ref):
        task = resources.as_dict(row)
        if row.org_id != tenant:
            continue
        if task.get("partOf"):  # any time bank's Task, open or closed: no more access through it
            focus = str(task.get("focus", {}).get("reference", "")).partition("/")[2]
            owner = str(task.get("owner", {}).get("reference", "")).partition("/")[2]
            store.revoke(system.session, focus, owner)
            store.revoke(system.session, patient_ref.partition("/")[2], owner)
        elif task["status"] in OPEN_TASK_STATUSES:
            propagation.withdraw_referral(system, task, reason=WITHDRAWN)
            task.update(status="cancelled", statusReason={"text": WITHDRAWN})
            resources.update(system, row, task)


def _stop_denied_time_banks(system: Context, tenant: str, patient_ref: str) -> None:
    for row in _about(system, "Task", patient_ref):
        child = resources.as_dict(row)
        if (
            row.org_id != tenant
            or not child.get("partOf")
            or child["status"] not in OPEN_TASK_STATUSES
        ):
            continue
        owner = reference(child.get("owner"))
        if decide(system, tenant, patient_ref, Purpose.REFERRAL, owner).permitted:
            continue
        child.update(status="cancelled", statusReason={"text": RECIPIENT_DENIED})
        resources.update(system, row, child)
        routing.end_access(system, child)
        _after_denied_child(system, str(reference(child["partOf"][0])).partition("/")[2])


def _after_denied_child(system: Context, referral_id: str) -> None:
    """Still waiting for an answer: the next time bank. Taken up already: the referral cannot
    move back to `requested`, so it stops and the GP refers again."""
    row = resources.load(system, "Task", referral_id, for_update=True)
    referral = resources.as_dict(row)
    if referral["status"] == "requested":
        routing.request_routing(system.session, referral_id)
    elif referral["status"] in OPEN_TASK_STATUSES:
        propagation.withdraw_referral(system, referral, reason=RECIPIENT_DENIED)
        referral.update(status="cancelled", statusReason={"text": TAKEN_UP_BY_DENIED})
        resources.update(system, row, referral)


def _about(system: Context, rtype: str, patient_ref: str) -> list[StoredResource]:
    query = [[TokenMatch("patient", patient_ref)]]
    return store.search(system.session, system.principal, rtype, query, limit=10_000, offset=0)
