"""Resubmission: a referral sent again under the same ServiceRequest identifier is answered as
before and creates nothing; a different referral reusing the identifier is refused.

The identifier is kept only as a keyed blind index (`key`), the content as a keyed digest
(`digest.py`): the table holds no patient data in the clear.
"""

from __future__ import annotations

import orjson

from referral_service.context import Context
from referral_service.errors import BusinessRuleViolation, NotFound
from referral_service.kit.clock import utcnow
from referral_service.kit.crypto import blind_index
from referral_service.kit.ids import new_id
from referral_service.kit.refs import Ref
from referral_service.referrals import repository
from referral_service.referrals.digest import content_digest
from referral_service.referrals.intake import Entry, Outcome
from referral_service.referrals.repository import Previous
from referral_service.store import repository as store
from referral_service.store.service import Version

SUBMISSION_INDEX = "referral-identifier"


def key(ctx: Context, entries: list[Entry]) -> str | None:
    """The blind index of the first new ServiceRequest's identifier; None when there is none."""
    for entry in entries:
        if entry.rtype == "ServiceRequest" and entry.method == "POST":
            for identifier in entry.resource.get("identifier") or []:
                if identifier.get("value"):
                    secret = ctx.settings.blind_index_key.get_secret_value().encode()
                    name = f"{identifier.get('system', '')}|{identifier['value']}"
                    return blind_index(secret, SUBMISSION_INDEX, name)
    return None


def digest(ctx: Context, entries: list[Entry]) -> str:
    return content_digest(ctx.settings.blind_index_key.get_secret_value().encode(), entries)


def find(ctx: Context, submission_key: str) -> Previous | None:
    return repository.find_submission(ctx.session, ctx.principal, submission_key)


def record(ctx: Context, submission_key: str, content: str | None, outcomes: list[Outcome]) -> None:
    refs = [f"{o.version.type}/{o.version.id}" for o in outcomes]
    sr_id = next(o.version.id for o in outcomes if o.version.type == "ServiceRequest")
    values = {
        "id": new_id(),
        "org_id": ctx.principal.org_id,
        "key": submission_key,
        "service_request_id": sr_id,
        "response": orjson.dumps(refs),
        "digest": content,
        "created_at": utcnow(),
    }
    repository.add_submission(ctx.session, values)


def replay(
    ctx: Context, previous: Previous, entries: list[Entry], content: str | None
) -> list[Outcome]:
    """The same referral sent again: answer as before (current versions), create nothing.

    "The same" is judged by content: a different referral under a used identifier is refused,
    never answered as if it had been accepted. (Submissions recorded before digests were kept
    are compared by their entry types only.)"""
    refs = [Ref.parse(ref) for ref in orjson.loads(previous.response)]
    same_types = [ref.rtype for ref in refs] == [entry.rtype for entry in entries]
    if not same_types or (previous.digest is not None and previous.digest != content):
        raise BusinessRuleViolation(
            "This ServiceRequest identifier was already used for a different referral: the "
            "content differs from what was first accepted, and nothing was changed. Give a new "
            "referral its own identifier; to change this one, update its ServiceRequest",
            issue_code="duplicate",
            expression=["ServiceRequest.identifier"],
        )
    outcomes = []
    for ref in refs:
        row = store.get(ctx.session, ctx.principal, ref.rtype, ref.id)
        if row is None:
            raise NotFound(f"{ref} from the earlier submission is no longer available")
        outcomes.append(Outcome(False, Version.of(row)))
    return outcomes
