"""`patient` is searched through `subject`'s rows where it repeats them (search_params.stored_name):
no `patient` rows are written for those types, a search and an `_include` by `patient` find the
same as before, a `patient` that names no Patient is refused, and migration 0025 deletes the rows
already stored (and makes them again going back)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.search_params import index_entries, stored_name
from referral_service.db import make_engine
from referral_service.migrate import alembic_config, upgrade
from tests.fixtures.referrals import Referral

BEFORE = "20261202_0024"


def test_patient_rows_are_written_only_where_no_subject_repeats_them() -> None:
    task = {"resourceType": "Task", "for": {"reference": "Patient/p1"}, "status": "requested"}
    names = [entry.name for entry in index_entries("Task", task)]
    assert "subject" in names
    assert "patient" not in names
    consent = {"resourceType": "Consent", "patient": {"reference": "Patient/p1"}}
    assert [e.name for e in index_entries("Consent", consent)] == ["patient"]
    assert (stored_name("Task", "patient"), stored_name("Consent", "patient")) == (
        "subject",
        "patient",
    )
    grouped = {"resourceType": "Observation", "subject": {"reference": "Group/g1"}}
    assert [(e.name, e.value) for e in index_entries("Observation", grouped)] == [
        ("subject", "Group/g1")
    ]


def test_a_search_and_an_include_by_patient_read_the_subject_rows(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    task_id = referral.task_id
    with session_factory() as session:
        names = session.execute(
            text("SELECT name FROM search_index WHERE resource_id = :id ORDER BY name"),
            {"id": task_id},
        ).scalars()
        assert "patient" not in list(names)
    for value in (referral.patient, referral.patient.split("/")[1]):
        found = client.get(
            "/fhir/Task",
            params={"patient": value, "_include": "Task:patient"},
            headers=practice_headers,
        )
        assert found.status_code == 200, found.text
        entries = [
            (e["resource"]["resourceType"], e["search"]["mode"]) for e in found.json()["entry"]
        ]
        assert entries == [("Task", "match"), ("Patient", "include")]
        assert found.json()["entry"][1]["resource"]["id"] == referral.patient.split("/")[1]

    refused = client.get("/fhir/Task?patient=Group/g1", headers=practice_headers)
    assert refused.status_code == 400
    issue = refused.json()["issue"][0]
    assert (
        issue["diagnostics"] == "patient needs a reference to a Patient: Patient/id, or the bare id"
    )


def test_migration_0025_deletes_the_repeated_rows_and_going_back_makes_them_again(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), BEFORE)
    engine = make_engine(url)
    rows = [  # as the earlier release indexed a Task for a Patient, and a Consent
        ("t1", "Task", "subject", "Patient/p1"),
        ("t1", "Task", "patient", "Patient/p1"),
        ("o1", "Observation", "subject", "Group/g1"),
        ("c1", "Consent", "patient", "Patient/p1"),
    ]
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO organisation (id, kind, name, created_at)"
                    " VALUES ('org', 'practice', 'Practice', CURRENT_TIMESTAMP)"
                )
            )
            for rid, rtype in {(row[0], row[1]) for row in rows}:  # bodies aside
                conn.execute(
                    text(
                        "INSERT INTO resource (id, type, version_id, last_updated, org_id, body)"
                        " VALUES (:rid, :rtype, 1, CURRENT_TIMESTAMP, 'org', x'00')"
                    ),
                    {"rid": rid, "rtype": rtype},
                )
            for rid, rtype, name, value in rows:
                conn.execute(
                    text(
                        "INSERT INTO search_index (resource_id, resource_type, name, value)"
                        " VALUES (:rid, :rtype, :name, :value)"
                    ),
                    {"rid": rid, "rtype": rtype, "name": name, "value": value},
                )

        def stored() -> list[tuple[str, str, str, str]]:
            with engine.connect() as conn:
                found = conn.execute(
                    text(
                        "SELECT resource_id, resource_type, name, value FROM search_index"
                        " ORDER BY resource_id, name"
                    )
                )
                return [tuple(row) for row in found]

        upgrade(url)
        assert stored() == [
            ("c1", "Consent", "patient", "Patient/p1"),
            ("o1", "Observation", "subject", "Group/g1"),
            ("t1", "Task", "subject", "Patient/p1"),
        ]
        command.downgrade(alembic_config(url), BEFORE)
        assert stored() == sorted(rows, key=lambda row: (row[0], row[2]))
    finally:
        engine.dispose()
