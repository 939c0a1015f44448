"""Subscriptions over /fhir (issue 11): a practice or a time bank creates, reads, searches, turns
off and deletes its own subscriptions, each create writing a handshake delivery; every refusal is
a 422 OperationOutcome that stores nothing; another organisation sees nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import ECKey
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.codes import (
    BACKPORT_HEARTBEAT_PERIOD,
    BACKPORT_TOPIC_CANONICAL,
    ROUTED_TOPIC,
    SDOH_TASK_TOPIC,
)
from referral_service.audit.models import AuditEvent
from referral_service.auth.service import register_client
from referral_service.config import Settings
from referral_service.deliveries.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscription,
    SubscriptionStatus,
)
from referral_service.deliveries.topics import TOPICS
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from tests.conftest import TEST_KEK
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.subscription_body import subscription_body
from tests.fixtures.systems import TestSystem, bearer, new_key, public_jwks

ENDPOINT = "http://127.0.0.1:9/spis-hook"


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    """The test settings, with local receivers allowed (they resolve to loopback)."""
    return Settings(
        environment="test",
        database_url=pg_url,
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
        delivery_allowed_hosts="127.0.0.1",
    )


def subscription(
    topic: str = SDOH_TASK_TOPIC,
    filters: tuple[str, ...] = (),
    payload: str | None = "application/fhir+json",
    content: str = "id-only",
    **channel: Any,
) -> dict[str, Any]:
    endpoint = channel.pop("endpoint", ENDPOINT)
    return subscription_body(endpoint, topic, filters, payload, content, **channel)


def create(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/fhir/Subscription", json=body, headers={**headers, **FHIR_JSON})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def rows(session_factory: sessionmaker[Session], model: type[Any]) -> list[Any]:
    with session_factory() as session:
        return list(session.scalars(select(model)))


def with_encryption_key(session_factory: sessionmaker[Session]) -> TestSystem:
    key = new_key("ES384")
    jwks = public_jwks(key, "sig-1", "ES384")
    enc = ECKey.generate_key("P-384").as_dict(private=False, kid="enc-1", use="enc")
    jwks["keys"].append(enc)
    with session_factory() as session, session.begin():
        org = register(session, OrgKind.PRACTICE, "Practice with a key", "F84077")
        made = register_client(session, org.id, jwks, None)
        return TestSystem(
            org.id, made.id, OrgKind.PRACTICE, org.ods_code, key, "sig-1", "ES384", made.scopes
        )


# --- create, read, search, update, delete ---------------------------------------------------------


def test_create_stores_it_requested_with_a_handshake_and_shows_it_back(
    client: TestClient,
    practice: TestSystem,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    owner = f"Task?requester=Organization/{practice.org_id}"
    heartbeat = {"extension": [{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 3600}]}
    body = subscription(filters=(owner, "Task?status=completed"), **heartbeat)

    response = client.post(
        "/fhir/Subscription", json=body, headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 201, response.text
    shown = response.json()
    sid = shown["id"]
    assert response.headers["location"] == f"http://testserver/fhir/Subscription/{sid}"
    assert response.headers["etag"] == 'W/"1"'
    assert shown["status"] == "requested"
    assert shown["meta"]["versionId"] == "1"
    assert shown["criteria"] == SDOH_TASK_TOPIC
    filters = [e["valueString"] for e in shown["_criteria"]["extension"]]
    assert filters == [owner, "Task?status=completed"]
    assert shown["channel"]["endpoint"] == ENDPOINT
    assert shown["channel"]["payload"] == "application/fhir+json"
    assert shown["channel"]["_payload"]["extension"][0]["valueCode"] == "id-only"
    assert shown["channel"]["extension"] == heartbeat["extension"]
    assert "error" not in shown
    [row] = rows(session_factory, Subscription)
    assert (row.id, row.org_id, row.client_id) == (sid, practice.org_id, practice.client_id)
    assert row.status is SubscriptionStatus.REQUESTED
    assert row.heartbeat_period_s == 3600
    [handshake] = rows(session_factory, Delivery)
    assert (handshake.subscription_id, handshake.org_id) == (sid, practice.org_id)
    assert handshake.kind is DeliveryKind.HANDSHAKE
    assert handshake.status is DeliveryStatus.PENDING
    assert client.get(f"/fhir/Subscription/{sid}", headers=practice_headers).json() == shown


def test_a_missing_status_is_requested_and_a_time_bank_may_subscribe_to_its_inbox(
    client: TestClient, timebank: TestSystem, timebank_headers: dict[str, str]
) -> None:
    body = subscription(ROUTED_TOPIC, (f"Task?owner=Organization/{timebank.org_id}",))
    del body["status"]

    assert create(client, timebank_headers, body)["status"] == "requested"


def test_plain_json_only_when_asked_and_jose_needs_an_encryption_key(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    keyed = with_encryption_key(session_factory)
    headers = bearer(client, keyed)

    by_default = create(client, headers, subscription(payload=None))
    explicit = create(client, headers, subscription(payload="application/jose", content="empty"))

    assert by_default["channel"]["payload"] == "application/jose"
    assert explicit["channel"]["_payload"]["extension"][0]["valueCode"] == "empty"


def test_search_finds_own_subscriptions_by_id_status_and_topic(
    client: TestClient, practice_headers: dict[str, str]
) -> None:
    first = create(client, practice_headers, subscription())
    second = create(client, practice_headers, subscription(filters=("Task?status=failed",)))

    def ids(query: str) -> list[str]:
        bundle = client.get(f"/fhir/Subscription{query}", headers=practice_headers).json()
        assert bundle["type"] == "searchset"
        return [e["resource"]["id"] for e in bundle["entry"]]

    assert ids("") == [first["id"], second["id"]]
    assert ids(f"?_id={second['id']}") == [second["id"]]
    assert ids("?status=requested") == [first["id"], second["id"]]
    assert ids("?status=off,active") == []
    assert ids(f"?criteria={SDOH_TASK_TOPIC}") == [first["id"], second["id"]]
    assert ids(f"?criteria={ROUTED_TOPIC}") == []


def test_off_cancels_pending_deliveries_and_requested_again_sends_a_new_handshake(
    client: TestClient, practice_headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    created = create(client, practice_headers, subscription())
    url = f"/fhir/Subscription/{created['id']}"
    headers = {**practice_headers, **FHIR_JSON}

    off = client.put(
        url, json={**created, "status": "off"}, headers={**headers, "If-Match": 'W/"1"'}
    )

    assert off.status_code == 200, off.text
    assert (off.json()["status"], off.json()["meta"]["versionId"]) == ("off", "2")
    assert off.headers["etag"] == 'W/"2"'
    assert [d.status for d in rows(session_factory, Delivery)] == [DeliveryStatus.CANCELLED]

    stale = client.put(
        url, json={**created, "status": "requested"}, headers={**headers, "If-Match": 'W/"1"'}
    )
    assert stale.status_code == 412
    assert stale.json()["resourceType"] == "OperationOutcome"

    again = client.put(url, json={**created, "status": "requested"}, headers=headers)
    assert again.json()["status"] == "requested"
    assert [
        (d.kind, d.status) for d in sorted(rows(session_factory, Delivery), key=lambda d: d.seq)
    ] == [
        (DeliveryKind.HANDSHAKE, DeliveryStatus.CANCELLED),
        (DeliveryKind.HANDSHAKE, DeliveryStatus.PENDING),
    ]


def test_a_subscriber_may_change_its_endpoint_but_not_make_it_active(
    client: TestClient, practice_headers: dict[str, str]
) -> None:
    created = create(client, practice_headers, subscription())
    url = f"/fhir/Subscription/{created['id']}"
    headers = {**practice_headers, **FHIR_JSON}
    moved = {**created, "channel": {**created["channel"], "endpoint": "http://127.0.0.1:10/new"}}

    assert (
        client.put(url, json=moved, headers=headers).json()["channel"]["endpoint"].endswith("/new")
    )
    refused = client.put(url, json={**created, "status": "active"}, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["issue"][0]["expression"] == ["Subscription.status"]
    wrong_id = client.put(url, json={**created, "id": "other"}, headers=headers)
    assert wrong_id.status_code == 400


def test_delete_removes_it_and_its_deliveries(
    client: TestClient, practice_headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    created = create(client, practice_headers, subscription())
    url = f"/fhir/Subscription/{created['id']}"

    response = client.delete(url, headers=practice_headers)

    assert response.status_code == 204
    assert rows(session_factory, Subscription) == []
    assert rows(session_factory, Delivery) == []
    assert client.get(url, headers=practice_headers).status_code == 404
    assert client.delete(url, headers=practice_headers).status_code == 404


def test_every_change_is_audited_with_the_subscription(
    client: TestClient, practice_headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    created = create(client, practice_headers, subscription())
    url = f"/fhir/Subscription/{created['id']}"
    client.get(url, headers=practice_headers)
    client.put(url, json={**created, "status": "off"}, headers={**practice_headers, **FHIR_JSON})
    client.delete(url, headers=practice_headers)

    with session_factory() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).all()
        about = [
            (e.kind, e.action) for e in events if f"Subscription/{created['id']}" in e.entities
        ]
    assert about == [("create", "C"), ("read", "R"), ("update", "U"), ("delete", "D")]


# --- who may --------------------------------------------------------------------------------------


def test_another_practice_sees_none_of_it(
    client: TestClient,
    practice_headers: dict[str, str],
    practice_b_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    created = create(client, practice_headers, subscription())
    url = f"/fhir/Subscription/{created['id']}"
    other = {**practice_b_headers, **FHIR_JSON}

    for response in (
        client.get(url, headers=other),
        client.get(f"{url}/$status", headers=other),
        client.put(url, json={**created, "status": "off"}, headers=other),
        client.delete(url, headers=other),
    ):
        assert response.status_code == 404
        assert response.json()["issue"][0]["code"] == "not-found"
    assert client.get("/fhir/Subscription", headers=other).json()["entry"] == []
    assert client.get("/fhir/Subscription/$status", headers=other).json()["entry"] == []
    [row] = rows(session_factory, Subscription)
    assert row.status is SubscriptionStatus.REQUESTED


def test_a_health_board_may_not_subscribe(
    client: TestClient, healthboard: TestSystem, session_factory: sessionmaker[Session]
) -> None:
    headers = {**bearer(client, healthboard), **FHIR_JSON}

    for response in (
        client.post("/fhir/Subscription", json=subscription(), headers=headers),
        client.get("/fhir/Subscription", headers=headers),
    ):
        assert response.status_code == 403
        assert response.json()["issue"][0]["code"] == "forbidden"
    assert rows(session_factory, Subscription) == []


# --- refusals -------------------------------------------------------------------------------------


REFUSED = {
    "an unknown topic": (
        subscription("https://spis.example.org/fhir/SubscriptionTopic/nothing"),
        "Subscription.criteria",
        "not a topic",
    ),
    "a query instead of a topic": (
        subscription("Task?status=completed"),
        "Subscription.criteria",
        "canonical URL",
    ),
    "a topic for time banks only": (
        subscription(ROUTED_TOPIC),
        "Subscription.criteria",
        "for time bank systems, not a GP practice's",
    ),
    "a filter the topic does not offer": (
        subscription(filters=("Task?patient=Patient/1",)),
        "Subscription.criteria.extension[0]",
        "filters by",
    ),
    "a filter on another resource type": (
        subscription(filters=("Observation?code=x",)),
        "Subscription.criteria.extension[0]",
        "filters are on Task",
    ),
    "a filter with two parameters": (
        subscription(filters=("Task?status=failed&owner=x",)),
        "Subscription.criteria.extension[0]",
        "one parameter each",
    ),
    "an email channel": (
        {**subscription(), "channel": {**subscription()["channel"], "type": "email"}},
        "Subscription.channel.type",
        "only rest-hook",
    ),
    "a channel header": (
        subscription(header=["Authorization: Bearer secret"]),
        "Subscription.channel.header",
        "SPIS signs every notification",
    ),
    "an unsafe endpoint": (
        subscription(endpoint="http://169.254.169.254/latest/meta-data"),
        "Subscription.channel.endpoint",
        "link-local",
    ),
    "no encryption key for application/jose": (
        subscription(payload="application/jose"),
        "Subscription.channel.payload",
        "registered key",
    ),
    "a payload content that is not the backport's": (
        subscription(content="everything"),
        "Subscription.channel.payload",
        "empty, id-only, full-resource",
    ),
    "a heartbeat below the minimum": (
        subscription(extension=[{"url": BACKPORT_HEARTBEAT_PERIOD, "valueUnsignedInt": 5}]),
        "Subscription.channel.extension",
        "at least 60 seconds",
    ),
    "an active status": (
        {**subscription(), "status": "active"},
        "Subscription.status",
        "requested",
    ),
}


@pytest.mark.parametrize("case", REFUSED, ids=list(REFUSED))
def test_each_refusal_is_a_422_outcome_and_stores_nothing(
    case: str,
    client: TestClient,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    body, where, words = REFUSED[case]

    response = client.post(
        "/fhir/Subscription", json=body, headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    [issue] = response.json()["issue"]
    assert issue["expression"] == [where]
    assert words in issue["diagnostics"]
    assert rows(session_factory, Subscription) == []
    assert rows(session_factory, Delivery) == []


def test_plain_json_is_refused_in_production(
    client: TestClient, practice_headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    app_settings: Settings = client.app.state.settings  # type: ignore[attr-defined]
    client.app.state.settings = app_settings.model_copy(update={"environment": "production"})  # type: ignore[attr-defined]
    body = subscription(endpoint="https://127.0.0.1:9/spis-hook")

    response = client.post(
        "/fhir/Subscription", json=body, headers={**practice_headers, **FHIR_JSON}
    )

    assert response.status_code == 422
    assert response.json()["issue"][0]["expression"] == ["Subscription.channel.payload"]
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Subscription)) == 0


# --- $status, the topics, the CapabilityStatement -------------------------------------------------


def test_status_reports_each_subscription_as_the_backport_parameters(
    client: TestClient, practice_headers: dict[str, str], session_factory: sessionmaker[Session]
) -> None:
    first = create(client, practice_headers, subscription())
    second = create(client, practice_headers, subscription())
    with session_factory() as session, session.begin():
        failed = session.get_one(Subscription, second["id"])
        failed.status, failed.error, failed.events_since_start = (
            SubscriptionStatus.ERROR,
            "no answer after 24 h (HTTP 503)",
            7,
        )

    one = client.get(f"/fhir/Subscription/{first['id']}/$status", headers=practice_headers)
    both = client.get(
        f"/fhir/Subscription/$status?id={first['id']},{second['id']}", headers=practice_headers
    )

    assert one.status_code == 200
    bundle = one.json()
    assert (bundle["resourceType"], bundle["type"], bundle["total"]) == ("Bundle", "searchset", 1)
    parameters = bundle["entry"][0]["resource"]
    assert parameters["resourceType"] == "Parameters"
    assert {
        p["name"]: next(v for k, v in p.items() if k != "name") for p in parameters["parameter"]
    } == {
        "subscription": {"reference": f"http://testserver/fhir/Subscription/{first['id']}"},
        "topic": SDOH_TASK_TOPIC,
        "status": "requested",
        "type": "query-status",
        "events-since-subscription-start": "0",
    }
    in_error = both.json()["entry"][1]["resource"]["parameter"]
    assert {
        "name": "error",
        "valueCodeableConcept": {"text": "no answer after 24 h (HTTP 503)"},
    } in in_error
    assert {"name": "events-since-subscription-start", "valueString": "7"} in in_error
    shown = client.get(f"/fhir/Subscription/{second['id']}", headers=practice_headers).json()
    assert (shown["status"], shown["error"]) == ("error", "no answer after 24 h (HTTP 503)")


def test_the_capability_statement_and_basic_list_the_topics(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    [entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    listed = [
        e["valueCanonical"] for e in entry["extension"] if e["url"] == BACKPORT_TOPIC_CANONICAL
    ]
    assert listed == sorted(TOPICS)
    assert {i["code"] for i in entry["interaction"]} == {
        "create",
        "read",
        "update",
        "delete",
        "search-type",
    }
    assert [o["name"] for o in entry["operation"]] == ["status"]

    topics = client.get("/fhir/Basic?code=SubscriptionTopic").json()  # public: no token
    urls = {
        e["valueUri"]
        for entry in topics["entry"]
        for e in entry["resource"]["extension"]
        if e["url"].endswith("SubscriptionTopic.url")
    }
    assert urls == set(TOPICS)
    routed = client.get("/fhir/Basic/routed").json()
    filters = [e for e in routed["extension"] if e["url"].endswith(".canFilterBy")]
    assert [
        {x["url"]: x.get("valueString", x.get("valueUri")) for x in f["extension"]} for f in filters
    ] == [{"resource": "Task", "filterParameter": "owner"}]
    assert client.get("/fhir/Basic?code=Patient").json()["entry"] == []
    assert client.get("/fhir/Basic/nothing").status_code == 404
