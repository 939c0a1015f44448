"""Members and what they offer or ask for: joining (on their own, or enrolled from a referral),
ending a membership, offers and requests. Takes a Context whose principal is the time bank."""

from __future__ import annotations

from referral_service.audit.models import Action
from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id, new_person_id
from referral_service.ledger import common, feedback, repository, rules
from referral_service.ledger.common import Listed
from referral_service.ledger.models import Member
from referral_service.ledger.repository import Listing, ListingT, Lock
from referral_service.store import unreadable


def add_member(ctx: Context, alias: str) -> Member:
    member = Member(
        id=new_person_id(),
        org_id=common.tenant(ctx),
        alias=rules.text(alias, "alias", rules.MAX_ALIAS),
    )
    repository.add(ctx.session, member)
    common.audit_write(ctx, [common.ref(member)], "ledger member")
    return member


def enrol(ctx: Context, child_task_id: str, alias: str) -> Member:
    """A referred person joins: a member linked to the child Task, and the enrolment Observation
    the GP and the broker can both read."""
    alias = rules.text(alias, "alias", rules.MAX_ALIAS)
    if not rules.is_id(child_task_id):
        raise NotFound("child_task_id is not the id of a Task", expression=["child_task_id"])
    referral = feedback.referral_of_task(ctx, child_task_id)
    if repository.member_for_task(ctx.session, common.tenant(ctx), child_task_id) is not None:
        raise BusinessRuleViolation(
            f"The person referred in Task/{child_task_id} is already a member",
            expression=["child_task_id"],
        )
    now = utcnow()
    member = Member(
        id=new_person_id(),
        org_id=common.tenant(ctx),
        alias=alias,
        joined_at=now,
        enrolled_at=now,
        referral_task_id=child_task_id,
        practice_org_id=referral.practice_org_id,
        patient_id=referral.patient_id,
        service_request_id=referral.service_request_id,
    )
    member.enrolment_observation_id = feedback.record_enrolment(ctx, referral, now)
    repository.add(ctx.session, member)
    # The practice's patient: the practice finds this in its patient's audit trail.
    common.audit_write(
        ctx,
        [
            f"Observation/{member.enrolment_observation_id}",
            f"Task/{child_task_id}",
            common.ref(member),
        ],
        "ledger enrolment",
        tenant=referral.practice_org_id,
        patient_id=referral.patient_id,
    )
    return member


def member_for_task(ctx: Context, task_id: str) -> Member | None:
    """The member enrolled from the time bank Task `task_id` in the caller's time bank, if any
    (one per Task): how a referral's page finds the member's statement."""
    if not rules.is_id(task_id):
        return None
    return repository.member_for_task(ctx.session, common.tenant(ctx), task_id)


def get_member(
    ctx: Context, member_id: str, field: str = "member", *, lock: Lock | None = None
) -> Member:
    found = rules.is_id(member_id)
    tenant = common.tenant(ctx)
    member = repository.get_member(ctx.session, tenant, member_id, lock) if found else None
    if member is None:
        name = f"Member {member_id}" if found else "That member id"
        raise NotFound(f"{name} is not a member of this time bank", expression=[field])
    return member


def active_member(ctx: Context, member_id: str, field: str) -> Member:
    """A member who may take part in something new: not ended. Held (FOR SHARE) until commit, so
    a membership cannot end while an exchange or listing naming it is being recorded."""
    member = get_member(ctx, member_id, field, lock=Lock.SHARE)
    if member.ended:
        raise BusinessRuleViolation(
            f"Member {member.id}'s membership has ended", expression=[field]
        )
    return member


def end_membership(ctx: Context, member_id: str, reason: str | None) -> Member:
    """The member leaves the time bank: `ended_at` (and the broker's reason) set; they stay in
    every list, marked ended, with their history and balance, and take part in nothing new."""
    reason = rules.optional_text(reason, "reason", rules.MAX_DESCRIPTION)
    member = get_member(ctx, member_id, lock=Lock.UPDATE)
    if member.ended:
        raise BusinessRuleViolation(
            f"Member {member.id}'s membership has already ended", expression=["member"]
        )
    member.ended_at, member.end_reason = utcnow(), reason
    ctx.session.flush()
    common.audit_write(ctx, [common.ref(member)], "ledger membership ended", action=Action.UPDATE)
    return member


def add_listing(
    ctx: Context, kind: type[Listing], member_id: str, category: str, description: str
) -> Listing:
    """An offer or a request: what a member can give, or would like to receive."""
    member = active_member(ctx, member_id, "member")
    listing = kind(
        id=new_id(),
        org_id=common.tenant(ctx),
        member_id=member.id,
        category=rules.category(category),
        description=rules.text(description, "description", rules.MAX_DESCRIPTION),
    )
    repository.add(ctx.session, listing)
    common.audit_write(
        ctx, [common.ref(listing), common.ref(member)], f"ledger {kind.__name__.lower()}"
    )
    return listing


def listings(ctx: Context, kind: type[ListingT], category: str | None) -> Listed[ListingT]:
    """A listing whose description does not open is left out (logged and audited)."""
    if category is not None:
        rules.category(category)
    found = repository.listings(ctx.session, kind, common.tenant(ctx), category)
    good, bad = unreadable.split(ctx.session, found)
    return Listed(good, common.audit_left_out(ctx, bad))
