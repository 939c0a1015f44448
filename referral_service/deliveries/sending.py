"""Sending a subscription's deliveries, one at a time and in order.

`deliver` drains one subscription. Per delivery, one short transaction: find the head (the oldest
pending handshake; else, once the subscription is `active`, the oldest pending delivery by seq);
stop if its time has not come, so nothing later overtakes it; lock it (FOR UPDATE SKIP LOCKED,
still pending; not obtained: another worker is sending it, stop); build, send, record, commit.

The row lock is held during the HTTP call on purpose: a worker killed mid-send drops its
connection and with it the lock, the row is still pending, and it is sent again with the same
webhook-id and event number (at least once). The subscription row is not locked, so events keep
being numbered while a slow receiver is being sent to; its changes here are guarded updates.

What a notification shows is decided at send time: an event reaches the subscriber only while it
could read the focus itself (tenancy and consent grants), and a full resource as it may see it.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import orjson
from sqlalchemy.orm import Session

from fhir_adapters.codes import FHIR_JSON
from fhir_adapters.notifications import Focus, Notification, notification_bundle
from referral_service.audit.service import record_delivery
from referral_service.auth.jwks import JwksCache
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.deliveries import backoff, wire
from referral_service.deliveries import sending_repository as repository
from referral_service.deliveries.endpoint_guard import UnsafeEndpoint, check_endpoint
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Payload,
    Subscription,
    SubscriptionStatus,
)
from referral_service.errors import Unauthenticated
from referral_service.keys.jose import KeyStore, key_store, keys_dir
from referral_service.kit.clock import as_utc, fhir_instant, utcnow
from referral_service.principal import Principal
from referral_service.store import repository as store
from referral_service.store.service import presented
from referral_service.store.unreadable import Unreadable
from referral_service.transit.client_keys import (
    ClientKeysUnavailable,
    registered_encryption_key,
)
from referral_service.transit.jwe import JOSE
from referral_service.transit.outbound import seal

UnitOfWork = Callable[[], AbstractContextManager[Session]]  # one transaction, committed at exit
# Deliveries one run sends before handing the rest to a fresh message (other subscriptions wait).
MAX_PER_RUN = 100
HIDDEN_FOCUS = "not sent: the subscriber may no longer read the focus"
GONE = "the receiver answered 410 Gone: subscription turned off"


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead-letter"
    GONE = "gone"
    HIDDEN = "cancelled"


@dataclass
class Drained:
    outcomes: list[Outcome]
    more: bool = False  # stopped at MAX_PER_RUN with the head still due: send the job again


@dataclass(frozen=True, slots=True)
class Tools:
    settings: Settings
    keys: KeyStore
    jwks: JwksCache


def deliver(
    sessions: UnitOfWork,
    settings: Settings,
    subscription_id: str,
    now: datetime | None = None,
    *,
    keys: KeyStore | None = None,
    jwks: JwksCache | None = None,
) -> Drained:
    """Send what is due for one subscription, in order. `now` fixes the clock (tests)."""
    tools = Tools(settings, keys or process_keys(settings), jwks or _JWKS)
    drained = Drained([])
    for _ in range(MAX_PER_RUN):
        with sessions() as session:
            outcome = _send_head(session, tools, subscription_id, now or utcnow())
        if outcome is None:
            return drained
        drained.outcomes.append(outcome)
    drained.more = True
    return drained


def _send_head(
    session: Session, tools: Tools, subscription_id: str, now: datetime
) -> Outcome | None:
    sub = repository.subscription(session, subscription_id)
    if sub is None or not _sends(sub, now):
        return None
    head = repository.head(
        session, sub.id, handshake_only=sub.status is SubscriptionStatus.REQUESTED
    )
    if head is None or as_utc(head.next_attempt_at) > now:
        return None
    delivery = repository.lock_pending(session, head.id)
    if delivery is None or as_utc(delivery.next_attempt_at) > now:
        return None  # another worker holds it, or tried it meanwhile and it now waits
    return _attempt(session, tools, sub, delivery, now)


def _sends(sub: Subscription, now: datetime) -> bool:
    """`error` and `off` send nothing; past its end neither (the sweep turns it off)."""
    return sub.status in repository.SENDING and (sub.end is None or as_utc(sub.end) > now)


def _attempt(
    session: Session, tools: Tools, sub: Subscription, delivery: Delivery, now: datetime
) -> Outcome:
    focus_ref = _focus_ref(delivery)
    try:
        focus = _focus(session, tools.settings, sub, delivery)
    except _HiddenFocus:
        return _hidden(session, sub, delivery, focus_ref)
    except Unreadable:
        answer = _refused("focus unreadable")
        return _record(session, tools.settings, sub, delivery, answer, now, focus_ref)
    settled = sub.events_since_start - repository.pending_events(session, sub.id)
    note = _notification(tools.settings, sub, delivery, focus, now, settled)
    bundle = orjson.dumps(notification_bundle(note))
    answer = _send(session, tools, sub, delivery, bundle, now)
    return _record(session, tools.settings, sub, delivery, answer, now, focus_ref)


# -- what the notification shows -----------------------------------------------------------------


class _HiddenFocus(Exception):
    """The subscriber can no longer read the event's focus (consent, or its access ended)."""


