"""Every query sending, sweeping and the operator's commands make on subscriptions and their
deliveries. SPIS runs these as itself: a subscription's rows carry the subscriber's org_id, and
what a notification may show is decided against the store (sending.py), not here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscription,
    SubscriptionStatus,
)
from referral_service.organisations.models import Organisation, OrgKind

# A subscription in one of these sends: `requested` its handshake only, `active` everything.
SENDING = (SubscriptionStatus.REQUESTED, SubscriptionStatus.ACTIVE)
ENDED = (DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED, DeliveryStatus.DEAD)


def subscription(session: Session, subscription_id: str) -> Subscription | None:
    return session.get(Subscription, subscription_id, populate_existing=True)


def subscriber_kind(session: Session, org_id: str) -> OrgKind | None:
    return session.scalar(select(Organisation.kind).where(Organisation.id == org_id))


# -- the head: the one delivery a subscription may send next ------------------------------------


def _rank(delivery: type[Delivery]) -> ColumnElement[int]:
    """A pending handshake goes first (nothing is sent before the subscriber confirmed), then
    everything by seq."""
    return case((delivery.kind == DeliveryKind.HANDSHAKE, 0), else_=1)


def head(session: Session, subscription_id: str, *, handshake_only: bool) -> Delivery | None:
    stmt = select(Delivery).where(
        Delivery.subscription_id == subscription_id, Delivery.status == DeliveryStatus.PENDING
    )
    if handshake_only:
        stmt = stmt.where(Delivery.kind == DeliveryKind.HANDSHAKE)
    return session.scalar(stmt.order_by(_rank(Delivery), Delivery.seq).limit(1))


def lock_pending(session: Session, delivery_id: str) -> Delivery | None:
    """The delivery, locked until commit, if it is still pending and no other worker holds it."""
    stmt = (
        select(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.PENDING)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    return session.scalar(stmt)


def due_subscription_ids(session: Session, now: datetime, limit: int = 1000) -> list[str]:
    """Subscriptions whose head delivery's time has come."""
    earlier = aliased(Delivery)
    rank, earlier_rank = _rank(Delivery), _rank(earlier)
    before_head = exists().where(
        earlier.subscription_id == Delivery.subscription_id,
        earlier.status == DeliveryStatus.PENDING,
        or_(earlier_rank < rank, and_(earlier_rank == rank, earlier.seq < Delivery.seq)),
    )
    sendable = or_(
        Subscription.status == SubscriptionStatus.ACTIVE,
        and_(
            Subscription.status == SubscriptionStatus.REQUESTED,
            Delivery.kind == DeliveryKind.HANDSHAKE,
        ),
    )
    stmt = (
        select(Delivery.subscription_id)
        .join(Subscription, Subscription.id == Delivery.subscription_id)
        .where(
            Delivery.status == DeliveryStatus.PENDING,
            Delivery.next_attempt_at <= now,
            sendable,
            ~before_head,
        )
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    return list(dict.fromkeys(session.scalars(stmt)))


# -- changing a subscription (guarded: a concurrent change by its owner wins) --------------------


def _set_status(
    session: Session,
    subscription_id: str,
    status: SubscriptionStatus,
    now: datetime,
    *,
    when: Sequence[SubscriptionStatus],
    error: str | None = None,
) -> bool:
    result = session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, Subscription.status.in_(when))
        .values(
            status=status,
            error=error,
            version_id=Subscription.version_id + 1,
            last_updated=now,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def activate(session: Session, subscription_id: str, now: datetime) -> bool:
    return _set_status(
        session,
        subscription_id,
        SubscriptionStatus.ACTIVE,
        now,
        when=(SubscriptionStatus.REQUESTED,),
    )


def reopen(
    session: Session, subscription_id: str, status: SubscriptionStatus, now: datetime
) -> bool:
    """An operator's retry: an `error` subscription sends again."""
    return _set_status(session, subscription_id, status, now, when=(SubscriptionStatus.ERROR,))


def fail(session: Session, subscription_id: str, error: str, now: datetime) -> bool:
    return _set_status(
        session, subscription_id, SubscriptionStatus.ERROR, now, when=SENDING, error=error[:500]
    )


def turn_off(session: Session, subscription_id: str, now: datetime) -> bool:
    """Off for good (a 410, or past its end), and nothing still pending is sent."""
    changed = _set_status(
        session,
        subscription_id,
        SubscriptionStatus.OFF,
        now,
        when=(*SENDING, SubscriptionStatus.ERROR),
    )
    cancel_pending(session, subscription_id)
    return changed


def cancel_pending(session: Session, subscription_id: str) -> int:
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.subscription_id == subscription_id, Delivery.status == DeliveryStatus.PENDING
        )
        .values(status=DeliveryStatus.CANCELLED)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))


