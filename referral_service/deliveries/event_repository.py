"""The queries that turn events into delivery rows (deliveries/events.py): who listens to a topic,
locking the subscriptions that get an event, and the event rows themselves."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscription,
    SubscriptionStatus,
)
from referral_service.kit.ids import new_id
from referral_service.organisations.models import Organisation, OrgKind

# Still wanting events: `requested` and `error` ones too, so that nothing is missed while the
# handshake or a retry is outstanding (the worker sends them in order once it gets through).
LISTENING = (SubscriptionStatus.REQUESTED, SubscriptionStatus.ACTIVE, SubscriptionStatus.ERROR)


def listening(
    session: Session, topics: Collection[str], now: datetime
) -> list[tuple[Subscription, OrgKind]]:
    """Every subscription to these topics that still wants events, with its subscriber's kind.
    Not locked: most commits find nobody to notify and must not queue behind each other."""
    stmt = (
        select(Subscription, Organisation.kind)
        .join(Organisation, Organisation.id == Subscription.org_id)
        .where(
            Subscription.topic.in_(sorted(topics)),
            Subscription.status.in_(LISTENING),
            or_(Subscription.end.is_(None), Subscription.end > now),
        )
        .order_by(Subscription.id)
    )
    return [(row[0], row[1]) for row in session.execute(stmt)]


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
