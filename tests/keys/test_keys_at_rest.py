"""Encryption at rest on PostgreSQL: nothing readable in the raw database, values bound to their
rows, key rotation with background re-encryption while the API keeps answering."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.keys.service import reencrypt_batch, rotate, status
from referral_service.store.models import StoredResource
from tests.fixtures.referrals import Referral, make_referral
from tests.fixtures.systems import TestSystem

IN_CLEAR = [
    "9434765919",
    "Okafor",
    "Brownhill",
    "020 7946 0123",
    "1948-03-12",
    "SE6 4RU",
    "Social isolation",
]


def raw_dump(session_factory: sessionmaker[Session]) -> str:
    """Every value of every table, as text, as an attacker with a database dump would see it."""
    parts = []
    with session_factory() as session:
        tables = session.execute(
            text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        ).scalars()
        for table in list(tables):
            for row in session.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    parts.append(
                        bytes(value).decode("latin-1")
                        if isinstance(value, bytes | memoryview)
                        else str(value)
                    )
    return "\n".join(parts)


def test_raw_database_holds_no_patient_data_in_clear(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    # the API still reads it back
    patient = client.get(f"/fhir/{referral.patient}", headers=practice_headers).json()
    assert patient["name"][0]["family"] == "Okafor"
    dump = raw_dump(session_factory)
    assert referral.task_id in dump  # the dump is real: ids are there
    for value in IN_CLEAR:
        assert value not in dump, value


def test_a_value_copied_into_another_row_does_not_open(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    with session_factory() as session, session.begin():
        session.execute(
            text(
                "UPDATE resource SET body = (SELECT body FROM resource WHERE id = :src) WHERE id = :dst"
            ),
            {"src": referral.patient.split("/")[1], "dst": referral.consent.split("/")[1]},
        )
    response = client.get(f"/fhir/{referral.consent}", headers=practice_headers)
    assert response.status_code == 500
    assert response.json()["issue"][0]["diagnostics"] == (
        "Stored data failed its integrity check; it was not returned. "
        f"Correlation id: {response.headers['X-Correlation-ID']}"
    )
    assert "Okafor" not in response.text
    with session_factory() as session, pytest.raises(InvalidTag):
        session.get(StoredResource, referral.consent.split("/")[1])


def test_rotation_reencrypts_in_batches_while_reads_go_on(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice: TestSystem,
    practice_headers: dict[str, str],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    for i in range(4):
        make_referral(client, practice_headers, practice.org_id, referral_id=f"K-{i}")
    ledger = f"/api/timebanks/{timebank.org_id}/members"
    member = client.post(ledger, json={"alias": "Dev"}, headers=timebank_headers).json()
    with session_factory() as session, session.begin():
        before = status(session)
        new_key = rotate(session)
    assert new_key == before.current + 1
    assert before.stale == 0
    with session_factory() as session:
        pending = status(session)
    assert pending.current == new_key
    assert pending.stale == sum(before.rows_by_key.values())

    rounds = 0
    while True:
        with session_factory() as session, session.begin():
            done = reencrypt_batch(session, batch_size=7)
        # between batches the service answers, old-key and new-key values alike
        tasks = client.get("/fhir/Task?_count=50", headers=practice_headers).json()["entry"]
        assert len(tasks) == 4
        rounds += 1
        if not done:
            break
    assert rounds > 2  # it really went in batches
    with session_factory() as session:
        after = status(session)
    assert after.stale == 0
    assert set(after.rows_by_key) == {new_key}
    patients = client.get("/fhir/Patient", headers=practice_headers).json()["entry"]
    assert patients[0]["resource"]["name"][0]["family"] == "Okafor"
    assert client.get(f"{ledger}/{member['id']}", headers=timebank_headers).json()["alias"] == "Dev"


def test_ledger_names_and_descriptions_are_sealed(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    base = f"/api/timebanks/{timebank.org_id}"
    member = client.post(
        f"{base}/members", json={"alias": "Maureen Quill"}, headers=timebank_headers
    ).json()
    offer = {
        "category": "gardening",
        "description": "Allotment help on Saturdays near Mountsfield Park",
    }
    assert (
        client.post(
            f"{base}/members/{member['id']}/offers", json=offer, headers=timebank_headers
        ).status_code
        == 201
    )
    assert (
        client.get(f"{base}/members/{member['id']}", headers=timebank_headers).json()["alias"]
        == "Maureen Quill"
    )
    assert (
        client.get(f"{base}/offers", headers=timebank_headers).json()[0]["description"]
        == offer["description"]
    )
    dump = raw_dump(session_factory)
    assert "Maureen" not in dump
    assert "Mountsfield" not in dump
