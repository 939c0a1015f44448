"""Per-resource rules applied when a practice writes a resource, beyond structural validation.

Pure where it can be: each function gets the resource JSON and what it needs to know about the
resources it refers to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fhir_adapters import codes
from fhir_adapters import rules as fhir_rules
from fhir_adapters.codes import TaskStatus
from referral_service.errors import BusinessRuleViolation, Forbidden, Invalid
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.referrals.status import INITIAL, check_transition

SPIS_ORG_REFERENCE = "Organization/spis"
SPIS_OWNER = {
    "reference": SPIS_ORG_REFERENCE,
    "display": "SPIS social prescribing integration service",
}

# Elements of a referral Task fixed at creation: who asked, for whom, about what.
TASK_IMMUTABLE = ("intent", "code", "focus", "for", "requester", "authoredOn", "partOf", "owner")
SR_IMMUTABLE = ("intent", "code", "subject", "requester", "identifier")
# What each kind of organisation may set a referral Task's status to (DESIGN §3 "set by").
MAY_SET: dict[OrgKind, frozenset[TaskStatus]] = {
    OrgKind.PRACTICE: frozenset(
        {TaskStatus.REQUESTED, TaskStatus.CANCELLED, TaskStatus.ENTERED_IN_ERROR}
    ),
    OrgKind.TIMEBANK: frozenset(
        {
            TaskStatus.ACCEPTED,
            TaskStatus.REJECTED,
            TaskStatus.IN_PROGRESS,
            TaskStatus.ON_HOLD,
            TaskStatus.COMPLETED,
            TaskStatus.FAILED,
            TaskStatus.CANCELLED,
        }
    ),
    OrgKind.HEALTHBOARD: frozenset(),
}


def check_requester(
    principal: Principal, sr: dict[str, Any], ods_code: Callable[[], str | None]
) -> None:
    """A practice refers on its own behalf only (DESIGN §3 step 1). The requester is the practice:
    its Organization (`Organization/<id>`, or logically by its own ODS code), or a PractitionerRole
    at the practice contained in the ServiceRequest. (SPIS stores no PractitionerRole, so one sent
    as a Bundle entry is refused by the reference checks before this.) `ods_code` gives the
    practice's code, asked only for a requester named by an identifier: it is a look-up."""
    where = "ServiceRequest.requester"
    requester = sr.get("requester")
    ref = fhir_rules.reference(requester)
    if ref is not None and ref.startswith("#"):
        role = _contained(sr, ref)
        if role is None or role.get("resourceType") != "PractitionerRole":
            raise Invalid(
                f"{where} must name a PractitionerRole contained in the ServiceRequest",
                expression=[where],
            )
        if not _is_practice(principal, role.get("organization"), ods_code):
            raise Invalid(
                f"{where}: the PractitionerRole's organization must be the sending practice",
                expression=[where],
            )
    elif not _is_practice(principal, requester, ods_code):
        raise Invalid(
            f"{where} must be the sending practice: Organization/{principal.org_id}, its own ODS "
            "code, or a PractitionerRole at the practice",
            expression=[where],
        )


def _is_practice(principal: Principal, value: object, ods_code: Callable[[], str | None]) -> bool:
    """A reference to the practice: literal, logical by ODS code, or both (then both agree)."""
    ref, logical = fhir_rules.reference(value), fhir_rules.logical_identifier(value)
    if ref is None and logical is None:
        return False
    if ref is not None and ref != f"Organization/{principal.org_id}":
        return False
    if logical is None:
        return True
    code = ods_code()
    return code is not None and logical == (codes.ODS_SYSTEM, code)


def _contained(resource: dict[str, Any], ref: str) -> dict[str, Any] | None:
    for contained in resource.get("contained") or []:
        if isinstance(contained, dict) and f"#{contained.get('id')}" == ref:
            return contained
    return None


