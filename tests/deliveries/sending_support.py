"""What the sending tests share: a real HTTP receiver on 127.0.0.1, subscriber systems with an
encryption key, subscription and delivery rows written straight to the database (the
Subscription API and event matching are not what these tests are about), and the checks a
receiver makes on what arrives (open the JWE, verify the detached signature)."""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jws
from joserfc.jwk import ECKey
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.codes import SDOH_TASK_TOPIC
from referral_service.auth.models import Client
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Payload,
    Subscription,
    SubscriptionStatus,
)
from referral_service.kit.clock import utcnow
from referral_service.kit.ids import new_id
from referral_service.organisations.models import OrgKind
from referral_service.transit.receiver import open_sealed, verify_webhook
from tests.fixtures.systems import TestSystem, register_system

JOSE = "application/jose"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted (status, headers), then `default`."""

    url: str
    requests: list[Received] = field(default_factory=list)
    script: deque[tuple[int, dict[str, str]]] = field(default_factory=deque)
    default: int = 200
    # When given, each request is recorded, then answered only once the event is set (a hung
    # receiver).
    gate: threading.Event | None = None

    def answer(self, *statuses: int, **headers: str) -> None:
        for status in statuses:
            self.script.append((status, {k.replace("_", "-"): v for k, v in headers.items()}))

    def next_answer(self) -> tuple[int, dict[str, str]]:
        return self.script.popleft() if self.script else (self.default, {})


def serve_receiver() -> Iterator[Receiver]:
    """A receiver on a free port for as long as the generator is open."""
    receiver = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            receiver.requests.append(Received(self.path, headers, body))
            if receiver.gate is not None:
                receiver.gate.wait(60)
            status, extra = receiver.next_answer()
            self.send_response(status)
            for name, value in extra.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/notify"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Subscriber:
    system: TestSystem
    enc_key: ECKey

    @property
    def org_id(self) -> str:
        return self.system.org_id


def register_subscriber(
    session_factory: sessionmaker[Session], kind: OrgKind = OrgKind.PRACTICE
) -> Subscriber:
    """A registered system whose JWKS also holds an encryption key."""
    ods = f"F{secrets.randbelow(10**5):05d}" if kind is OrgKind.PRACTICE else None
    system = register_system(session_factory, kind, name=f"Subscriber {kind.value}", ods=ods)
    key = ECKey.generate_key("P-384")
    jwk = key.as_dict(private=False, kid=f"{system.kid}-enc", use="enc", alg="ECDH-ES+A256KW")
    with session_factory() as session, session.begin():
        client = session.get(Client, system.client_id)
        assert client is not None
        assert client.jwks is not None
        document = json.loads(client.jwks)
        document["keys"].append(jwk)
        client.jwks = json.dumps(document)
    return Subscriber(system, key)


def add_subscription(
    session_factory: sessionmaker[Session],
    subscriber: Subscriber,
    endpoint: str,
    *,
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE,
    payload: Payload = Payload.ID_ONLY,
    content_type: str = JOSE,
    heartbeat_period_s: int | None = None,
    end: datetime | None = None,
    created_at: datetime | None = None,
    events_since_start: int = 0,
) -> str:
    sub = Subscription(
        id=new_id(),
        org_id=subscriber.org_id,
        client_id=subscriber.system.client_id,
        status=status,
        topic=SDOH_TASK_TOPIC,
        filters="[]",
        payload=payload,
        content_type=content_type,
        endpoint=endpoint,
        reason="tests",
        heartbeat_period_s=heartbeat_period_s,
        end=end,
        events_since_start=events_since_start,
        created_at=created_at or utcnow(),
    )
    with session_factory() as session, session.begin():
        session.add(sub)
    return sub.id


def add_delivery(
    session_factory: sessionmaker[Session],
    subscription_id: str,
    org_id: str,
    kind: DeliveryKind = DeliveryKind.EVENT,
    *,
    event_number: int | None = None,
    focus: tuple[str, str] | None = None,
    occurred_at: datetime | None = None,
    status: DeliveryStatus = DeliveryStatus.PENDING,
) -> str:
    when = occurred_at or utcnow()
    delivery = Delivery(
        id=new_id(),
        subscription_id=subscription_id,
        org_id=org_id,
        kind=kind,
        event_number=event_number,
        focus_type=focus[0] if focus else None,
        focus_id=focus[1] if focus else None,
        occurred_at=when,
        status=status,
        attempts=0,
        next_attempt_at=when,
    )
    with session_factory() as session, session.begin():
        session.add(delivery)
    return delivery.id


def deliveries(session_factory: sessionmaker[Session], subscription_id: str) -> list[Delivery]:
    with session_factory() as session:
        stmt = select(Delivery).where(Delivery.subscription_id == subscription_id)
        return list(session.scalars(stmt.order_by(Delivery.seq)))


def subscription(session_factory: sessionmaker[Session], subscription_id: str) -> Subscription:
    with session_factory() as session:
        found = session.get(Subscription, subscription_id)
        assert found is not None
        return found


def opened_bundle(
    received: Received, subscriber: Subscriber, spis_jwks: dict[str, Any]
) -> dict[str, Any]:
    """What a receiver does, with the reference receiver (transit/receiver.py): verify the
    webhook headers (at the attempt's own time: the tests' clock is fixed), then open the body."""
    sent_at = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), UTC)
    verified = verify_webhook(received.headers, received.body, spis_jwks, now=sent_at)
    assert verified.id == received.headers["webhook-id"]
    bundle: dict[str, Any] = json.loads(open_sealed(received.body, subscriber.enc_key, spis_jwks))
    return bundle


def verify_signature(received: Received, spis_jwks: dict[str, Any]) -> dict[str, Any]:
    """The detached ES384 JWS over `<webhook-id>.<webhook-timestamp>.<body>`; its header."""
    scheme, _, detached = received.headers["webhook-signature"].partition(",")
    assert scheme == "es384"
    protected, payload_segment, _ = detached.split(".")
    assert payload_segment == ""  # RFC 7515 appendix F: detached content
    header: dict[str, Any] = json.loads(base64.urlsafe_b64decode(protected + "=" * 3))
    keys = [k for k in spis_jwks["keys"] if k["kid"] == header["kid"] and k["use"] == "sig"]
    assert len(keys) == 1
    signed = (
        f"{received.headers['webhook-id']}.{received.headers['webhook-timestamp']}.".encode()
        + received.body
    )
    jws.deserialize_compact(
        detached, ECKey.import_key(keys[0]), algorithms=["ES384"], payload=signed
    )
    return header


def status_parameters(bundle: dict[str, Any]) -> dict[str, Any]:
    """The Parameters entry's values by name; `notification-event` as a dict of its parts."""
    found: dict[str, Any] = {}
    for parameter in bundle["entry"][0]["resource"]["parameter"]:
        if "part" in parameter:
            found[parameter["name"]] = {part["name"]: _value(part) for part in parameter["part"]}
        else:
            found[parameter["name"]] = _value(parameter)
    return found


def _value(parameter: dict[str, Any]) -> Any:
    return next(v for k, v in parameter.items() if k.startswith("value"))
