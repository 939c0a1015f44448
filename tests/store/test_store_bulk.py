"""store/bulk.py writes the same rows as store.service.create (+ update): a resource written in
bulk reads, searches, decrypts and lists its history exactly like one created the usual way, on
PostgreSQL (COPY) and on SQLite (executemany)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import make_engine, make_sessionmaker
from referral_service.keys import ring
from referral_service.kit.clock import as_utc
from referral_service.migrate import upgrade
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import repository, service
from referral_service.store.bulk import BulkResource, BulkWriter
from referral_service.store.models import ResourceGrant, ResourceVersion, SearchIndex
from referral_service.store.repository import TokenMatch
from tests.conftest import TEST_KEK

T1 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T2 = datetime(2026, 3, 9, 14, 5, 7, 250_000, tzinfo=UTC)
NHS = "9990000018"
PATIENT = {
    "resourceType": "Patient",
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": NHS}],
    "name": [{"family": "Example", "given": ["Alex"]}],
    "gender": "female",
}


def task(status: str, patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": status,
        "intent": "order",
        "code": {
            "coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]
        },
        "for": {"reference": patient},
        "authoredOn": "2026-03-02T09:30:00Z",
    }


@pytest.fixture(params=["postgresql", "sqlite"])
def database(
    request: pytest.FixtureRequest,
    session_factory: sessionmaker[Session],
    pg_engine: Engine,
    tmp_path: Path,
) -> Iterator[sessionmaker[Session]]:
    if request.param == "postgresql":
        yield session_factory
        return
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    ring.register(engine, TEST_KEK)
    yield make_sessionmaker(engine)
    engine.dispose()


def test_a_bulk_written_resource_is_stored_as_create_and_update_store_it(
    database: sessionmaker[Session], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    with database() as session, session.begin():
        practice = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
        timebank = register(session, OrgKind.TIMEBANK, "Time bank", None).id
    normal = _through_the_service(database, settings, practice, timebank, monkeypatch)
    bulk = _in_bulk(database, settings, practice, timebank)

    renamed = [
        (made.encode(), loaded.encode())
        for (_, made), (_, loaded) in zip(normal, bulk, strict=True)
    ]

    def as_bulk(body: bytes) -> bytes:
        for made, loaded in renamed:
            body = body.replace(made, loaded)
        return body

    with database() as session, session.begin():
        system = Principal.spis()
        for (rtype, made), (_, loaded) in zip(normal, bulk, strict=True):
            a = repository.get(session, system, rtype, made)
            b = repository.get(session, system, rtype, loaded)
            assert a is not None
            assert b is not None
            # The same JSON (ids apart), version, time and tenant, opened from sealed bodies.
            assert b.body == as_bulk(a.body)
            assert (b.version_id, b.last_updated, b.org_id) == (
                a.version_id,
                a.last_updated,
                a.org_id,
            )
            old = repository.versions(session, system, rtype, made)
            new = repository.versions(session, system, rtype, loaded)
            assert [(v.version_id, v.last_updated, as_bulk(v.body)) for v in old] == [
                (v.version_id, v.last_updated, v.body) for v in new
            ]
            renamed_index = [
                (*r[:3], as_bulk(r[3].encode()).decode(), *r[4:]) for r in _index(session, made)
            ]
            assert renamed_index == _index(session, loaded)
            assert _grants(session, made) == _grants(session, loaded) == [timebank]
            raw = session.execute(text("SELECT body FROM resource WHERE id = :id"), {"id": loaded})
            sealed = bytes(raw.scalar_one())
            assert b"Example" not in sealed
            assert NHS.encode() not in sealed

        practice_caller = Principal("c", practice, OrgKind.PRACTICE, frozenset())
        by_nhs = service.token_value(
            Context(session, practice_caller, settings),
            "Patient",
            "identifier",
            "https://fhir.nhs.uk/Id/nhs-number",
            NHS,
        )
        found = repository.search(
            session,
            practice_caller,
            "Patient",
            [[TokenMatch("identifier", by_nhs, "https://fhir.nhs.uk/Id/nhs-number", True)]],
            limit=10,
            offset=0,
        )
        assert sorted(r.id for r in found) == sorted([normal[0][1], bulk[0][1]])
        tb_caller = Principal("t", timebank, OrgKind.TIMEBANK, frozenset())
        accepted = repository.search(
            session, tb_caller, "Task", [[TokenMatch("status", "accepted")]], limit=10, offset=0
        )
        assert sorted(r.id for r in accepted) == sorted([normal[1][1], bulk[1][1]])


def _through_the_service(
    database: sessionmaker[Session],
    settings: Settings,
    practice: str,
    timebank: str,
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[str, str]]:
    times = iter([T1, T1, T2])
    monkeypatch.setattr(service, "utcnow", lambda: next(times))
    with database() as session, session.begin():
        ctx = Context(session, Principal("c", practice, OrgKind.PRACTICE, frozenset()), settings)
        patient = service.create(ctx, "Patient", copy.deepcopy(PATIENT), share_with=(timebank,))
        made = service.create(
            ctx, "Task", task("requested", f"Patient/{patient.id}"), share_with=(timebank,)
        )
        row = service.load(ctx, "Task", made.id, for_update=True)
        service.update(ctx, row, task("accepted", f"Patient/{patient.id}"))
    return [("Patient", patient.id), ("Task", made.id)]


def _in_bulk(
    database: sessionmaker[Session], settings: Settings, practice: str, timebank: str
) -> list[tuple[str, str]]:
    patient, made = "bulk-patient", "bulk-task"
    with database() as session, session.begin():
        writer = BulkWriter(Context(session, Principal.spis(), settings), batch=1)
        writer.add(
            BulkResource("Patient", patient, practice, [(T1, copy.deepcopy(PATIENT))], [timebank])
        )
        versions = [(T1, task("requested", "Patient/PID")), (T2, task("accepted", "Patient/PID"))]
        for _, body in versions:
            body["for"]["reference"] = f"Patient/{patient}"
        writer.add(BulkResource("Task", made, practice, versions, [timebank]))
        writer.flush()
        assert writer.resources_written == 2
    return [("Patient", patient), ("Task", made)]


def _index(session: Session, rid: str) -> list[tuple[Any, ...]]:
    """The resource's index rows, with the value as text (None as "")."""
    rows = session.execute(
        select(
            SearchIndex.resource_type,
            SearchIndex.name,
            SearchIndex.system,
            SearchIndex.value,
            SearchIndex.start,
            SearchIndex.end,
        ).where(SearchIndex.resource_id == rid)
    )
    return sorted(((*r[:3], r[3] or "", *r[4:]) for r in rows), key=repr)