def practice_reference(principal: Principal, sr: dict[str, Any]) -> dict[str, Any]:
    """Who asked, for what SPIS derives from a referral: the ServiceRequest's requester when it is
    the practice's Organization, otherwise that Organization (a contained PractitionerRole cannot
    be pointed at from another resource, and `Task?requester=Organization/<id>` finds them all)."""
    requester = sr.get("requester")
    if isinstance(requester, dict) and (
        fhir_rules.reference(requester) == f"Organization/{principal.org_id}"
    ):
        return dict(requester)
    return {"reference": f"Organization/{principal.org_id}"}


def check_new_referral_status(sr: dict[str, Any]) -> None:
    """Only an `active` ServiceRequest is a referral SPIS can route. A draft is not held for later
    and a revoked or completed one has nothing left to do, so intake refuses them rather than
    route what the practice has not (or no longer) asked for."""
    if sr.get("status") != "active":
        raise BusinessRuleViolation(
            "A new referral ServiceRequest must have status active: SPIS routes a referral as "
            "soon as it is accepted and keeps no drafts; send it once it is active",
            status=422,
            expression=["ServiceRequest.status"],
        )


def check_new_task(principal: Principal, task: dict[str, Any], sr: dict[str, Any] | None) -> None:
    """A new Task starts the referral, for its ServiceRequest's patient and requester."""
    if TaskStatus(task["status"]) not in INITIAL:
        raise BusinessRuleViolation(
            "A new referral Task must be draft or requested", status=422, expression=["Task.status"]
        )
    if sr is None:
        raise Invalid(
            "Task.focus must reference the referral's ServiceRequest", expression=["Task.focus"]
        )
    if fhir_rules.reference(task.get("for")) != fhir_rules.reference(sr.get("subject")):
        raise Invalid("Task.for must be the ServiceRequest's subject", expression=["Task.for"])
    asked = fhir_rules.reference(task.get("requester"))
    practice = fhir_rules.reference(practice_reference(principal, sr))
    if asked not in (fhir_rules.reference(sr.get("requester")), practice):
        raise Invalid(
            "Task.requester must be the ServiceRequest's requester or the practice's Organization",
            expression=["Task.requester"],
        )


def check_task_update(principal: Principal, old: dict[str, Any], new: dict[str, Any]) -> None:
    _check_task_owner(principal, old)
    if new.get("status") not in codes.REFERRAL_TASK_STATUSES:
        fhir_rules.check_referral_task(new)  # reports the bad status code
    current, wanted = TaskStatus(old["status"]), TaskStatus(new["status"])
    reason = (new.get("statusReason") or {}).get("text")
    check_transition(current, wanted, reason)
    fhir_rules.check_referral_task(new)
    _unchanged("Task", old, new, TASK_IMMUTABLE)
    if wanted != current and wanted not in MAY_SET[principal.org_kind]:
        raise Forbidden(
            f"A {principal.org_kind.value} may not set a referral Task to {wanted.value}"
        )


def _check_task_owner(principal: Principal, task: dict[str, Any]) -> None:
    """A practice changes its referral Tasks (owned by SPIS); a time bank only the Tasks it owns."""
    owner = fhir_rules.reference(task.get("owner"))
    mine = (
        SPIS_ORG_REFERENCE
        if principal.org_kind is OrgKind.PRACTICE
        else f"Organization/{principal.org_id}"
    )
    if owner != mine:
        raise Forbidden(
            "Only the Task's owner may change it; the referring practice changes its referral Task"
        )


def check_service_request_update(old: dict[str, Any], new: dict[str, Any]) -> None:
    fhir_rules.check_service_request(new)
    _unchanged("ServiceRequest", old, new, SR_IMMUTABLE)


def _unchanged(
    rtype: str, old: dict[str, Any], new: dict[str, Any], names: tuple[str, ...]
) -> None:
    for name in names:
        if old.get(name) != new.get(name):
            raise BusinessRuleViolation(
                f"{rtype}.{name} cannot be changed once the referral is made",
                status=422,
                expression=[f"{rtype}.{name}"],
            )
