"""Recording audit events. Takes a session or a Context, never commits.

`record` queues the event on the caller's transaction; it is stored when that transaction
commits (pending.py) and chained by the sealer within about a second (sealer.py). An event holds ids and codes only: the caller's `detail` must be SPIS's
own short words (a status, an issue code, a count), never a value a client sent.

Verifying the chain is verify.py; a practice reading its patients' trail is practice.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date

import orjson
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.audit import patient_id_of
from referral_service.audit import chain, pending
from referral_service.audit.grouped import GroupCommit
from referral_service.audit.models import Action, Kind, Outcome
from referral_service.context import Context
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store.models import StoredResource
from referral_service.store.service import Version

MAX_ENTITIES = 100  # per event; a larger group is split over several events
MAX_DETAIL = 255
# `Type/id` with a FHIR id: anything else (a conditional URL, a query) could carry patient data.
_REFERENCE = re.compile(r"^[A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
# Why each kind of organisation reads and writes (v3-ActReason), unless the caller says otherwise.
DEFAULT_PURPOSE = {
    OrgKind.PRACTICE: "TREAT",
    OrgKind.TIMEBANK: "COC",
    OrgKind.HEALTHBOARD: "HOPERAT",
    OrgKind.PLATFORM: "COC",
}
# Authentication is no use of anyone's data: these events have no purpose of use.
_NO_PURPOSE = frozenset({Kind.TOKEN, Kind.SIGN_IN, Kind.SIGN_OUT})


def record(
    session: Session,
    principal: Principal,
    *,
    kind: Kind,
    action: Action,
    entities: Iterable[str],
    patient_id: str | None = None,
    tenant: str | None = None,
    purpose: str | None = None,
    outcome: Outcome = Outcome.SUCCESS,
    detail: str | None = None,
) -> chain.Event:
    """Queue one event on the session's transaction; it is stored when that commits."""
    event = _event(
        principal, kind, action, tuple(entities), patient_id, tenant, purpose, outcome, detail
    )
    pending.add(session, event)
    return event


def _event(
    principal: Principal,
    kind: Kind,
    action: Action,
    entities: tuple[str, ...],
    patient_id: str | None,
    tenant: str | None,
    purpose: str | None,
    outcome: Outcome,
    detail: str | None,
) -> chain.Event:
    if purpose is None and kind not in _NO_PURPOSE:
        purpose = DEFAULT_PURPOSE.get(principal.org_kind)
    return chain.Event(
        id=new_id(),
        recorded=utcnow(),
        action=action.value,
        kind=kind.value,
        actor_client_id=principal.client_id[:64],
        actor_org_id=principal.org_id[:64],
        tenant_org_id=tenant,
        patient_id=patient_id,
        entities=tuple(ref for ref in entities if _REFERENCE.match(ref)),
        purpose=purpose,
        outcome=int(outcome),
        detail=detail[:MAX_DETAIL] if detail else None,
    )


def record_outcome_failure(
    factory: sessionmaker[Session],
    principal: Principal,
    *,
    kind: Kind,
    action: Action,
    entities: Iterable[str] = (),
    patient_id: str | None = None,
    tenant: str | None = None,
    purpose: str | None = None,
    outcome: Outcome = Outcome.MINOR_FAILURE,
    detail: str | None = None,
) -> None:
    """Record a refusal or failure in a short transaction of its own, for error paths where the
    work itself was rolled back. Call it after that rollback (on SQLite the work's transaction
    would otherwise hold the write lock this one waits for)."""
    event = _event(
        principal, kind, action, tuple(entities), patient_id, tenant, purpose, outcome, detail
    )
    with factory.begin() as session:
        pending.store(session, [event])


# --- what the endpoints and services record -----------------------------------------------------

_GroupKey = tuple[str | None, str | None]  # (tenant, patient id)


