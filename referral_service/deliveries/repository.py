"""Every query about subscriptions and their deliveries. A subscription belongs to one
organisation: every query names it, so another organisation's subscription is not found."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from referral_service.deliveries.models import (
    Delivery,
    DeliveryStatus,
    Subscription,
    SubscriptionStatus,
)


def add(session: Session, subscription: Subscription) -> None:
    session.add(subscription)
    session.flush()


def add_delivery(session: Session, delivery: Delivery) -> None:
    session.add(delivery)
    session.flush()


def get(
    session: Session, org_id: str, sid: str, *, for_update: bool = False
) -> Subscription | None:
    """One of the organisation's subscriptions; locked against the delivery worker's changes
    (status, event numbers) when it is about to be changed."""
    query = select(Subscription).where(Subscription.id == sid, Subscription.org_id == org_id)
    if for_update:
        query = query.with_for_update()
    return session.scalar(query)


def find(
    session: Session,
    org_id: str,
    *,
    ids: Collection[str] | None = None,
    statuses: Collection[SubscriptionStatus] | None = None,
    topics: Collection[str] | None = None,
) -> list[Subscription]:
    """The organisation's subscriptions, oldest first; each given criterion narrows the result."""
    query = select(Subscription).where(Subscription.org_id == org_id)
    if ids is not None:
        query = query.where(Subscription.id.in_(list(ids)))
    if statuses is not None:
        query = query.where(Subscription.status.in_(list(statuses)))
    if topics is not None:
        query = query.where(Subscription.topic.in_(list(topics)))
    return list(session.scalars(query.order_by(Subscription.created_at, Subscription.id)))


def count(session: Session, org_id: str) -> int:
    query = select(func.count()).select_from(Subscription).where(Subscription.org_id == org_id)
    return session.scalar(query) or 0


def cancel_pending(session: Session, org_id: str, sid: str) -> int:
    """Deliveries not yet sent will never be: the subscription was turned off."""
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.subscription_id == sid,
            Delivery.org_id == org_id,
            Delivery.status == DeliveryStatus.PENDING,
        )
        .values(status=DeliveryStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def remove(session: Session, org_id: str, sid: str) -> bool:
    """Delete a subscription; its deliveries go with it (ON DELETE CASCADE)."""
    result = session.execute(
        delete(Subscription)
        .where(Subscription.id == sid, Subscription.org_id == org_id)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
