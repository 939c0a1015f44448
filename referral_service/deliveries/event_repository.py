"""The queries that turn events into delivery rows (deliveries/events.py): who listens to a topic,
locking the subscriptions that get an event, and the event rows themselves."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscription,
    SubscriptionStatus,
)
from referral_service.kit.ids import new_id
from referral_service.kit.prepared import Prepared
from referral_service.organisations.models import Organisation, OrgKind

# Still wanting events: `requested` and `error` ones too, so that nothing is missed while the
# handshake or a retry is outstanding (the worker sends them in order once it gets through).
LISTENING = (SubscriptionStatus.REQUESTED, SubscriptionStatus.ACTIVE, SubscriptionStatus.ERROR)


@dataclass(frozen=True, slots=True)
class Listener:
    """A subscription that still wants events, as far as deciding who hears of one needs it."""

    id: str
    org_id: str
    client_id: str
    topic: str
    filters: str
    kind: OrgKind  # its subscriber's


# At most this many topics are asked about at once (a change is an event of a few topics only):
# unused places repeat a topic, so that one statement, built once, serves every commit.
_TOPIC_PLACES = 4
_LISTENING = Prepared(
    select(
        Subscription.id,
        Subscription.org_id,
        Subscription.client_id,
        Subscription.topic,
        Subscription.filters,
        Organisation.kind,
    )
    .join(Organisation, Organisation.id == Subscription.org_id)
    .where(
        Subscription.topic.in_([bindparam(f"topic{i}") for i in range(_TOPIC_PLACES)]),
        Subscription.status.in_([bindparam(f"status{i}") for i in range(len(LISTENING))]),
        or_(Subscription.end.is_(None), Subscription.end > bindparam("now")),
    )
    .order_by(Subscription.id)
)


def listening(session: Session, topics: Collection[str], now: datetime) -> list[Listener]:
    """Every subscription to these topics that still wants events, with its subscriber's kind.
    Not locked: most commits find nobody to notify and must not queue behind each other.

    Asked at every commit that has a change that could be an event (every intake), and nearly
    always answered with nothing: a statement built once and, on PostgreSQL, prepared
    (kit/prepared.py), so that asking costs little more than the round trip. Not cached across
    transactions: a subscription made a moment ago, in any process, is heard here."""
    wanted = sorted(topics)
    rows: list[Listener] = []
    for start in range(0, len(wanted), _TOPIC_PLACES):
        chunk = wanted[start : start + _TOPIC_PLACES]
        params: dict[str, Any] = {
            f"topic{i}": chunk[min(i, len(chunk) - 1)] for i in range(_TOPIC_PLACES)
        }
        params.update({f"status{i}": status.value for i, status in enumerate(LISTENING)})
        params["now"] = now
        found = _LISTENING.rows(session.connection(), params)
        rows.extend(Listener(r[0], r[1], r[2], r[3], r[4], OrgKind(r[5])) for r in found)
    rows.sort(key=lambda listener: listener.id)
    return rows


def lock(session: Session, subscription_ids: Collection[str]) -> list[Subscription]:
    """The subscriptions locked until commit, in id order (so two transactions that notify the
    same two never wait for each other in a circle), their columns read again under the lock:
    `events_since_start` as the last transaction to notify left it."""
    stmt = (
        select(Subscription)
        .where(Subscription.id.in_(sorted(subscription_ids)))
        .order_by(Subscription.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(stmt))


def add_event(
    session: Session,
    subscription: Subscription,
    event_number: int,
    focus: tuple[str, str],
    occurred_at: datetime,
) -> Delivery:
    rtype, rid = focus
    delivery = Delivery(
        id=new_id(),
        subscription_id=subscription.id,
        org_id=subscription.org_id,
        kind=DeliveryKind.EVENT,
        event_number=event_number,
        focus_type=rtype,
        focus_id=rid,
        occurred_at=occurred_at,
        status=DeliveryStatus.PENDING,
        next_attempt_at=occurred_at,
    )
    session.add(delivery)
    return delivery
