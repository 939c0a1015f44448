"""The beat's sweep over subscriptions (every SPIS_DELIVERY_SWEEP_INTERVAL_S):

- a subscription past its `end` is turned `off`, and what it still had pending cancelled;
- an `active` subscription with a heartbeat period, nothing pending, and nothing delivered for
  that long (since it was created, if never) gets a heartbeat delivery;
- every subscription whose head delivery is due is named, for the caller to send `spis.deliver`
  for it: a retry whose time came, a heartbeat just added, and a message lost or never sent
  (the broker was down when the event committed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from referral_service.deliveries import sending_repository as repository
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscription,
)
from referral_service.deliveries.sending import UnitOfWork
from referral_service.kit.clock import as_utc, utcnow
from referral_service.kit.ids import new_id


@dataclass(frozen=True, slots=True)
class Swept:
    due: list[str]  # subscription ids to send `spis.deliver` for
    heartbeats: int
    ended: int


def sweep(sessions: UnitOfWork, now: datetime | None = None) -> Swept:
    now = now or utcnow()
    with sessions() as session:
        ended = end_expired(session, now)
        heartbeats = add_heartbeats(session, now)
    with sessions() as session:
        due = repository.due_subscription_ids(session, now)
    return Swept(due, heartbeats, ended)


def end_expired(session: Session, now: datetime) -> int:
    ended = repository.ended_ids(session, now)
    for subscription_id in ended:
        repository.turn_off(session, subscription_id, now)
    return len(ended)


def add_heartbeats(session: Session, now: datetime) -> int:
    added = 0
    for sub in repository.heartbeat_candidates(session):
        if _heartbeat_due(sub, now):
            repository.add(session, heartbeat(sub, now))
            added += 1
    return added


def _heartbeat_due(sub: Subscription, now: datetime) -> bool:
    assert sub.heartbeat_period_s is not None
    last = as_utc(sub.last_delivered_at or sub.created_at)
    return now - last >= timedelta(seconds=sub.heartbeat_period_s)


def heartbeat(sub: Subscription, now: datetime) -> Delivery:
    return Delivery(
        id=new_id(),
        subscription_id=sub.id,
        org_id=sub.org_id,
        kind=DeliveryKind.HEARTBEAT,
        occurred_at=now,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
    )