def record_read(
    ctx: Context,
    rows: Sequence[StoredResource],
    *,
    kind: Kind = Kind.READ,
    detail: str | None = None,
) -> None:
    """A read, vread, history or search that returned `rows`: an event per tenant and patient,
    so a practice finds every disclosure of its patient's data. Stored as one event whatever
    their number (a search page: up to 50), each group named in its `entity_groups`."""
    _queue(ctx.session, read_events(ctx.principal, rows, kind=kind, detail=detail))


async def record_read_now(group: GroupCommit, principal: Principal, row: StoredResource) -> None:
    """`record_read` of one row, stored and committed with the other reads' events in flight
    (grouped.py) before it returns; a psycopg error when it was not."""
    (event,) = read_events(principal, [row])
    await group.store(event)


async def record_search_now(
    group: GroupCommit, principal: Principal, rows: Sequence[StoredResource]
) -> None:
    """`record_read` of a search page's rows, as `record_read_now`: its one event (merged when
    the page shows several patients) stored and committed with the other reads' events in
    flight before it returns."""
    (event,) = read_events(principal, rows, kind=Kind.SEARCH)
    await group.store(event)


def read_events(
    principal: Principal,
    rows: Sequence[StoredResource],
    *,
    kind: Kind = Kind.READ,
    detail: str | None = None,
) -> list[chain.Event]:
    """The events `record_read` queues, for a caller that stores them itself (the async reads,
    db.AsyncReads: one row, so one event)."""
    groups: dict[_GroupKey, list[str]] = {}
    for row in rows:
        rtype, rid = row.type, row.id
        patient = _patient_of(rtype, rid, row.body)
        groups.setdefault((row.org_id, patient), []).append(f"{rtype}/{rid}")
    if not groups and kind is Kind.SEARCH:
        groups[(None, None)] = []  # a search that found nothing is still a search
    action = Action.EXECUTE if kind is Kind.SEARCH else Action.READ  # FHIR: a search executes
    return _group_events(principal, groups, kind, action, detail, merge=True)


def record_unreadable(
    ctx: Context, rows: Sequence[StoredResource], *, kind: Kind, at_once: bool = False
) -> None:
    """Rows the caller matched but whose stored body did not open (store/unreadable.py), so were
    left out: one serious failure each, kept even if the request rolls back. The patient is known
    only for a Patient row: the body that would name it is what failed. `at_once`: written now
    (pending.write_failures_now), so that the request's own unit of work inserts only its read."""
    action = Action.EXECUTE if kind is Kind.SEARCH else Action.READ
    events = [
        _event(
            ctx.principal,
            kind,
            action,
            (f"{row.type}/{row.id}",),
            row.id if row.type == "Patient" else None,
            row.org_id,
            None,
            Outcome.SERIOUS_FAILURE,
            UNREADABLE_DETAIL,
        )
        for row in rows
    ]
    if at_once:
        pending.write_failures_now(ctx.session, events)
        return
    _queue(ctx.session, events)


UNREADABLE_DETAIL = "left out: stored data failed its integrity check"


# The action a refused write was attempting, by its kind.
_REFUSED_ACTION = {
    Kind.TRANSACTION: Action.EXECUTE,
    Kind.BATCH: Action.EXECUTE,
    Kind.CREATE: Action.CREATE,
}


def record_refusal(
    ctx: Context,
    kind: Kind,
    *,
    status: int,
    issue_code: str,
    entities: Iterable[str] = (),
    tenant: str | None = None,
    patient_id: str | None = None,
) -> None:
    """A write a service refused, when the caller answers the refusal itself (a web form shown
    again with its message) instead of letting the error handlers audit it (fhir/audit_failures):
    a minor failure with the status and issue code, never what was sent. Queued on the session
    like any event; a failure is kept even if the request's work rolls back (pending.py)."""
    record(
        ctx.session,
        ctx.principal,
        kind=kind,
        action=_REFUSED_ACTION.get(kind, Action.UPDATE),
        entities=entities,
        tenant=tenant,
        patient_id=patient_id,
        outcome=Outcome.MINOR_FAILURE,
        detail=f"{status} {issue_code}",
    )


