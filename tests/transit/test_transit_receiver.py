"""The receiving end of a delivery: the `webhook-*` headers SPIS signs (outbound.webhook_headers)
checked by the reference receiver (transit/receiver.py), the notification inside read
(transit/notifications.py), and event numbers tracked per subscription."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import ECKey, OctKey

from referral_service.keys.jose import KeyStore, create_key_file
from referral_service.transit.notifications import (
    EventOutcome,
    EventTracker,
    NotANotification,
    Notification,
    parse_notification,
)
from referral_service.transit.outbound import seal, webhook_headers
from referral_service.transit.receive_server import Receiver, SpisKeys
from referral_service.transit.receiver import (
    RejectedMessage,
    UnknownSigningKey,
    VerifiedWebhook,
    open_sealed,
    verify_webhook,
)
from tests.fixtures.notifications import SUBSCRIPTION, TOPIC, focus_url, notification

NOW = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
SECRET_WORDS = "Ms Imogen Example"  # stands for patient data: never in an error


@pytest.fixture
def gp_key() -> ECKey:
    return ECKey.generate_key("P-384")


def public(key: ECKey) -> dict[str, Any]:
    return key.as_dict(private=False, kid="gp-enc", use="enc")


def delivery(
    keys: KeyStore, gp: ECKey, bundle: dict[str, Any] | None = None, *, at: datetime = NOW
) -> tuple[dict[str, str], bytes]:
    """Headers and body exactly as the sender makes them: sealed, then the headers signed."""
    body = seal(bundle or notification(), public(gp), keys).encode("ascii")
    return webhook_headers(str(uuid.uuid4()), body, keys, at), body


# -- the headers ----------------------------------------------------------------------------------


def test_a_delivery_signed_by_spis_verifies_and_opens(
    transit_keys: KeyStore, gp_key: ECKey
) -> None:
    headers, body = delivery(transit_keys, gp_key)
    jwks = transit_keys.public_jwks()

    verified = verify_webhook(headers, body, jwks, now=NOW + timedelta(seconds=2))
    opened = parse_notification(open_sealed(body, gp_key, jwks))

    kid = transit_keys.ring().signing_key().kid
    assert verified == VerifiedWebhook(headers["webhook-id"], int(NOW.timestamp()), kid)
    assert opened == Notification(
        subscription=SUBSCRIPTION,
        topic=TOPIC,
        type="event-notification",
        status="active",
        events_since_start=1,
        event_number=1,
        event_timestamp="2026-11-30T09:14:58.120Z",
        focus=focus_url(1),
    )


def test_the_signature_header_is_a_detached_es384_jws_by_the_current_key(
    transit_keys: KeyStore,
) -> None:
    headers = webhook_headers("8d0c3c52-8c1e-4a53-9d0f-3c8e2f1b7a65", b"{}", transit_keys, NOW)

    scheme, token = headers["webhook-signature"].split(",", 1)
    protected, payload, _ = token.split(".")
    assert scheme == "es384"
    assert payload == ""  # RFC 7515 appendix F
    assert json.loads(_b64json(protected)) == {
        "alg": "ES384",
        "kid": transit_keys.ring().signing_key().kid,
    }
    assert headers["webhook-id"] == "8d0c3c52-8c1e-4a53-9d0f-3c8e2f1b7a65"
    assert headers["webhook-timestamp"] == str(int(NOW.timestamp()))


def _b64json(segment: str) -> str:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode()


def test_header_names_are_matched_whatever_their_case(
    transit_keys: KeyStore, gp_key: ECKey
) -> None:
    headers, body = delivery(transit_keys, gp_key)
    shouted = {name.title(): value for name, value in headers.items()}

    assert (
        verify_webhook(shouted, body, transit_keys.public_jwks(), now=NOW).id
        == headers["webhook-id"]
    )


@pytest.mark.parametrize("position", [0, 40, -1])
def test_a_body_changed_by_one_byte_is_rejected_without_quoting_it(
    transit_keys: KeyStore, position: int
) -> None:
    body = json.dumps({"resourceType": "Bundle", "note": SECRET_WORDS}).encode()
    headers = webhook_headers(str(uuid.uuid4()), body, transit_keys, NOW)
    changed = bytearray(body)
    changed[position] ^= 0x01

    with pytest.raises(RejectedMessage, match="does not verify") as refused:
        verify_webhook(headers, bytes(changed), transit_keys.public_jwks(), now=NOW)
    assert SECRET_WORDS not in str(refused.value)
    assert headers["webhook-id"] not in str(refused.value)


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp"])
def test_changing_a_signed_header_breaks_the_signature(
    transit_keys: KeyStore, gp_key: ECKey, header: str
) -> None:
    headers, body = delivery(transit_keys, gp_key)
    altered = {
        "webhook-id": str(uuid.uuid4()),
        "webhook-timestamp": str(int(NOW.timestamp()) + 1),
    }[header]

    with pytest.raises(RejectedMessage, match="does not verify"):
        verify_webhook({**headers, header: altered}, body, transit_keys.public_jwks(), now=NOW)


@pytest.mark.parametrize(
    ("sent", "verified"),
    [
        (NOW - timedelta(seconds=301), NOW),  # a replay of an old delivery
        (NOW + timedelta(seconds=301), NOW),  # from the future: a clock too far off
    ],
)
def test_a_timestamp_more_than_five_minutes_away_is_rejected(
    transit_keys: KeyStore, gp_key: ECKey, sent: datetime, verified: datetime
) -> None:
    headers, body = delivery(transit_keys, gp_key, at=sent)

    with pytest.raises(RejectedMessage, match="more than 300 s away from now"):
        verify_webhook(headers, body, transit_keys.public_jwks(), now=verified)


def test_a_timestamp_five_minutes_old_is_still_taken(transit_keys: KeyStore, gp_key: ECKey) -> None:
    headers, body = delivery(transit_keys, gp_key, at=NOW - timedelta(seconds=300))

    assert verify_webhook(headers, body, transit_keys.public_jwks(), now=NOW)


def test_a_signature_by_a_key_spis_does_not_publish_is_rejected(
    transit_keys: KeyStore, gp_key: ECKey, tmp_path: Path
) -> None:
    impostor = KeyStore(tmp_path / "impostor", generate=True)
    headers, body = delivery(impostor, gp_key)

    with pytest.raises(UnknownSigningKey, match="not signed by a key SPIS publishes"):
        verify_webhook(headers, body, transit_keys.public_jwks(), now=NOW)


def test_a_forged_signature_under_spis_kid_is_rejected(transit_keys: KeyStore) -> None:
    webhook_id, stamp, body = str(uuid.uuid4()), str(int(NOW.timestamp())), b"{}"
    kid = transit_keys.ring().signing_key().kid
    forged = _detached(
        {"alg": "ES384", "kid": kid}, webhook_id, stamp, body, ECKey.generate_key("P-384")
    )

    with pytest.raises(RejectedMessage, match="does not verify"):
        verify_webhook(
            _headers(webhook_id, stamp, forged), body, transit_keys.public_jwks(), now=NOW
        )


@pytest.mark.parametrize(
    ("alg", "key"),
    [
        ("ES256", ECKey.generate_key("P-256")),
        ("HS256", OctKey.generate_key(256)),
    ],
)
def test_an_algorithm_other_than_es384_is_rejected(
    transit_keys: KeyStore, alg: str, key: ECKey | OctKey
) -> None:
    webhook_id, stamp, body = str(uuid.uuid4()), str(int(NOW.timestamp())), b"{}"
    kid = transit_keys.ring().signing_key().kid
    token = _detached({"alg": alg, "kid": kid}, webhook_id, stamp, body, key)

    with pytest.raises(RejectedMessage, match="must be signed with ES384"):
        verify_webhook(
            _headers(webhook_id, stamp, token), body, transit_keys.public_jwks(), now=NOW
        )


def test_a_signature_carrying_its_own_payload_is_rejected(transit_keys: KeyStore) -> None:
    """A JWS with a payload would verify against that payload, not against the request."""
    webhook_id, stamp = str(uuid.uuid4()), str(int(NOW.timestamp()))
    signer = transit_keys.ring().signing_key()
    signed = f"{webhook_id}.{stamp}.".encode() + b"{}"
    attached = jws.serialize_compact(
        {"alg": "ES384", "kid": signer.kid}, signed, signer.key, algorithms=["ES384"]
    )

    with pytest.raises(RejectedMessage, match="not a detached compact JWS"):
        verify_webhook(
            _headers(webhook_id, stamp, attached), b"{}", transit_keys.public_jwks(), now=NOW
        )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("webhook-id", "webhook-id header is missing"),
        ("webhook-timestamp", "webhook-timestamp header is missing"),
        ("webhook-signature", "webhook-signature header is missing"),
    ],
)
def test_a_missing_header_is_rejected(
    transit_keys: KeyStore, gp_key: ECKey, header: str, reason: str
) -> None:
    headers, body = delivery(transit_keys, gp_key)
    del headers[header]

    with pytest.raises(RejectedMessage, match=reason):
        verify_webhook(headers, body, transit_keys.public_jwks(), now=NOW)


@pytest.mark.parametrize(
    ("header", "value", "reason"),
    [
        ("webhook-id", "not-a-uuid", "not a UUID"),
        ("webhook-timestamp", "2026-11-30T09:15:00Z", "not unix seconds"),
        ("webhook-signature", "v1,c2lnbmF0dXJl", "no es384 signature"),
    ],
)
def test_a_malformed_header_is_rejected(
    transit_keys: KeyStore, gp_key: ECKey, header: str, value: str, reason: str
) -> None:
    headers, body = delivery(transit_keys, gp_key)

    with pytest.raises(RejectedMessage, match=reason):
        verify_webhook({**headers, header: value}, body, transit_keys.public_jwks(), now=NOW)


def test_any_es384_entry_of_a_signature_list_may_verify(
    transit_keys: KeyStore, gp_key: ECKey, tmp_path: Path
) -> None:
    """Standard Webhooks lists signatures space-separated: during a key rotation, one is enough."""
    headers, body = delivery(transit_keys, gp_key)
    other = webhook_headers(
        headers["webhook-id"], body, KeyStore(tmp_path / "old", generate=True), NOW
    )
    listed = f"v1,c2lnbmF0dXJl {other['webhook-signature']} {headers['webhook-signature']}"

    verified = verify_webhook(
        {**headers, "webhook-signature": listed}, body, transit_keys.public_jwks(), now=NOW
    )

    assert verified.kid == transit_keys.ring().signing_key().kid


def _detached(header: dict[str, str], webhook_id: str, stamp: str, body: bytes, key: Any) -> str:
    signed = f"{webhook_id}.{stamp}.".encode() + body
    token = jws.serialize_compact(header, signed, key, algorithms=[header["alg"]])
    return jws.detach_content(token)


def _headers(webhook_id: str, stamp: str, token: str) -> dict[str, str]:
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": stamp,
        "webhook-signature": f"es384,{token}",
    }


# -- the notification -----------------------------------------------------------------------------


def test_a_full_resource_notification_carries_the_focus() -> None:
    task = {"resourceType": "Task", "id": "task-3", "status": "accepted"}

    parsed = parse_notification(json.dumps(notification(number=3, focus_resource=task)).encode())

    assert (parsed.event_number, parsed.focus, parsed.focus_resource) == (3, focus_url(3), task)


def test_an_empty_payload_says_only_which_event() -> None:
    parsed = parse_notification(json.dumps(notification(number=4, payload="empty")).encode())

    assert (parsed.topic, parsed.event_number, parsed.focus, parsed.focus_resource) == (
        None,
        4,
        None,
        None,
    )


@pytest.mark.parametrize(
    "count", [{"valueString": "0"}, {"valueUnsignedInt": 0}, {"valueInteger64": "0"}]
)
def test_a_handshake_counts_events_in_any_of_the_types_met(count: dict[str, Any]) -> None:
    parsed = parse_notification(json.dumps(notification("handshake", count=count)).encode())

    assert (parsed.type, parsed.events_since_start, parsed.event_number) == ("handshake", 0, None)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda b: b.update(type="searchset"), "not of type history"),
        (lambda b: b["entry"].pop(0), "first entry is not a Parameters"),
        (lambda b: b["entry"][0]["resource"]["parameter"].pop(0), "'subscription'"),
        (lambda b: b["entry"][0]["resource"]["parameter"].pop(), "one notification-event"),
        (
            lambda b: b["entry"][0]["resource"]["parameter"][4].update(valueString=SECRET_WORDS),
            "not a whole number",
        ),
    ],
)
def test_a_bundle_that_is_not_a_notification_is_refused_without_quoting_it(
    change: Any, reason: str
) -> None:
    bundle = notification()
    change(bundle)

    with pytest.raises(NotANotification, match=reason) as refused:
        parse_notification(json.dumps(bundle).encode())
    assert SECRET_WORDS not in str(refused.value)


# -- event numbers --------------------------------------------------------------------------------


def seen(tracker: EventTracker, kind: str, number: int, **more: Any) -> tuple[Any, ...]:
    check = tracker.check(
        parse_notification(json.dumps(notification(kind, number, **more)).encode())
    )
    return (check.outcome, check.number, check.missing)


def test_event_numbers_are_new_duplicate_or_after_a_gap() -> None:
    tracker = EventTracker()
    new, duplicate, gap = EventOutcome.NEW, EventOutcome.DUPLICATE, EventOutcome.GAP

    assert seen(tracker, "handshake", 0) == (new, 0, None)
    assert seen(tracker, "event-notification", 1) == (new, 1, None)
    assert seen(tracker, "event-notification", 2) == (new, 2, None)
    assert seen(tracker, "event-notification", 2) == (duplicate, 2, None)  # a retry: ignore it
    assert seen(tracker, "event-notification", 5) == (gap, 5, (3, 4))
    assert seen(tracker, "event-notification", 3) == (new, 3, None)  # late, e.g. retried by hand
    assert seen(tracker, "event-notification", 3) == (duplicate, 3, None)
    assert seen(tracker, "heartbeat", 5) == (new, 5, None)
    assert seen(tracker, "heartbeat", 7) == (gap, 7, (6, 7))  # two events never arrived
    assert tracker.last_seen(SUBSCRIPTION) == 7


def test_each_subscription_counts_on_its_own() -> None:
    tracker = EventTracker({SUBSCRIPTION: 4})  # as a receiver's database would seed it

    assert seen(tracker, "event-notification", 5)[0] is EventOutcome.NEW
    assert seen(tracker, "event-notification", 1, subscription="Subscription/other")[0] is (
        EventOutcome.NEW
    )
    assert seen(tracker, "event-notification", 3, subscription="Subscription/other")[2] == (2, 2)
    assert tracker.last_seen(SUBSCRIPTION) == 5


# -- spis receive's keys --------------------------------------------------------------------------


def test_spis_receive_reads_spis_keys_again_for_a_kid_it_does_not_know(
    tmp_path: Path, gp_key: ECKey
) -> None:
    """SPIS rotated its signing key: the receiver fetches the JWKS again, at most every 10 s."""
    spis_dir, published = tmp_path / "spis", tmp_path / "spis.jwks.json"
    published.write_text(json.dumps(KeyStore(spis_dir, generate=True).public_jwks()))
    clock, lines = [100.0], list[str]()
    receiver = Receiver(
        SpisKeys(str(published), clock=lambda: clock[0]), [gp_key], say=lines.append
    )
    create_key_file(spis_dir, "ES384")
    rotated = KeyStore(spis_dir, generate=True)
    published.write_text(json.dumps(rotated.public_jwks()))
    headers, body = delivery(rotated, gp_key)
    headers["Content-Type"] = "application/jose"

    too_soon = receiver.handle(headers, body, NOW)
    clock[0] += 10.5
    taken = receiver.handle(headers, body, NOW)

    assert (too_soon.status, taken.status) == (400, 200)
    assert lines == [
        "rejected: The message was not signed by a key SPIS publishes",
        f"event #1 {TOPIC} {focus_url(1)}",
    ]
