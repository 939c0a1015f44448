"""Subscriptions and their deliveries. A delivery is a row before it is a request: written in the
transaction of the event that causes it, sent by a worker after commit, kept until an operator
purges it (docs/deliveries.md)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, Enum, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from referral_service.kit.clock import utcnow
from referral_service.kit.models import Base


class SubscriptionStatus(enum.StrEnum):
    """R4 subscription-status. `requested` until the handshake is delivered, then `active`;
    `error` when a delivery ran out of retries; `off` when the subscriber (or a 410) ended it."""

    REQUESTED = "requested"
    ACTIVE = "active"
    ERROR = "error"
    OFF = "off"


class Payload(enum.StrEnum):
    """The backport's payload content: how much of the focus a notification carries."""

    EMPTY = "empty"
    ID_ONLY = "id-only"
    FULL_RESOURCE = "full-resource"


class DeliveryKind(enum.StrEnum):
    HANDSHAKE = "handshake"
    HEARTBEAT = "heartbeat"
    EVENT = "event-notification"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    # Out of retries (or refused for good by the receiver): kept for an operator to retry or purge.
    DEAD = "dead-letter"
    # Never to be sent: the subscription was turned off or deleted, or consent no longer lets the
    # subscriber see the focus.
    CANCELLED = "cancelled"


def _enum(kind: type[enum.StrEnum], length: int = 16) -> Enum:
    return Enum(
        kind, native_enum=False, length=length, values_callable=lambda s: [m.value for m in s]
    )


class Subscription(Base):
    """A subscriber's Subscription, in columns: FHIR JSON is rebuilt at the edge."""

    __tablename__ = "subscription"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # The subscriber: only its own data reaches it, and only it sees the subscription.
    org_id: Mapped[str] = mapped_column(ForeignKey("organisation.id"), index=True)
    # The client that created it: its registered JWKS holds the key notifications are sealed to.
    client_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[SubscriptionStatus] = mapped_column(_enum(SubscriptionStatus))
    topic: Mapped[str] = mapped_column(String(255))  # the topic's canonical URL
    # JSON list of [resource type, search parameter, value]: the backport filter criteria.
    filters: Mapped[str] = mapped_column(Text, default="[]")
    payload: Mapped[Payload] = mapped_column(_enum(Payload))
    # application/jose (signed, then encrypted to the client's key) or, outside production only,
    # application/fhir+json.
    content_type: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(2048))
    reason: Mapped[str] = mapped_column(String(1000))
    heartbeat_period_s: Mapped[int | None] = mapped_column(Integer)
    timeout_s: Mapped[int | None] = mapped_column(Integer)
    end: Mapped[datetime | None]
    # The last event number given out: event numbers go up by one per subscription.
    events_since_start: Mapped[int] = mapped_column(BigInteger, default=0)
    # When a delivery of any kind last reached the endpoint (the heartbeat's clock).
    last_delivered_at: Mapped[datetime | None]
    # Why the subscription is in `error` (no patient data: an HTTP status or an error class).
    error: Mapped[str | None] = mapped_column(String(500))
    version_id: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_updated: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"Subscription({self.id}, {self.status.value})"


class Delivery(Base):
    """One notification to one subscription. `seq` orders a subscription's deliveries: the next
    is sent only when the one before it is delivered."""

    __tablename__ = "delivery"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # Sent as `webhook-id`: the same on every attempt, so a receiver can drop a duplicate.
    id: Mapped[str] = mapped_column(String(36), unique=True)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscription.id", ondelete="CASCADE"))
    org_id: Mapped[str] = mapped_column(String(36))  # the subscriber, for tenancy in queries
    kind: Mapped[DeliveryKind] = mapped_column(_enum(DeliveryKind, 24))
    event_number: Mapped[int | None] = mapped_column(BigInteger)  # events only
    # What the event is about, as ids: the body is built at send time, as consent then allows.
    focus_type: Mapped[str | None] = mapped_column(String(64))
    focus_id: Mapped[str | None] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[DeliveryStatus] = mapped_column(_enum(DeliveryStatus))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When an operator last sent it back to pending (`spis deliveries retry`): its retry window
    # runs from then, not from the event.
    retried_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # The receiver's last HTTP status, and a short reason without patient data.
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_delivery_subscription_status_seq", "subscription_id", "status", "seq"),
        Index("ix_delivery_status_next", "status", "next_attempt_at"),
    )

    def __repr__(self) -> str:
        return f"Delivery({self.seq}, {self.kind.value}, {self.status.value})"
