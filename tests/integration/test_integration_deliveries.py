"""Deliveries end to end, the way partners run them: a practice subscribes over /fhir, its
referrals move, a real worker (with beat) sends, and `spis receive` (a separate process, the
receiver integrators copy) verifies, decrypts and writes what it took. Also when the receiver
was down for a while, and when the broker (a Redis of this test's own) was down at the moment of
the event: every notification arrives, once the party is back, in event-number order."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.deliveries.models import Delivery, DeliveryKind, DeliveryStatus
from referral_service.keys import ring as key_ring
from referral_service.keys.jose import KeyStore, keys_dir
from tests.conftest import TEST_KEK
from tests.deliveries.sending_support import Subscriber, register_subscriber
from tests.fixtures.referrals import make_referral
from tests.fixtures.subscription_body import subscription_body
from tests.fixtures.systems import bearer
from tests.integration.conftest import BROKER_URL, PrivateRedis, Worker, free_port, wait_for

pytestmark = pytest.mark.slow

# Quick retries and sweeps, so that "later" is seconds here; the schedule itself is unit-tested.
WORKER_ENV = {
    "SPIS_DELIVERY_ALLOWED_HOSTS": "127.0.0.1",
    "SPIS_DELIVERY_SWEEP_INTERVAL_S": "1",
    "SPIS_DELIVERY_BACKOFF_BASE_S": "0.5",
    "SPIS_DELIVERY_BACKOFF_MAX_S": "2",
}


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
        relay_after_s=2,
        relay_interval_s=1,
        delivery_allowed_hosts="127.0.0.1",
    )


@pytest.fixture(autouse=True)
def _fresh_data_keys(session_factory: sessionmaker[Session], pg_engine: Engine) -> None:
    """This process caches unwrapped data keys by id, and every test empties the tables: forget
    them, or the API would seal with a key the worker cannot find."""
    key_ring.register(pg_engine, TEST_KEK)


class ReceiverProcess:
    """`spis receive` as a child process on a fixed port: stop() and start() again is a receiver
    that went down and came back. Everything it took is in `out`, one Bundle per line."""

    def __init__(self, tmp_path: Path, subscriber: Subscriber, spis_jwks: dict[str, Any]) -> None:
        self.port = free_port()
        self.out = tmp_path / "received.jsonl"
        self.log = tmp_path / "receiver.log"
        self.key = tmp_path / "receiver.private.jwk"
        self.key.write_text(json.dumps(subscriber.enc_key.as_dict(private=True)))
        self.jwks = tmp_path / "spis.jwks.json"
        self.jwks.write_text(json.dumps(spis_jwks))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/spis/notify"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "referral_service.cli",
            "receive",
            "--port",
            str(self.port),
            "--key",
            str(self.key),
            "--spis-jwks",
            str(self.jwks),
            "--out",
            str(self.out),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._listening, timeout=30, what="spis receive to listen")

    def _listening(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def bundles(self) -> list[dict[str, Any]]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def taken(self) -> list[tuple[str, str | None]]:
        """(type, event number) of each notification taken, in arrival order."""
        return [_summary(bundle) for bundle in self.bundles()]


def _summary(bundle: dict[str, Any]) -> tuple[str, str | None]:
    status = bundle["entry"][0]["resource"]["parameter"]
    kind = next(p["valueCode"] for p in status if p["name"] == "type")
    events = [p for p in status if p["name"] == "notification-event"]
    number = None
    if events:
        number = next(part for part in events[0]["part"] if part["name"] == "event-number")
        number = str(next(v for k, v in number.items() if k.startswith("value")))
    return kind, number


@pytest.fixture
def subscriber(session_factory: sessionmaker[Session]) -> Subscriber:
    return register_subscriber(session_factory)


@pytest.fixture
def receiver(
    tmp_path: Path, subscriber: Subscriber, settings: Settings
) -> Iterator[ReceiverProcess]:
    # SPIS's signing keys, made here first; the API and the worker read the same folder.
    spis_jwks = KeyStore(keys_dir(settings), generate=True).public_jwks()
    process = ReceiverProcess(tmp_path, subscriber, spis_jwks)
    process.start()
    yield process
    process.stop()


def subscribe(api: TestClient, headers: dict[str, str], endpoint: str) -> str:
    body = subscription_body(endpoint, payload="application/jose")
    response = api.post(
        "/fhir/Subscription",
        json=body,
        headers={**headers, "Content-Type": "application/fhir+json"},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def event_rows(session_factory: sessionmaker[Session], sid: str) -> list[Delivery]:
    with session_factory() as session:
        stmt = select(Delivery).where(
            Delivery.subscription_id == sid, Delivery.kind == DeliveryKind.EVENT
        )
        return list(session.scalars(stmt.order_by(Delivery.seq)))


def numbers_in_order(taken: list[tuple[str, str | None]]) -> list[int]:
    return [int(number) for kind, number in taken if kind == "event-notification" and number]


def test_a_receiver_down_for_a_while_gets_every_notification_in_order_once_back(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    subscriber: Subscriber,
    receiver: ReceiverProcess,
) -> None:
    headers = bearer(client, subscriber.system)
    worker = Worker(settings, beat=True, **WORKER_ENV)
    try:
        worker.start()
        sid = subscribe(client, headers, receiver.url)
        wait_for(lambda: receiver.taken() == [("handshake", None)], what="the handshake")

        receiver.stop()
        for n in range(3):  # each referral: created (requested), then rejected (no time bank)
            make_referral(client, headers, subscriber.org_id, referral_id=f"R-{n}")
        wait_for(
            lambda: (
                len(event_rows(session_factory, sid)) == 6
                and event_rows(session_factory, sid)[0].attempts >= 2
            ),
            timeout=60,
            what="the first event to fail twice while the receiver is down",
        )
        assert receiver.taken() == [("handshake", None)]

        receiver.start()
        wait_for(
            lambda: len(numbers_in_order(receiver.taken())) >= 6,
            timeout=60,
            what="every event after the receiver came back",
        )
    finally:
        worker.stop()

    assert numbers_in_order(receiver.taken()) == [1, 2, 3, 4, 5, 6]
    rows = event_rows(session_factory, sid)
    assert [row.event_number for row in rows] == [1, 2, 3, 4, 5, 6]
    assert {row.status for row in rows} == {DeliveryStatus.DELIVERED}


def test_an_event_while_the_broker_is_down_is_delivered_once_it_is_back(
    session_factory: sessionmaker[Session],
    settings: Settings,
    subscriber: Subscriber,
    receiver: ReceiverProcess,
    private_redis: PrivateRedis,
) -> None:
    on_private = settings.model_copy(update={"broker_url": private_redis.url})
    worker = Worker(on_private, beat=True, **WORKER_ENV)
    try:
        worker.start()
        with TestClient(create_app(on_private)) as api:
            headers = bearer(api, subscriber.system)
            sid = subscribe(api, headers, receiver.url)
            wait_for(lambda: receiver.taken() == [("handshake", None)], what="the handshake")

            private_redis.stop()
            started = time.monotonic()
            # Accepted although the broker is down: the event is a row, its message waits.
            make_referral(api, headers, subscriber.org_id)
            [row] = event_rows(session_factory, sid)
            assert (row.event_number, row.status) == (1, DeliveryStatus.PENDING)
        time.sleep(max(0.0, 3 - (time.monotonic() - started)))
        assert numbers_in_order(receiver.taken()) == []

        private_redis.start()
        wait_for(
            lambda: len(numbers_in_order(receiver.taken())) >= 2,
            timeout=90,
            what="the events once the broker is back (created, then rejected by routing)",
        )
    finally:
        worker.stop()

    assert numbers_in_order(receiver.taken()) == [1, 2]
    assert {row.status for row in event_rows(session_factory, sid)} == {DeliveryStatus.DELIVERED}