def _focus_key(delivery: Delivery) -> tuple[str, str] | None:
    if delivery.kind is not DeliveryKind.EVENT or not delivery.focus_type or not delivery.focus_id:
        return None
    return delivery.focus_type, delivery.focus_id


def _focus_ref(delivery: Delivery) -> str | None:
    key = _focus_key(delivery)
    return None if key is None else f"{key[0]}/{key[1]}"


def _focus(
    session: Session, settings: Settings, sub: Subscription, delivery: Delivery
) -> Focus | None:
    key = _focus_key(delivery)
    if key is None:
        return None
    subscriber = _subscriber(session, sub)
    row = store.get(session, subscriber, *key)
    if row is None:
        raise _HiddenFocus
    if sub.payload is not Payload.FULL_RESOURCE:
        return Focus(row.type, row.id, row.version_id)
    shown = presented(Context(session, subscriber, settings), row.type, row.org_id, row.body)
    return Focus(row.type, row.id, row.version_id, orjson.loads(shown))


def _subscriber(session: Session, sub: Subscription) -> Principal:
    """The subscriber as a caller with no scopes: reads see what tenancy and grants allow."""
    kind = repository.subscriber_kind(session, sub.org_id)
    if kind is None:
        raise _HiddenFocus  # its organisation is gone: nothing is its to see
    return Principal(sub.client_id, sub.org_id, kind, frozenset())


def _notification(
    settings: Settings,
    sub: Subscription,
    delivery: Delivery,
    focus: Focus | None,
    now: datetime,
    settled: int,
) -> Notification:
    """`settled`: the events already sent or withheld. A handshake or heartbeat counts only
    those, so one sent ahead of still-queued events never shows the receiver a false gap."""
    event = delivery.kind is DeliveryKind.EVENT
    return Notification(
        fhir_base=settings.fhir_base_url,
        subscription_id=sub.id,
        topic=sub.topic,
        status=sub.status.value,
        type=delivery.kind.value,
        payload=sub.payload.value,
        events_since_start=(
            delivery.event_number if event and delivery.event_number is not None else settled
        ),
        status_id=delivery.id,
        timestamp=fhir_instant(now),
        event_number=delivery.event_number if event else None,
        occurred=fhir_instant(delivery.occurred_at) if event else None,
        focus=focus,
    )


# -- sending -------------------------------------------------------------------------------------


def _send(
    session: Session,
    tools: Tools,
    sub: Subscription,
    delivery: Delivery,
    bundle: bytes,
    now: datetime,
) -> wire.Answer:
    prepared = _body(session, tools, sub, bundle)
    if isinstance(prepared, wire.Answer):
        return prepared
    body, content_type = prepared
    try:
        check_endpoint(sub.endpoint, tools.settings)
    except UnsafeEndpoint:
        return _refused("endpoint refused")
    headers = wire.headers(delivery.id, body, content_type, tools.keys, now)
    return wire.post(sub.endpoint, body, headers, _timeout_s(tools.settings, sub))


def _body(
    session: Session, tools: Tools, sub: Subscription, bundle: bytes
) -> tuple[bytes, str] | wire.Answer:
    """Sealed to the creating client's registered key; plain JSON outside production only."""
    if sub.content_type != JOSE:
        if tools.settings.environment == "production":
            return _refused("plain JSON is not sent in production")
        return bundle, FHIR_JSON
    try:
        key = registered_encryption_key(session, tools.jwks, sub.client_id)
    except Unauthenticated:
        return _refused("subscriber client inactive")
    except ClientKeysUnavailable:
        return _refused("subscriber JWKS unavailable")
    if key is None:
        return _refused("no encryption key registered")
    return seal(bundle, key, tools.keys).encode("ascii"), JOSE


