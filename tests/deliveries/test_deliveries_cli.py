"""`spis deliveries list|retry|purge`, in this process against the test database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscription,
    SubscriptionStatus,
)
from referral_service.jobs.producer import Producer
from referral_service.kit.clock import utcnow
from referral_service.organisations.models import OrgKind
from tests.deliveries.sending_support import (
    Subscriber,
    add_delivery,
    add_subscription,
    deliveries,
    register_subscriber,
    subscription,
)
from tests.fixtures.spis_cli import InProcessSpis, in_process_spis

ENDPOINT = "https://gp-system.example.org/spis/notify"


@pytest.fixture
def spis(
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[InProcessSpis]:
    yield from in_process_spis(pg_url, tmp_path, monkeypatch, capsys, SPIS_BROKER_URL="memory://")


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The messages sent after commit."""
    messages: list[tuple[str, str]] = []

    def send(self: Producer, name: str, job_id: str) -> bool:
        messages.append((name, job_id))
        return True

    monkeypatch.setattr(Producer, "send", send)
    return messages


@pytest.fixture
def subscriber(session_factory: sessionmaker[Session]) -> Subscriber:
    return register_subscriber(session_factory, OrgKind.PRACTICE)


def set_delivery(
    session_factory: sessionmaker[Session], delivery_id: str, **values: object
) -> None:
    with session_factory() as session, session.begin():
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def set_subscription(
    session_factory: sessionmaker[Session], subscription_id: str, **values: object
) -> None:
    with session_factory() as session, session.begin():
        session.execute(
            update(Subscription).where(Subscription.id == subscription_id).values(**values)
        )


def test_list_shows_ids_kinds_and_states_newest_first_and_filters(
    spis: InProcessSpis, session_factory: sessionmaker[Session], subscriber: Subscriber
) -> None:
    sid = add_subscription(session_factory, subscriber, ENDPOINT)
    other = add_subscription(session_factory, subscriber, ENDPOINT)
    first = add_delivery(
        session_factory, sid, subscriber.org_id, event_number=1, focus=("Task", "t-1")
    )
    second = add_delivery(session_factory, sid, subscriber.org_id, DeliveryKind.HEARTBEAT)
    add_delivery(session_factory, other, subscriber.org_id, DeliveryKind.HEARTBEAT)
    set_delivery(
        session_factory,
        first,
        status=DeliveryStatus.DEAD,
        attempts=9,
        last_status=503,
        last_error="HTTP 503",
    )

    code, listed, _ = spis("deliveries", "list", "--subscription", sid)

    assert code == 0
    assert [row["id"] for row in listed] == [second, first]
    dead = listed[1]
    assert dead == {
        "seq": dead["seq"],
        "id": first,
        "subscription": sid,
        "kind": "event-notification",
        "event_number": 1,
        "status": "dead-letter",
        "attempts": 9,
        "last_status": 503,
        "last_error": "HTTP 503",
        "next_attempt_at": None,
    }
    assert listed[0]["next_attempt_at"] is not None  # pending: when it goes next
    assert ENDPOINT not in str(listed)

    _, only_dead, _ = spis("deliveries", "list", "--status", "dead-letter")
    assert [row["id"] for row in only_dead] == [first]
    _, limited, _ = spis("deliveries", "list", "--limit", "1")
    assert len(limited) == 1


def test_retry_puts_a_dead_letter_back_and_the_subscription_to_work(
    spis: InProcessSpis,
    session_factory: sessionmaker[Session],
    subscriber: Subscriber,
    sent: list[tuple[str, str]],
) -> None:
    sid = add_subscription(session_factory, subscriber, ENDPOINT)
    dead = add_delivery(session_factory, sid, subscriber.org_id, DeliveryKind.HEARTBEAT)
    set_delivery(session_factory, dead, status=DeliveryStatus.DEAD, attempts=12)
    set_subscription(
        session_factory, sid, status=SubscriptionStatus.ERROR, error="delivery failed for 24 h"
    )

    code, result, _ = spis("deliveries", "retry", dead)

    assert code == 0
    assert result == {"subscription": sid, "subscription_status": "active", "retried": [dead]}
    (row,) = deliveries(session_factory, sid)
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 0)
    assert row.next_attempt_at <= utcnow()
    sub = subscription(session_factory, sid)
    assert (sub.status, sub.error) == (SubscriptionStatus.ACTIVE, None)
    assert sent == [("spis.deliver", sid)]