def delivered(session: Session, subscription_id: str, now: datetime) -> None:
    session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id)
        .values(last_delivered_at=now)
        .execution_options(synchronize_session=False)
    )


# -- the sweep -----------------------------------------------------------------------------------


def ended_ids(session: Session, now: datetime) -> list[str]:
    """Subscriptions past their `end` that are not off yet."""
    stmt = select(Subscription.id).where(
        Subscription.end.is_not(None),
        Subscription.end <= now,
        Subscription.status != SubscriptionStatus.OFF,
    )
    return list(session.scalars(stmt))


def heartbeat_candidates(session: Session) -> list[Subscription]:
    """Active subscriptions with a heartbeat and nothing pending: the caller checks the period."""
    pending = exists().where(
        Delivery.subscription_id == Subscription.id, Delivery.status == DeliveryStatus.PENDING
    )
    stmt = select(Subscription).where(
        Subscription.status == SubscriptionStatus.ACTIVE,
        Subscription.heartbeat_period_s.is_not(None),
        ~pending,
    )
    return list(session.scalars(stmt))


def pending_events(session: Session, subscription_id: str) -> int:
    """How many of the subscription's numbered events are still waiting to be sent."""
    stmt = select(func.count()).where(
        Delivery.subscription_id == subscription_id,
        Delivery.kind == DeliveryKind.EVENT,
        Delivery.status == DeliveryStatus.PENDING,
    )
    return int(session.scalar(stmt) or 0)


def add(session: Session, delivery: Delivery) -> None:
    session.add(delivery)


# -- the operator's commands ---------------------------------------------------------------------


def listed(
    session: Session,
    *,
    status: DeliveryStatus | None,
    subscription_id: str | None,
    limit: int,
) -> list[Delivery]:
    """Newest first."""
    stmt = select(Delivery)
    if status is not None:
        stmt = stmt.where(Delivery.status == status)
    if subscription_id is not None:
        stmt = stmt.where(Delivery.subscription_id == subscription_id)
    return list(session.scalars(stmt.order_by(Delivery.seq.desc()).limit(limit)))


def delivery_for_update(session: Session, delivery_id: str) -> Delivery | None:
    return session.scalar(select(Delivery).where(Delivery.id == delivery_id).with_for_update())


def subscription_for_update(session: Session, subscription_id: str) -> Subscription | None:
    return session.scalar(
        select(Subscription).where(Subscription.id == subscription_id).with_for_update()
    )


def dead_letters(session: Session, subscription_id: str) -> list[Delivery]:
    stmt = (
        select(Delivery)
        .where(Delivery.subscription_id == subscription_id, Delivery.status == DeliveryStatus.DEAD)
        .order_by(Delivery.seq)
        .with_for_update()
    )
    return list(session.scalars(stmt))


def has_pending_handshake(session: Session, subscription_id: str) -> bool:
    stmt = select(
        exists().where(
            Delivery.subscription_id == subscription_id,
            Delivery.kind == DeliveryKind.HANDSHAKE,
            Delivery.status == DeliveryStatus.PENDING,
        )
    )
    return bool(session.scalar(stmt))


def purge(session: Session, before: datetime) -> int:
    """Delete finished deliveries (never pending ones) last touched before `before`."""
    touched = func.coalesce(Delivery.delivered_at, Delivery.occurred_at)
    result = session.execute(
        delete(Delivery)
        .where(Delivery.status.in_(ENDED), touched < before)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0))