def _timeout_s(settings: Settings, sub: Subscription) -> float:
    """The subscriber's backport timeout (1 to 300 s, checked when it subscribed), else ours."""
    return float(sub.timeout_s) if sub.timeout_s else settings.delivery_timeout_s


def _refused(reason: str) -> wire.Answer:
    return wire.Answer(None, error=reason)


# -- recording the outcome -----------------------------------------------------------------------


def _record(
    session: Session,
    settings: Settings,
    sub: Subscription,
    delivery: Delivery,
    answer: wire.Answer,
    now: datetime,
    focus_ref: str | None = None,
) -> Outcome:
    delivery.attempts += 1
    delivery.last_status = answer.status
    if answer.status is not None and 200 <= answer.status < 300:
        outcome = _delivered(session, sub, delivery, now)
    elif answer.status == 410:
        delivery.status, delivery.last_error = DeliveryStatus.CANCELLED, GONE
        repository.turn_off(session, sub.id, now)
        outcome = Outcome.GONE
    else:
        outcome = _retry_later(session, settings, sub, delivery, answer, now)
    _audit(session, sub, delivery, focus_ref, outcome)
    return outcome


def _delivered(session: Session, sub: Subscription, delivery: Delivery, now: datetime) -> Outcome:
    delivery.status, delivery.delivered_at, delivery.last_error = (
        DeliveryStatus.DELIVERED,
        now,
        None,
    )
    repository.delivered(session, sub.id, now)
    if delivery.kind is DeliveryKind.HANDSHAKE:
        repository.activate(session, sub.id, now)
    return Outcome.DELIVERED


def _retry_later(
    session: Session,
    settings: Settings,
    sub: Subscription,
    delivery: Delivery,
    answer: wire.Answer,
    now: datetime,
) -> Outcome:
    delivery.last_error = answer.reason[:200]
    next_at = now + timedelta(
        seconds=backoff.delay_s(delivery.attempts, settings, answer.retry_after_s)
    )
    window_from = as_utc(delivery.retried_at or delivery.occurred_at)
    if backoff.gives_up(window_from, next_at, settings):
        delivery.status = DeliveryStatus.DEAD
        error = f"delivery failed for {backoff.window_text(settings)}: {answer.reason}"
        repository.fail(session, sub.id, error, now)
        return Outcome.DEAD
    delivery.next_attempt_at = next_at
    return Outcome.RETRY


def _hidden(
    session: Session, sub: Subscription, delivery: Delivery, focus_ref: str | None
) -> Outcome:
    delivery.status, delivery.last_error = DeliveryStatus.CANCELLED, HIDDEN_FOCUS
    record_delivery(
        session,
        subscription_id=sub.id,
        subscriber_org_id=sub.org_id,
        focus=focus_ref,
        succeeded=False,
        detail=f"{delivery.kind.value} {HIDDEN_FOCUS}",
    )
    return Outcome.HIDDEN


def _audit(
    session: Session,
    sub: Subscription,
    delivery: Delivery,
    focus_ref: str | None,
    outcome: Outcome,
) -> None:
    said = f"HTTP {delivery.last_status}" if delivery.last_status else delivery.last_error
    record_delivery(
        session,
        subscription_id=sub.id,
        subscriber_org_id=sub.org_id,
        focus=focus_ref,
        succeeded=outcome is Outcome.DELIVERED,
        detail=f"{delivery.kind.value} attempt {delivery.attempts}: {outcome.value} ({said})",
    )


# -- this process's keys -------------------------------------------------------------------------

_JWKS = JwksCache()
_KEY_STORES: dict[Path, KeyStore] = {}
_KEY_STORES_GUARD = threading.Lock()


def process_keys(settings: Settings) -> KeyStore:
    """SPIS's JOSE keys, loaded once per process (the store re-reads the directory itself)."""
    directory = keys_dir(settings)
    with _KEY_STORES_GUARD:
        found = _KEY_STORES.get(directory)
        if found is None:
            found = _KEY_STORES[directory] = key_store(settings)
    return found