def test_retrying_a_dead_handshake_makes_the_subscription_requested_again(
    spis: InProcessSpis, session_factory: sessionmaker[Session], subscriber: Subscriber
) -> None:
    sid = add_subscription(session_factory, subscriber, ENDPOINT, status=SubscriptionStatus.ERROR)
    dead = add_delivery(
        session_factory, sid, subscriber.org_id, DeliveryKind.HANDSHAKE, status=DeliveryStatus.DEAD
    )

    code, result, _ = spis("deliveries", "retry", "--subscription", sid)

    assert code == 0
    assert result["retried"] == [dead]
    assert result["subscription_status"] == "requested"
    assert subscription(session_factory, sid).status is SubscriptionStatus.REQUESTED


def test_retry_by_subscription_takes_every_dead_letter_and_nothing_else(
    spis: InProcessSpis, session_factory: sessionmaker[Session], subscriber: Subscriber
) -> None:
    sid = add_subscription(session_factory, subscriber, ENDPOINT, status=SubscriptionStatus.ERROR)
    dead = [
        add_delivery(
            session_factory,
            sid,
            subscriber.org_id,
            DeliveryKind.HEARTBEAT,
            status=DeliveryStatus.DEAD,
        )
        for _ in range(2)
    ]
    delivered = add_delivery(
        session_factory,
        sid,
        subscriber.org_id,
        DeliveryKind.HEARTBEAT,
        status=DeliveryStatus.DELIVERED,
    )

    code, result, _ = spis("deliveries", "retry", "--subscription", sid)

    assert code == 0
    assert result["retried"] == dead
    states = {row.id: row.status for row in deliveries(session_factory, sid)}
    assert states == {
        dead[0]: DeliveryStatus.PENDING,
        dead[1]: DeliveryStatus.PENDING,
        delivered: DeliveryStatus.DELIVERED,
    }


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (("deliveries", "retry", "no-such-delivery"), "no delivery with id no-such-delivery"),
        (("deliveries", "retry", "--subscription", "nope"), "no subscription with id nope"),
        (("deliveries", "retry"), "name a delivery id, or --subscription"),
        (("deliveries", "list", "--limit", "0"), "--limit must be at least 1"),
    ],
)
def test_unknown_ids_and_bad_arguments_are_one_line_errors(
    spis: InProcessSpis, argv: tuple[str, ...], says: str
) -> None:
    code, out, err = spis(*argv)

    assert (code, out) == (1, None)
    (line,) = err.strip().splitlines()
    assert line.startswith(f"spis: error: {says}")


def test_only_dead_letters_of_subscriptions_not_off_are_retried(
    spis: InProcessSpis, session_factory: sessionmaker[Session], subscriber: Subscriber
) -> None:
    sid = add_subscription(session_factory, subscriber, ENDPOINT)
    pending = add_delivery(session_factory, sid, subscriber.org_id, DeliveryKind.HEARTBEAT)
    off = add_subscription(session_factory, subscriber, ENDPOINT, status=SubscriptionStatus.OFF)
    dead_in_off = add_delivery(
        session_factory, off, subscriber.org_id, DeliveryKind.HEARTBEAT, status=DeliveryStatus.DEAD
    )

    code, _, err = spis("deliveries", "retry", pending)
    assert code == 1
    assert "is pending: only dead-letter deliveries are retried" in err
    code, _, err = spis("deliveries", "retry", dead_in_off)
    assert code == 1
    assert f"subscription {off} is off" in err
    assert deliveries(session_factory, off)[0].status is DeliveryStatus.DEAD


def test_purge_deletes_old_finished_deliveries_never_pending_ones(
    spis: InProcessSpis, session_factory: sessionmaker[Session], subscriber: Subscriber
) -> None:
    sid = add_subscription(session_factory, subscriber, ENDPOINT)
    long_ago = utcnow() - timedelta(days=40)
    old = {
        status: add_delivery(
            session_factory,
            sid,
            subscriber.org_id,
            DeliveryKind.HEARTBEAT,
            occurred_at=long_ago,
            status=status,
        )
        for status in DeliveryStatus
    }
    recent = add_delivery(
        session_factory,
        sid,
        subscriber.org_id,
        DeliveryKind.HEARTBEAT,
        occurred_at=utcnow() - timedelta(days=10),
        status=DeliveryStatus.DELIVERED,
    )
    # Delivered lately, after a long outage: counted from its delivery, so kept.
    set_delivery(session_factory, old[DeliveryStatus.DELIVERED], delivered_at=utcnow())

    code, result, _ = spis("deliveries", "purge")

    assert code == 0
    assert result == {"purged": 2, "older_than_days": 30}
    kept = {row.id for row in deliveries(session_factory, sid)}
    assert kept == {old[DeliveryStatus.PENDING], old[DeliveryStatus.DELIVERED], recent}

    _, again, _ = spis("deliveries", "purge", "--older-than", "5")
    assert again == {"purged": 1, "older_than_days": 5}
    assert {row.id for row in deliveries(session_factory, sid)} == {
        old[DeliveryStatus.PENDING],
        old[DeliveryStatus.DELIVERED],
    }
