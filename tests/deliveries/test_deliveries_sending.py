"""Sending deliveries to a real HTTP receiver: in order, signed and sealed, retried with back-off,
dead-lettered, turned off by a 410, held back by consent, one worker per head."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent, Kind
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.deliveries import sending
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Payload,
    SubscriptionStatus,
)
from referral_service.deliveries.sweep import sweep
from referral_service.keys.jose import KeyStore
from referral_service.kit.clock import as_utc, utcnow
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store import repository as store_repository
from referral_service.store.service import create
from referral_service.transit.notifications import parse_notification
from tests.conftest import TEST_KEK
from tests.deliveries.sending_support import (
    Receiver,
    Subscriber,
    add_delivery,
    add_subscription,
    deliveries,
    opened_bundle,
    register_subscriber,
    serve_receiver,
    status_parameters,
    subscription,
    verify_signature,
)

# The tests' clock: on the hour, one to two hours ahead of the real one, which stamps the rows
# `add_delivery` makes (due at once), so that they are due at T0 whatever the day. (A fixed
# 2026-11-30 09:00 failed every test that sends from that time on.)
T0 = (utcnow() + timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_url,
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
        delivery_allowed_hosts="127.0.0.1",
        delivery_backoff_base_s=2.0,
        delivery_backoff_max_s=3600.0,
        delivery_retry_window_s=86400.0,
        delivery_timeout_s=5.0,
    )


@pytest.fixture(scope="session")
def spis_keys(tmp_path_factory: pytest.TempPathFactory) -> KeyStore:
    return KeyStore(tmp_path_factory.mktemp("spis") / "keys", generate=True)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from serve_receiver()


@pytest.fixture
def practice_sub(session_factory: sessionmaker[Session]) -> Subscriber:
    return register_subscriber(session_factory, OrgKind.PRACTICE)


class Run:
    """`sending.deliver` as the worker calls it, with the clock given."""

    def __init__(
        self, session_factory: sessionmaker[Session], settings: Settings, keys: KeyStore
    ) -> None:
        self.session_factory, self.settings, self.keys = session_factory, settings, keys

    def __call__(self, subscription_id: str, now: datetime = T0) -> list[str]:
        drained = sending.deliver(
            lambda: unit_of_work(self.session_factory),
            self.settings,
            subscription_id,
            now,
            keys=self.keys,
        )
        return [outcome.value for outcome in drained.outcomes]


@pytest.fixture
def run(session_factory: sessionmaker[Session], settings: Settings, spis_keys: KeyStore) -> Run:
    return Run(session_factory, settings, spis_keys)


def store_resource(
    session_factory: sessionmaker[Session],
    settings: Settings,
    rtype: str,
    data: dict[str, Any],
    tenant: str,
    share_with: tuple[str, ...] = (),
) -> str:
    with session_factory() as session, session.begin():
        ctx = Context(session, Principal.spis(), settings)
        return create(ctx, rtype, data, tenant=tenant, share_with=share_with).id


def a_task(session_factory: sessionmaker[Session], settings: Settings, tenant: str) -> str:
    """A Task to be a focus: intent `plan`, so that storing it is no event of the Task topic
    (these tests write their deliveries by hand)."""
    task = {"resourceType": "Task", "status": "requested", "intent": "plan"}
    return store_resource(session_factory, settings, "Task", task, tenant)


def delivery_audits(session_factory: sessionmaker[Session]) -> list[AuditEvent]:
    with session_factory() as session:
        stmt = select(AuditEvent).where(AuditEvent.kind == Kind.DELIVERY.value)
        return list(session.scalars(stmt.order_by(AuditEvent.seq)))


# -- the handshake and events, in order ----------------------------------------------------------


def test_a_delivered_handshake_makes_the_subscription_active(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    sid = add_subscription(
        session_factory, practice_sub, receiver.url, status=SubscriptionStatus.REQUESTED
    )
    handshake = add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HANDSHAKE)

    assert run(sid) == ["delivered"]

    (request,) = receiver.requests
    assert request.headers["webhook-id"] == handshake
    assert request.headers["webhook-timestamp"] == str(int(T0.timestamp()))
    assert request.headers["content-type"] == "application/jose"
    assert request.headers["user-agent"] == "SPIS-Deliveries"
    bundle = opened_bundle(request, practice_sub, spis_keys.public_jwks())
    assert bundle["type"] == "history"
    params = status_parameters(bundle)
    assert params["type"] == "handshake"
    assert params["status"] == "requested"
    assert params["events-since-subscription-start"] == "0"
    assert params["subscription"] == {"reference": f"http://testserver/fhir/Subscription/{sid}"}
    assert "notification-event" not in params
    assert len(bundle["entry"]) == 1
    sub = subscription(session_factory, sid)
    assert sub.status is SubscriptionStatus.ACTIVE
    assert as_utc(sub.last_delivered_at) == T0  # type: ignore[arg-type]
    (row,) = deliveries(session_factory, sid)
    assert (row.status, row.attempts, row.last_status) == (DeliveryStatus.DELIVERED, 1, 200)
    (audit,) = delivery_audits(session_factory)
    assert audit.tenant_org_id == practice_sub.org_id
    assert audit.outcome == 0


def test_a_requested_subscription_sends_its_handshake_only_and_first(
    session_factory: sessionmaker[Session],
    settings: Settings,
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    sid = add_subscription(
        session_factory,
        practice_sub,
        receiver.url,
        status=SubscriptionStatus.REQUESTED,
        events_since_start=1,
    )
    task = a_task(session_factory, settings, practice_sub.org_id)
    add_delivery(session_factory, sid, practice_sub.org_id, event_number=1, focus=("Task", task))
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HANDSHAKE)

    # The handshake is sent first although it was written last; once it is delivered the
    # subscription is active and the event follows in the same run.
    assert run(sid) == ["delivered", "delivered"]

    sent = [
        status_parameters(opened_bundle(r, practice_sub, spis_keys.public_jwks()))
        for r in receiver.requests
    ]
    assert [s["type"] for s in sent] == ["handshake", "event-notification"]
    # The handshake counts only what was sent before it, so the receiver sees no gap before #1.
    assert [s["events-since-subscription-start"] for s in sent] == ["0", "1"]


def test_events_go_out_in_seq_order_each_signed_by_spis(
    session_factory: sessionmaker[Session],
    settings: Settings,
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url, events_since_start=3)
    task = a_task(session_factory, settings, practice_sub.org_id)
    ids = [
        add_delivery(
            session_factory, sid, practice_sub.org_id, event_number=n, focus=("Task", task)
        )
        for n in (1, 2, 3)
    ]

    assert run(sid) == ["delivered"] * 3

    jwks = spis_keys.public_jwks()
    assert [r.headers["webhook-id"] for r in receiver.requests] == ids
    notes = [
        parse_notification(json.dumps(opened_bundle(r, practice_sub, jwks)).encode())
        for r in receiver.requests
    ]
    assert [note.event_number for note in notes] == [1, 2, 3]
    assert {note.focus for note in notes} == {f"http://testserver/fhir/Task/{task}"}
    assert [note.events_since_start for note in notes] == [1, 2, 3]
    header = verify_signature(receiver.requests[0], jwks)
    assert header["kid"] == spis_keys.ring().signing_key().kid


def test_a_tampered_body_fails_the_signature(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT)
    run(sid)
    (request,) = receiver.requests
    # One byte changed, always to another value (`[:-2] + b"AA"` changed nothing when the body
    # happened to end in "AA": a test that failed about once in 4,096 runs).
    request.body = request.body[:-1] + (b"B" if request.body.endswith(b"A") else b"A")

    with pytest.raises(Exception, match=r"signature|Signature"):
        verify_signature(request, spis_keys.public_jwks())


# -- payloads ------------------------------------------------------------------------------------


def test_id_only_full_resource_and_empty_bodies(
    session_factory: sessionmaker[Session],
    settings: Settings,
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    task = a_task(session_factory, settings, practice_sub.org_id)
    bundles = {}
    for payload in Payload:
        sid = add_subscription(session_factory, practice_sub, receiver.url, payload=payload)
        add_delivery(
            session_factory, sid, practice_sub.org_id, event_number=1, focus=("Task", task)
        )
        run(sid)
        bundles[payload] = opened_bundle(
            receiver.requests[-1], practice_sub, spis_keys.public_jwks()
        )

    task_url = f"http://testserver/fhir/Task/{task}"
    id_only = bundles[Payload.ID_ONLY]
    assert status_parameters(id_only)["notification-event"]["focus"] == {"reference": task_url}
    assert id_only["entry"][1] == {
        "fullUrl": task_url,
        "request": {"method": "POST", "url": "Task"},
        "response": {"status": "201"},
    }
    full = bundles[Payload.FULL_RESOURCE]
    assert full["entry"][1]["fullUrl"] == task_url
    assert full["entry"][1]["resource"]["id"] == task
    assert full["entry"][1]["resource"]["status"] == "requested"
    empty = bundles[Payload.EMPTY]
    assert len(empty["entry"]) == 1
    params = status_parameters(empty)
    assert "focus" not in params["notification-event"]
    assert params["notification-event"]["event-number"] == "1"
    assert "topic" not in params  # the IG: not with empty payloads
    for bundle in bundles.values():
        Bundle.model_validate(bundle)  # valid R4(B) Bundles


def test_full_resource_shows_a_time_bank_only_its_view_of_a_patient(
    session_factory: sessionmaker[Session],
    settings: Settings,
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    timebank = register_subscriber(session_factory, OrgKind.TIMEBANK)
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Example", "given": ["Alex"]}],
        "generalPractitioner": [{"reference": f"Organization/{practice_sub.org_id}"}],
    }
    pid = store_resource(
        session_factory, settings, "Patient", patient, practice_sub.org_id, (timebank.org_id,)
    )
    sid = add_subscription(session_factory, timebank, receiver.url, payload=Payload.FULL_RESOURCE)
    add_delivery(session_factory, sid, timebank.org_id, event_number=1, focus=("Patient", pid))

    assert run(sid) == ["delivered"]

    bundle = opened_bundle(receiver.requests[0], timebank, spis_keys.public_jwks())
    shown = bundle["entry"][1]["resource"]
    assert shown["name"] == patient["name"]
    assert "generalPractitioner" not in shown
    assert any(tag["code"] == "SUBSETTED" for tag in shown["meta"]["tag"])


def test_plain_json_outside_production_is_the_bundle_itself(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    sid = add_subscription(
        session_factory, practice_sub, receiver.url, content_type="application/fhir+json"
    )
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT)

    assert run(sid) == ["delivered"]

    (request,) = receiver.requests
    assert request.headers["content-type"] == "application/fhir+json"
    verify_signature(request, spis_keys.public_jwks())
    assert status_parameters(json.loads(request.body))["type"] == "heartbeat"


# -- failures: retry, dead-letter, 410 -----------------------------------------------------------


def test_a_failed_delivery_is_retried_later_and_nothing_overtakes_it(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    first = add_delivery(
        session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    second = add_delivery(
        session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    receiver.answer(503, 503)

    assert run(sid) == ["retry"]
    head, later = deliveries(session_factory, sid)
    assert (head.status, head.attempts, head.last_status, head.last_error) == (
        DeliveryStatus.PENDING,
        1,
        503,
        "HTTP 503",
    )
    first_wait = as_utc(head.next_attempt_at) - T0
    assert timedelta(seconds=1.6) <= first_wait <= timedelta(seconds=2.4)  # base 2 s ± 20 %
    assert later.attempts == 0

    assert run(sid, T0 + first_wait - timedelta(milliseconds=1)) == []  # not yet
    assert run(sid, T0 + first_wait) == ["retry"]
    head, _ = deliveries(session_factory, sid)
    assert head.attempts == 2
    second_wait = as_utc(head.next_attempt_at) - (T0 + first_wait)
    assert timedelta(seconds=3.2) <= second_wait <= timedelta(seconds=4.8)  # 2 · 2^1 ± 20 %

    assert run(sid, as_utc(head.next_attempt_at)) == ["delivered", "delivered"]
    assert [r.headers["webhook-id"] for r in receiver.requests] == [first, first, first, second]
    assert subscription(session_factory, sid).status is SubscriptionStatus.ACTIVE


def test_retry_after_is_a_minimum(
    session_factory: sessionmaker[Session], run: Run, receiver: Receiver, practice_sub: Subscriber
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0)
    receiver.answer(429, retry_after="120")

    assert run(sid) == ["retry"]

    (row,) = deliveries(session_factory, sid)
    assert as_utc(row.next_attempt_at) - T0 == timedelta(seconds=120)


def test_a_connection_refused_is_a_failed_attempt(
    session_factory: sessionmaker[Session], run: Run, practice_sub: Subscriber
) -> None:
    from tests.fixtures.server import free_port

    sid = add_subscription(session_factory, practice_sub, f"http://127.0.0.1:{free_port()}/x")
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0)

    assert run(sid) == ["retry"]

    (row,) = deliveries(session_factory, sid)
    assert (row.last_status, row.last_error) == (None, "connection failed")


def test_an_endpoint_the_guard_refuses_is_never_called(
    session_factory: sessionmaker[Session],
    settings: Settings,
    spis_keys: KeyStore,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0)
    strict = settings.model_copy(update={"delivery_allowed_hosts": ""})

    assert Run(session_factory, strict, spis_keys)(sid) == ["retry"]

    assert receiver.requests == []
    (row,) = deliveries(session_factory, sid)
    assert (row.attempts, row.last_error) == (1, "endpoint refused")


def test_past_the_retry_window_the_delivery_is_dead_and_the_subscription_in_error(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    dead = add_delivery(
        session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    waiting = add_delivery(
        session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    receiver.default = 503

    # Almost a day later: the next back-off would fall beyond the 24 h window.
    assert run(sid, T0 + timedelta(hours=23, minutes=59, seconds=59)) == ["dead-letter"]

    rows = {row.id: row for row in deliveries(session_factory, sid)}
    assert rows[dead].status is DeliveryStatus.DEAD
    assert rows[waiting].status is DeliveryStatus.PENDING
    sub = subscription(session_factory, sid)
    assert sub.status is SubscriptionStatus.ERROR
    assert sub.error == "delivery failed for 24 h: HTTP 503"
    # An errored subscription sends nothing more, not even what is waiting.
    assert run(sid, T0 + timedelta(days=2)) == []
    assert len(receiver.requests) == 1


def test_a_retried_dead_letter_gets_a_new_window_from_the_retry(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    old = add_delivery(
        session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    retried = T0 + timedelta(days=3)
    with session_factory() as session, session.begin():  # what `spis deliveries retry` leaves
        row = session.scalars(select(Delivery).where(Delivery.id == old)).one()
        row.retried_at = row.next_attempt_at = retried
    receiver.default = 503

    # Days after the event but just after the retry: a failure waits for the next attempt.
    assert run(sid, retried + timedelta(seconds=1)) == ["retry"]
    (row,) = deliveries(session_factory, sid)
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
    assert subscription(session_factory, sid).status is not SubscriptionStatus.ERROR


def test_410_turns_the_subscription_off_and_cancels_what_waits(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    for _ in range(3):
        add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT)
    receiver.answer(410)

    assert run(sid) == ["gone"]

    assert len(receiver.requests) == 1
    assert [row.status for row in deliveries(session_factory, sid)] == [
        DeliveryStatus.CANCELLED
    ] * 3
    assert subscription(session_factory, sid).status is SubscriptionStatus.OFF


# -- consent at delivery time --------------------------------------------------------------------


def test_a_focus_the_subscriber_can_no_longer_read_is_cancelled_and_audited(
    session_factory: sessionmaker[Session],
    settings: Settings,
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    timebank = register_subscriber(session_factory, OrgKind.TIMEBANK)
    task = store_resource(
        session_factory,
        settings,
        "Task",
        {"resourceType": "Task", "status": "requested", "intent": "order"},
        practice_sub.org_id,
        (timebank.org_id,),
    )
    sid = add_subscription(session_factory, timebank, receiver.url)
    hidden = add_delivery(
        session_factory, sid, timebank.org_id, event_number=1, focus=("Task", task)
    )
    after = add_delivery(session_factory, sid, timebank.org_id, DeliveryKind.HEARTBEAT)
    with session_factory() as session, session.begin():  # consent withdrawn: the grant goes
        store_repository.revoke(session, task, timebank.org_id)

    assert run(sid) == ["cancelled", "delivered"]

    assert [r.headers["webhook-id"] for r in receiver.requests] == [after]
    rows = {row.id: row for row in deliveries(session_factory, sid)}
    assert rows[hidden].status is DeliveryStatus.CANCELLED
    assert rows[hidden].attempts == 0
    cancelled, delivered = delivery_audits(session_factory)
    assert cancelled.outcome == 4
    assert cancelled.tenant_org_id == timebank.org_id
    assert cancelled.entities.split() == [f"Subscription/{sid}", f"Task/{task}"]
    assert "may no longer read the focus" in (cancelled.detail or "")
    assert delivered.outcome == 0


# -- one worker per head; the sweep --------------------------------------------------------------


def test_a_second_worker_does_not_send_the_head_another_holds(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sid = add_subscription(session_factory, practice_sub, receiver.url)
    head = add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT)
    add_delivery(session_factory, sid, practice_sub.org_id, DeliveryKind.HEARTBEAT)
    first_worker = session_factory()
    try:
        first_worker.execute(
            text("SELECT id FROM delivery WHERE id = :id FOR UPDATE"), {"id": head}
        )
        assert run(sid) == []
        assert receiver.requests == []
    finally:
        first_worker.rollback()
        first_worker.close()

    assert run(sid) == ["delivered", "delivered"]


def test_the_sweep_adds_a_heartbeat_when_due_and_names_it_for_sending(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
    spis_keys: KeyStore,
) -> None:
    due = add_subscription(
        session_factory, practice_sub, receiver.url, heartbeat_period_s=60, created_at=T0
    )
    quiet = add_subscription(session_factory, practice_sub, receiver.url, created_at=T0)
    sessions = lambda: unit_of_work(session_factory)  # noqa: E731

    early = sweep(sessions, T0 + timedelta(seconds=59))
    assert (early.heartbeats, early.due) == (0, [])

    swept = sweep(sessions, T0 + timedelta(seconds=60))
    assert (swept.heartbeats, swept.due) == (1, [due])
    assert sweep(sessions, T0 + timedelta(seconds=61)).heartbeats == 0  # one is pending
    assert deliveries(session_factory, quiet) == []

    assert run(due, T0 + timedelta(seconds=61)) == ["delivered"]
    params = status_parameters(
        opened_bundle(receiver.requests[0], practice_sub, spis_keys.public_jwks())
    )
    assert params["type"] == "heartbeat"
    assert sweep(sessions, T0 + timedelta(seconds=120)).heartbeats == 0  # 59 s since delivered
    assert sweep(sessions, T0 + timedelta(seconds=121)).heartbeats == 1


def test_the_sweep_names_only_subscriptions_whose_head_is_due(
    session_factory: sessionmaker[Session],
    run: Run,
    receiver: Receiver,
    practice_sub: Subscriber,
) -> None:
    sessions = lambda: unit_of_work(session_factory)  # noqa: E731
    backing_off = add_subscription(session_factory, practice_sub, receiver.url)
    add_delivery(
        session_factory, backing_off, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    add_delivery(
        session_factory, backing_off, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )
    receiver.answer(503)
    assert run(backing_off) == ["retry"]
    lost = add_subscription(session_factory, practice_sub, receiver.url)
    add_delivery(session_factory, lost, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0)
    waiting = add_subscription(
        session_factory, practice_sub, receiver.url, status=SubscriptionStatus.REQUESTED
    )
    add_delivery(
        session_factory, waiting, practice_sub.org_id, DeliveryKind.HEARTBEAT, occurred_at=T0
    )

    # The backing-off head is not due although the row behind it is; a requested subscription
    # with no handshake pending sends nothing.
    assert sweep(sessions, T0 + timedelta(seconds=1)).due == [lost]


def test_the_sweep_turns_off_subscriptions_past_their_end(
    session_factory: sessionmaker[Session], receiver: Receiver, practice_sub: Subscriber
) -> None:
    sessions = lambda: unit_of_work(session_factory)  # noqa: E731
    ending = add_subscription(
        session_factory, practice_sub, receiver.url, end=T0 + timedelta(hours=1)
    )
    add_delivery(session_factory, ending, practice_sub.org_id, DeliveryKind.HEARTBEAT)

    assert sweep(sessions, T0).ended == 0
    swept = sweep(sessions, T0 + timedelta(hours=1))

    assert (swept.ended, swept.due) == (1, [])
    assert subscription(session_factory, ending).status is SubscriptionStatus.OFF
    assert [row.status for row in deliveries(session_factory, ending)] == [DeliveryStatus.CANCELLED]
