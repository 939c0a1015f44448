"""Deliveries through a real Celery worker (with its beat) on Redis, to a real receiver: the
handshake then the events in order; and a worker killed with SIGKILL in the middle of a POST,
after which the restarted worker sends the same notification again (at least once)."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.deliveries.models import DeliveryKind, DeliveryStatus, SubscriptionStatus
from referral_service.jobs.producer import Producer
from referral_service.jobs.service import JobName
from referral_service.keys import ring as key_ring
from referral_service.keys.jose import KeyStore, keys_dir
from referral_service.principal import Principal
from referral_service.store.service import create
from tests.conftest import TEST_KEK
from tests.deliveries.sending_support import (
    Receiver,
    add_delivery,
    add_subscription,
    deliveries,
    opened_bundle,
    register_subscriber,
    serve_receiver,
    status_parameters,
    subscription,
)
from tests.integration.conftest import BROKER_URL, Worker, wait_for

pytestmark = pytest.mark.slow

WORKER_ENV = {"SPIS_DELIVERY_ALLOWED_HOSTS": "127.0.0.1", "SPIS_DELIVERY_SWEEP_INTERVAL_S": "1"}


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_url,
        broker_url=BROKER_URL,
        queue=f"spis-test-{secrets.token_hex(4)}",
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
        delivery_allowed_hosts="127.0.0.1",
    )


@pytest.fixture(autouse=True)
def _fresh_data_keys(session_factory: sessionmaker[Session], pg_engine: Engine) -> None:
    """Tables (data keys included) are emptied before each test, but this process caches
    unwrapped data keys by id: forget them, or it would seal with a key the worker cannot open."""
    key_ring.register(pg_engine, TEST_KEK)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


@pytest.fixture
def spis_jwks(settings: Settings) -> dict[str, Any]:
    """The keys the worker signs with: made here first, read by the worker from the same folder."""
    return KeyStore(keys_dir(settings), generate=True).public_jwks()


def a_task(session_factory: sessionmaker[Session], settings: Settings, tenant: str) -> str:
    """Intent `plan`: storing it is no Task-topic event; these tests write deliveries by hand."""
    with session_factory() as session, session.begin():
        ctx = Context(session, Principal.spis(), settings)
        task = {"resourceType": "Task", "status": "requested", "intent": "plan"}
        return create(ctx, "Task", task, tenant=tenant).id


def test_a_worker_delivers_the_handshake_then_the_events_in_order(
    session_factory: sessionmaker[Session],
    settings: Settings,
    receiver: Receiver,
    spis_jwks: dict[str, Any],
) -> None:
    subscriber = register_subscriber(session_factory)
    sid = add_subscription(
        session_factory, subscriber, receiver.url, status=SubscriptionStatus.REQUESTED
    )
    task = a_task(session_factory, settings, subscriber.org_id)
    for number in (1, 2, 3):
        add_delivery(
            session_factory, sid, subscriber.org_id, event_number=number, focus=("Task", task)
        )
    add_delivery(session_factory, sid, subscriber.org_id, DeliveryKind.HANDSHAKE)
    worker = Worker(settings, beat=True, **WORKER_ENV)
    try:
        worker.start()
        Producer(settings).send(JobName.DELIVER.value, sid)
        wait_for(lambda: len(receiver.requests) >= 4, timeout=60, what="four notifications")
    finally:
        worker.stop()

    sent = [status_parameters(opened_bundle(r, subscriber, spis_jwks)) for r in receiver.requests]
    assert [p["type"] for p in sent] == ["handshake", *["event-notification"] * 3]
    assert [p["notification-event"]["event-number"] for p in sent[1:]] == ["1", "2", "3"]
    assert subscription(session_factory, sid).status is SubscriptionStatus.ACTIVE
    assert {row.status for row in deliveries(session_factory, sid)} == {DeliveryStatus.DELIVERED}


def test_a_worker_killed_mid_delivery_leaves_it_to_be_sent_again(
    session_factory: sessionmaker[Session],
    settings: Settings,
    receiver: Receiver,
    spis_jwks: dict[str, Any],
) -> None:
    subscriber = register_subscriber(session_factory)
    sid = add_subscription(session_factory, subscriber, receiver.url)
    task = a_task(session_factory, settings, subscriber.org_id)
    event = add_delivery(
        session_factory, sid, subscriber.org_id, event_number=7, focus=("Task", task)
    )
    receiver.gate = threading.Event()  # the receiver hangs: the worker is mid-POST
    worker = Worker(settings, beat=True, **WORKER_ENV)
    try:
        worker.start()  # the sweep finds the due delivery: no message needed
        wait_for(lambda: receiver.requests, timeout=60, what="the first POST")
        worker.kill()
        assert deliveries(session_factory, sid)[0].status is DeliveryStatus.PENDING
        receiver.gate.set()
        receiver.gate = None

        worker.start()
        wait_for(
            lambda: deliveries(session_factory, sid)[0].status is DeliveryStatus.DELIVERED,
            timeout=60,
            what="delivery after the restart",
        )
    finally:
        worker.stop()

    first, again = receiver.requests[0], receiver.requests[-1]
    assert first.headers["webhook-id"] == again.headers["webhook-id"] == event
    numbers = [
        status_parameters(opened_bundle(r, subscriber, spis_jwks))["notification-event"]
        for r in (first, again)
    ]
    assert numbers[0]["event-number"] == "7"
    assert numbers[0] == numbers[1]  # the same event, focus and timestamp
