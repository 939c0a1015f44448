"""Subscriptions as their subscriber manages them: create, read, search, update, delete, status.
Takes a Context, never commits. A subscriber sees only its own organisation's subscriptions.

Creating one (or asking again for one that is off or in error) writes a handshake delivery and
sends the DELIVER message after commit; the delivery worker makes it `active` once the endpoint
has answered the handshake (deliveries/sending.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_adapters.codes import JOSE
from fhir_adapters.subscriptions import SubscriptionRequest, parse_subscription
from referral_service.audit import service as audit
from referral_service.audit.models import Action, Kind
from referral_service.auth.jwks import JwksCache
from referral_service.context import Context
from referral_service.deliveries import repository, rules
from referral_service.deliveries.endpoint_guard import UnsafeEndpoint, check_endpoint
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Payload,
    Subscription,
    SubscriptionStatus,
)
from referral_service.deliveries.topics import encode_filters
from referral_service.errors import Invalid, NotFound, VersionConflict
from referral_service.jobs.service import JobName, send_after_commit
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.store.service import version_named
from referral_service.transit.client_keys import registered_encryption_key

# Enough for every topic, filter and system a practice or time bank runs; bounds the fan-out.
MAX_PER_ORG = 50
NO_KEY_MESSAGE = (
    "Subscription.channel.payload: application/jose notifications are encrypted to your "
    "client's registered key, and its JWKS has none: register an EC P-256/P-384 key for "
    "ECDH-ES+A256KW or an RSA key for RSA-OAEP-256, with use 'enc'"
)


@dataclass(frozen=True, slots=True)
class Search:
    ids: list[str] | None = None
    statuses: list[SubscriptionStatus] | None = None
    topics: list[str] | None = None


def create(ctx: Context, body: dict[str, Any], keys: JwksCache) -> Subscription:
    request = parse_subscription(body)
    if request.status != SubscriptionStatus.REQUESTED:
        raise Invalid(
            "Subscription.status: a new subscription is requested; SPIS makes it active once "
            "the handshake is delivered",
            issue_code="business-rule",
            expression=["Subscription.status"],
        )
    if repository.count(ctx.session, ctx.principal.org_id) >= MAX_PER_ORG:
        raise Invalid(
            f"An organisation may hold at most {MAX_PER_ORG} subscriptions",
            issue_code="business-rule",
        )
    now = utcnow()
    subscription = Subscription(
        id=new_id(),
        org_id=ctx.principal.org_id,
        status=SubscriptionStatus.REQUESTED,
        events_since_start=0,
        version_id=1,
        created_at=now,
    )
    _apply(ctx, subscription, request, keys)
    repository.add(ctx.session, subscription)
    _handshake(ctx, subscription)
    _record(ctx, subscription, Kind.CREATE, Action.CREATE)
    return subscription


def read(ctx: Context, sid: str) -> Subscription:
    subscription = _own(ctx, sid)
    _record(ctx, subscription, Kind.READ, Action.READ)
    return subscription


def search(ctx: Context, criteria: Search) -> list[Subscription]:
    found = repository.find(
        ctx.session,
        ctx.principal.org_id,
        ids=criteria.ids,
        statuses=criteria.statuses,
        topics=criteria.topics,
    )
    entities = [f"Subscription/{s.id}" for s in found]
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.SEARCH,
        action=Action.EXECUTE,
        entities=entities,
        tenant=ctx.principal.org_id,
    )
    return found


def update(
    ctx: Context, sid: str, body: dict[str, Any], if_match: str | None, keys: JwksCache
) -> Subscription:
    subscription = _own(ctx, sid, for_update=True)
    wanted = version_named(if_match)
    if wanted is not None and wanted != str(subscription.version_id):
        raise VersionConflict("If-Match names a version that is not the current one")
    request = parse_subscription(body)
    was = subscription.status
    status = rules.next_status(was, request.status)
    _apply(ctx, subscription, request, keys, sending=status is not SubscriptionStatus.OFF)
    if status is SubscriptionStatus.OFF and was is not SubscriptionStatus.OFF:
        repository.cancel_pending(ctx.session, ctx.principal.org_id, sid)
    subscription.status = status
    if status is SubscriptionStatus.REQUESTED and was is not SubscriptionStatus.REQUESTED:
        subscription.error = None
        _handshake(ctx, subscription)
    subscription.version_id += 1
    subscription.last_updated = utcnow()
    ctx.session.flush()
    _record(ctx, subscription, Kind.UPDATE, Action.UPDATE)
    return subscription


def delete(ctx: Context, sid: str) -> None:
    if not repository.remove(ctx.session, ctx.principal.org_id, sid):
        raise NotFound("This Subscription is not known")
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.DELETE,
        action=Action.DELETE,
        entities=[f"Subscription/{sid}"],
        tenant=ctx.principal.org_id,
    )


def statuses(ctx: Context, ids: list[str] | None) -> list[Subscription]:
    """`$status`: the named subscriptions (all of the caller's when none are named)."""
    found = repository.find(ctx.session, ctx.principal.org_id, ids=ids)
    entities = [f"Subscription/{s.id}" for s in found]
    audit.record(
        ctx.session,
        ctx.principal,
        kind=Kind.READ,
        action=Action.READ,
        entities=entities,
        tenant=ctx.principal.org_id,
        detail="$status",
    )
    return found


# --- helpers --------------------------------------------------------------------------------------


def _own(ctx: Context, sid: str, *, for_update: bool = False) -> Subscription:
    found = repository.get(ctx.session, ctx.principal.org_id, sid, for_update=for_update)
    if found is None:
        raise NotFound("This Subscription is not known")
    return found


def _apply(
    ctx: Context,
    subscription: Subscription,
    request: SubscriptionRequest,
    keys: JwksCache,
    *,
    sending: bool = True,
) -> None:
    """Check the request (the endpoint and the client's key only when SPIS will send to it) and
    copy it onto the row. Notifications are sealed to the client that last set them up."""
    topic, filters = rules.checked(request, ctx.principal.org_kind, ctx.settings, utcnow())
    if sending:
        _check_endpoint(ctx, request.endpoint)
        if request.content_type == JOSE:
            _check_key(ctx, keys)
    subscription.client_id = ctx.principal.client_id
    subscription.topic = topic.url
    subscription.filters = encode_filters(filters)
    subscription.payload = Payload(request.payload)
    subscription.content_type = request.content_type
    subscription.endpoint = request.endpoint
    subscription.reason = request.reason
    subscription.heartbeat_period_s = request.heartbeat_s
    subscription.timeout_s = request.timeout_s
    subscription.end = request.end
    subscription.last_updated = utcnow()


def _check_endpoint(ctx: Context, url: str) -> None:
    where = "Subscription.channel.endpoint"
    try:
        check_endpoint(url, ctx.settings)
    except UnsafeEndpoint as exc:
        raise UnsafeEndpoint(f"{where}: {exc.message}", expression=[where]) from None


def _check_key(ctx: Context, keys: JwksCache) -> None:
    if registered_encryption_key(ctx.session, keys, ctx.principal.client_id) is None:
        raise Invalid(
            NO_KEY_MESSAGE, issue_code="business-rule", expression=["Subscription.channel.payload"]
        )


def _handshake(ctx: Context, subscription: Subscription) -> None:
    now = utcnow()
    repository.add_delivery(
        ctx.session,
        Delivery(
            id=new_id(),
            subscription_id=subscription.id,
            org_id=subscription.org_id,
            kind=DeliveryKind.HANDSHAKE,
            status=DeliveryStatus.PENDING,
            occurred_at=now,
            next_attempt_at=now,
            attempts=0,
        ),
    )
    send_after_commit(ctx.session, JobName.DELIVER, subscription.id)


def _record(ctx: Context, subscription: Subscription, kind: Kind, action: Action) -> None:
    audit.record(
        ctx.session,
        ctx.principal,
        kind=kind,
        action=action,
        entities=[f"Subscription/{subscription.id}"],
        tenant=subscription.org_id,
    )