def record_write(
    ctx: Context, kind: Kind, versions: Sequence[Version], *, merge: bool = False
) -> None:
    """Resources created or updated by one request (a transaction: every entry's version): an
    event per action (create, update) and per tenant and patient, or with `merge` one stored
    event per action whatever their number, each tenant and patient a group of it (as a search
    page's read: `_group_events`)."""
    by_action: dict[Action, dict[_GroupKey, list[str]]] = {}
    for version in versions:
        row = ctx.session.get(StoredResource, version.id)  # in the identity map: no query
        tenant = row.org_id if row is not None else ctx.principal.org_id
        patient = patient_id_of(version.type, version.id, orjson.loads(version.body))
        action = Action.CREATE if version.version_id == 1 else Action.UPDATE
        groups = by_action.setdefault(action, {})
        groups.setdefault((tenant, patient), []).append(f"{version.type}/{version.id}")
    for action, groups in by_action.items():
        _queue(ctx.session, _group_events(ctx.principal, groups, kind, action, None, merge=merge))


def _patient_of(rtype: str, rid: str, body: bytes) -> str | None:
    """Which Patient a row is about: a Patient is itself (its body need not be parsed)."""
    return rid if rtype == "Patient" else patient_id_of(rtype, rid, orjson.loads(body))


def _queue(session: Session, events: Iterable[chain.Event]) -> None:
    for event in events:
        pending.add(session, event)


def _group_events(
    principal: Principal,
    groups: dict[_GroupKey, list[str]],
    kind: Kind,
    action: Action,
    detail: str | None,
    *,
    merge: bool = False,
) -> list[chain.Event]:
    """One event per group (and per MAX_ENTITIES of its references), as `record` would make
    each; what they share (actor, purpose, time: one request) is worked out once. `merge` makes
    them one event when there are several: each stored event cost ~80 µs of CPU to record and
    seal, and a search page had up to 50."""
    chunks = [
        (tenant, patient, refs[start : start + MAX_ENTITIES])
        for (tenant, patient), refs in groups.items()
        for start in range(0, max(len(refs), 1), MAX_ENTITIES)
    ]
    if len(chunks) == 1:  # a read of one resource: the event as `record` makes it, made once
        tenant, patient, refs = chunks[0]
        return [
            _event(
                principal, kind, action, tuple(refs), patient, tenant, None, Outcome.SUCCESS, detail
            )
        ]
    shared = _event(principal, kind, action, (), None, None, None, Outcome.SUCCESS, detail)
    chunks = [
        (tenant, patient, [r for r in refs if _REFERENCE.match(r)])
        for tenant, patient, refs in chunks
    ]
    if merge:
        merged = chain.groups_column([chain.Group(t, p, len(refs)) for t, p, refs in chunks])
        entities = tuple(ref for _, _, refs in chunks for ref in refs)
        return [replace(shared, entities=entities, entity_groups=merged)]
    return [
        replace(shared, id=new_id(), tenant_org_id=tenant, patient_id=patient, entities=tuple(refs))
        for tenant, patient, refs in chunks
    ]


def record_share(
    ctx: Context,
    entities: Iterable[str],
    *,
    recipient_org_id: str,
    tenant: str,
    patient_id: str | None,
    purpose: str = "TREAT",
) -> None:
    """Resources made readable to another organisation (a referral routed to a time bank)."""
    record(
        ctx.session,
        ctx.principal,
        kind=Kind.SHARE,
        action=Action.EXECUTE,
        entities=[*entities, f"Organization/{recipient_org_id}"],
        patient_id=patient_id,
        tenant=tenant,
        purpose=purpose,
    )