def _grants(session: Session, rid: str) -> list[str]:
    return list(
        session.scalars(select(ResourceGrant.org_id).where(ResourceGrant.resource_id == rid))
    )


def test_bulk_versions_are_the_history(database: sessionmaker[Session], settings: Settings) -> None:
    with database() as session, session.begin():
        practice = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
        writer = BulkWriter(Context(session, Principal.spis(), settings))
        writer.add(
            BulkResource(
                "Task",
                "t1",
                practice,
                [(T1, task("requested", "Patient/p")), (T2, task("accepted", "Patient/p"))],
            )
        )
        writer.flush()
    with database() as session, session.begin():
        versions = list(reversed(repository.versions(session, Principal.spis(), "Task", "t1")))
        assert [(v.version_id, as_utc(v.last_updated)) for v in versions] == [(1, T1), (2, T2)]
        # The superseded version only: the current one is the resource row, as a write leaves it.
        stored = session.scalars(
            select(ResourceVersion.version_id).where(ResourceVersion.resource_id == "t1")
        ).all()
        assert stored == [1]
        assert [b'"versionId":"1"' in v.body for v in versions] == [True, False]
        assert b'"lastUpdated":"2026-03-09T14:05:07.250Z"' in versions[1].body
        assert b'"status":"accepted"' in versions[1].body
