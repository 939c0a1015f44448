"""Sealed values are bound to their tenant: a database writer who moves a record to another
organisation gets nothing readable out of it. Values sealed before the tenant was bound (format
1) still open, and re-encryption upgrades them; once their key is retired they open nowhere."""

from __future__ import annotations

import os

import orjson
import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.keys import ring
from referral_service.keys.service import finish, reencrypt_batch, rotate, status
from referral_service.kit import envelope
from referral_service.kit.clock import utcnow
from referral_service.ledger.models import Member
from referral_service.organisations.models import OrgKind
from referral_service.principal import Principal
from referral_service.store import repository, sealing, service
from referral_service.store.models import StoredResource
from tests.fixtures.referrals import Referral
from tests.fixtures.systems import TestSystem, bearer, register_system

INTEGRITY = "Stored data failed its integrity check; it was not returned"


def move(session_factory: sessionmaker[Session], resource_id: str, org_id: str) -> None:
    """What a database writer would do: hand the record, every version too, to another org."""
    with session_factory() as session, session.begin():
        for table, column in (("resource", "id"), ("resource_version", "resource_id")):
            session.execute(
                text(f"UPDATE {table} SET org_id = :org WHERE {column} = :id"),
                {"org": org_id, "id": resource_id},
            )


def test_a_resource_moved_to_another_practice_does_not_open(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    referral: Referral,
) -> None:
    patient_id = referral.patient.split("/")[1]
    move(session_factory, patient_id, practice_b.org_id)

    for path in (
        referral.patient,
        f"{referral.patient}/_history/1",
        f"{referral.patient}/_history",
    ):
        response = client.get(f"/fhir/{path}", headers=practice_b_headers)
        assert response.status_code == 500, (path, response.text)
        assert response.json()["issue"][0]["diagnostics"].startswith(
            f"{INTEGRITY}. Correlation id: "
        )
        assert "Okafor" not in response.text


def test_history_is_not_read_under_another_tenant_than_the_resource(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    practice: TestSystem,
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    referral: Referral,
) -> None:
    patient_id = referral.patient.split("/")[1]
    with session_factory() as session, session.begin():  # version 1 is superseded
        ctx = Context(session, Principal.spis(), settings)
        row = service.load(ctx, "Patient", patient_id, for_update=True)
        service.update(ctx, row, {**orjson.loads(row.body), "gender": "unknown"})
    # only the current row moved: the superseded version still names (and is sealed for) the
    # practice
    with session_factory() as session, session.begin():
        session.execute(
            text("UPDATE resource SET org_id = :org WHERE id = :id"),
            {"org": practice_b.org_id, "id": patient_id},
        )
    response = client.get(f"/fhir/{referral.patient}/_history/1", headers=practice_b_headers)
    assert response.status_code == 500, response.text  # the current row does not open
    assert "Okafor" not in response.text
    # Even a current row that opened under the new tenant would bring no version of the old one.
    with session_factory() as session:
        under_b = repository.new_row(patient_id, "Patient", 2, utcnow(), practice_b.org_id, b"{}")
        assert [v.version_id for v in repository.versions_of(session, under_b)] == [2]
        assert repository.versions_of(session, under_b, 1) == []
        under_a = repository.new_row(patient_id, "Patient", 2, utcnow(), practice.org_id, b"{}")
        assert [v.version_id for v in repository.versions_of(session, under_a)] == [2, 1]


def test_a_member_moved_to_another_time_bank_does_not_open(
    client: TestClient,
    session_factory: sessionmaker[Session],
    timebank: TestSystem,
    timebank_headers: dict[str, str],
) -> None:
    other = register_system(session_factory, OrgKind.TIMEBANK, name="Other Time Bank")
    member = client.post(
        f"/api/timebanks/{timebank.org_id}/members",
        json={"alias": "Maureen Quill"},
        headers=timebank_headers,
    ).json()
    with session_factory() as session, session.begin():
        session.execute(
            text("UPDATE ledger_member SET org_id = :org WHERE id = :id"),
            {"org": other.org_id, "id": member["id"]},
        )
    response = client.get(
        f"/api/timebanks/{other.org_id}/members/{member['id']}", headers=bearer(client, other)
    )
    assert response.status_code == 500, response.text
    assert "Maureen" not in response.text
    with session_factory() as session, pytest.raises(InvalidTag):
        session.get(Member, member["id"])


def seal_as_format_1(session: Session, aad: bytes, plaintext: bytes) -> bytes:
    """A value as the previous release sealed it: format byte 1, associated data without tenant."""
    key_id, key = ring.current(session.connection())
    nonce = os.urandom(envelope.NONCE_BYTES)
    header = envelope.HEADER.pack(envelope.LEGACY_FORMAT, key_id)
    return header + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def downgrade_to_format_1(session_factory: sessionmaker[Session], resource_id: str) -> bytes:
    with session_factory() as session, session.begin():
        row = session.get_one(StoredResource, resource_id)
        legacy = seal_as_format_1(
            session, sealing.legacy_resource_aad(row.id, row.version_id), row.body
        )
        session.execute(
            text("UPDATE resource SET body = :body WHERE id = :id"),
            {"body": legacy, "id": resource_id},
        )
    return legacy


def test_format_1_values_open_then_rotation_upgrades_and_retires_them(
    client: TestClient,
    session_factory: sessionmaker[Session],
    practice_b: TestSystem,
    practice_b_headers: dict[str, str],
    practice_headers: dict[str, str],
    referral: Referral,
) -> None:
    patient_id = referral.patient.split("/")[1]
    legacy = downgrade_to_format_1(session_factory, patient_id)
    # an upgraded installation still reads what the previous release wrote
    read = client.get(f"/fhir/{referral.patient}", headers=practice_headers)
    assert read.status_code == 200, read.text
    assert read.json()["name"][0]["family"] == "Okafor"
    with session_factory() as session:
        found = status(session)
    assert found.rows_by_header[(envelope.LEGACY_FORMAT, found.current)] == 1
    assert found.stale == 1
    assert found.reencryption == "needed: run `spis keys rotate`"

    with session_factory() as session, session.begin():
        old_key = status(session).current
        rotate(session)
    while True:
        with session_factory() as session, session.begin():
            if not reencrypt_batch(session, batch_size=50) and not finish(session):
                break
    with session_factory() as session:
        after = status(session)
    assert after.stale == 0
    assert after.retired == [old_key]
    assert set(after.rows_by_header) == {(envelope.FORMAT, old_key + 1)}
    assert client.get(f"/fhir/{referral.patient}", headers=practice_headers).status_code == 200

    # the format-1 copy a writer kept, put back and moved: the retired key opens nothing
    with session_factory() as session, session.begin():
        session.execute(
            text("UPDATE resource SET body = :body, org_id = :org WHERE id = :id"),
            {"body": legacy, "org": practice_b.org_id, "id": patient_id},
        )
    response = client.get(f"/fhir/{referral.patient}", headers=practice_b_headers)
    assert response.status_code == 500
    assert response.json()["issue"][0]["diagnostics"].startswith(f"{INTEGRITY}. Correlation id: ")
    assert "Okafor" not in response.text