# The purpose of use each consent flow stands for (DESIGN §6), when the caller names none.
FLOW_PURPOSE = {"referral": "TREAT", "share-back": "COC", "secondary-use": "HOPERAT"}


def record_consent_decision(
    ctx: Context,
    *,
    permitted: bool,
    flow: str,
    patient_id: str | None,
    consents: Iterable[str] = (),
    tenant: str | None = None,
    reason: str | None = None,
    purpose: str | None = None,
) -> None:
    """A consent check for one flow (`referral`, `share-back`, `secondary-use`). A denial is
    recorded as a minor failure, so it is kept even when the request it refused rolls back.
    `reason` is SPIS's own wording ("no active Consent"), never text from the Consent."""
    verdict = "permit" if permitted else "deny"
    record(
        ctx.session,
        ctx.principal,
        kind=Kind.CONSENT_DECISION,
        action=Action.EXECUTE,
        entities=consents,
        patient_id=patient_id,
        tenant=tenant or ctx.principal.org_id,
        purpose=purpose or FLOW_PURPOSE.get(flow),
        outcome=Outcome.SUCCESS if permitted else Outcome.MINOR_FAILURE,
        detail=f"{verdict} {flow}: {reason}" if reason else f"{verdict} {flow}",
    )


def record_report(
    ctx: Context,
    *,
    board_id: str,
    measure: str,
    period_start: date,
    period_end: date,
    focus: str | None,
) -> None:
    """A health board's outcome report pulled: who (the actor), which board (the tenant), which
    measure, period and focus. Aggregates after disclosure control, so no patient; an export of
    data out of SPIS for healthcare operations (HOPERAT) whoever pulls it."""
    record(
        ctx.session,
        ctx.principal,
        kind=Kind.EXPORT,
        action=Action.EXECUTE,
        entities=[f"Organization/{board_id}", f"Measure/{measure}", *([focus] if focus else [])],
        tenant=board_id,
        purpose=FLOW_PURPOSE["secondary-use"],
        detail=f"outcome report {measure} {period_start.isoformat()}..{period_end.isoformat()}",
    )


def record_token_issued(
    session: Session, *, client_id: str, org_id: str, org_kind: OrgKind, scope: str
) -> None:
    """An access token issued: who got it and which scopes (never the assertion or the token)."""
    principal = Principal(client_id, org_id, org_kind, frozenset())
    record(
        session,
        principal,
        kind=Kind.TOKEN,
        action=Action.EXECUTE,
        entities=[f"Organization/{org_id}"],
        detail=scope,
    )


def record_token_refused(session: Session, *, client_id: str | None, error: str) -> None:
    """A token request refused, with the OAuth error code only. The client id is what the caller
    claimed, kept only when it has the shape of one of ours (it is not authenticated)."""
    claimed = client_id if client_id and _ID.match(client_id) else "unknown"
    principal = Principal(claimed, "unknown", OrgKind.PLATFORM, frozenset())
    record(
        session,
        principal,
        kind=Kind.TOKEN,
        action=Action.EXECUTE,
        entities=[],
        outcome=Outcome.MINOR_FAILURE,
        detail=error,
    )


def record_delivery(
    session: Session,
    *,
    subscription_id: str,
    subscriber_org_id: str,
    focus: str | None,
    succeeded: bool,
    detail: str,
) -> None:
    """One attempt to deliver a notification to a Subscription's endpoint, or a notification
    not sent (consent no longer lets the subscriber see its focus). SPIS is the actor and the
    subscriber the tenant; ids and SPIS's own words only (an HTTP status, why), never the body."""
    record(
        session,
        Principal.spis(),
        kind=Kind.DELIVERY,
        action=Action.EXECUTE,
        entities=[f"Subscription/{subscription_id}", *([focus] if focus else [])],
        tenant=subscriber_org_id,
        outcome=Outcome.SUCCESS if succeeded else Outcome.MINOR_FAILURE,
        detail=detail,
    )
