"""search_index is keyed by (resource_id, position), with no sequence and no foreign key
(migration 0026): every row the write paths make has its resource, each resource's rows are
numbered from 0, an update replaces them, and the migration numbers stored rows in the order they
were written and gives them back their `id` on the way down, on both databases."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import Engine, inspect, text

from referral_service.db import make_engine
from referral_service.migrate import alembic_config, upgrade
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral

BEFORE = "20261202_0025"


def positions(engine: Engine) -> dict[str, list[int]]:
    """Each indexed resource's row positions, in order; every row's resource must exist."""
    with engine.connect() as conn:
        orphans = conn.execute(
            text(
                "SELECT count(*) FROM search_index WHERE NOT EXISTS"
                " (SELECT 1 FROM resource WHERE resource.id = search_index.resource_id)"
            )
        ).scalar_one()
        assert orphans == 0
        rows = conn.execute(
            text("SELECT resource_id, position FROM search_index ORDER BY resource_id, position")
        )
        found: dict[str, list[int]] = defaultdict(list)
        for rid, position in rows:
            found[rid].append(position)
    return dict(found)


def test_writes_number_each_resources_rows_and_an_update_replaces_them(
    client: TestClient,
    referral: Referral,
    practice_headers: dict[str, str],
    pg_engine: Engine,
) -> None:
    before = positions(pg_engine)
    task_id = referral.task_id
    assert {referral.patient.split("/")[1], task_id} <= set(before)
    assert all(found == list(range(len(found))) for found in before.values())

    headers = {**practice_headers, **FHIR_JSON}
    task = client.get(f"/fhir/Task/{task_id}", headers=headers).json()
    task["businessStatus"] = {"text": "Called the patient"}
    task["note"] = [{"text": "Prefers mornings"}]
    updated = client.put(f"/fhir/Task/{task_id}", json=task, headers=headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["meta"]["versionId"] == "2"

    after = positions(pg_engine)
    assert after[task_id] == list(range(len(after[task_id])))
    assert {rid: found for rid, found in after.items() if rid != task_id} == {
        rid: found for rid, found in before.items() if rid != task_id
    }
    # The Task is still found by what it was indexed under, once (no row left from version 1).
    found = client.get(f"/fhir/Task?focus={referral.service_request}", headers=headers).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [task_id]


ROWS = [  # (resource, name, value), in the order an earlier release wrote them
    ("r2", "status", "requested"),
    ("r1", "subject", "Patient/p1"),
    ("r2", "subject", "Patient/p1"),
    ("r1", "status", "active"),
    ("r1", "code", "x"),
]


def _insert_before(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO organisation (id, kind, name, created_at)"
                    " VALUES ('org', 'practice', 'Practice', CURRENT_TIMESTAMP)"
                )
            )
            for rid in ("r1", "r2"):
                conn.execute(
                    text(
                        "INSERT INTO resource (id, type, version_id, last_updated, org_id, body)"
                        " VALUES (:rid, 'Task', 1, CURRENT_TIMESTAMP, 'org', :body)"
                    ),
                    {"rid": rid, "body": b"\x00"},
                )
            for rid, name, value in ROWS:
                conn.execute(
                    text(
                        "INSERT INTO search_index (resource_id, resource_type, name, value)"
                        " VALUES (:rid, 'Task', :name, :value)"
                    ),
                    {"rid": rid, "name": name, "value": value},
                )
    finally:
        engine.dispose()


def _shape(url: str) -> tuple[list[str], list[str], set[str], list[tuple[object, ...]]]:
    engine = make_engine(url)
    try:
        found = inspect(engine)
        key = found.get_pk_constraint("search_index")["constrained_columns"]
        foreign = [fk["referred_table"] for fk in found.get_foreign_keys("search_index")]
        indexes = {ix["name"] for ix in found.get_indexes("search_index")}
        columns = {c["name"] for c in found.get_columns("search_index")}
        order = "resource_id, position" if "position" in columns else "resource_id, id"
        with engine.connect() as conn:
            rows = conn.execute(
                text(f"SELECT resource_id, name, value FROM search_index ORDER BY {order}")
            )
            stored = [tuple(row) for row in rows]
        return key, foreign, indexes, stored
    finally:
        engine.dispose()


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_migration_0026_numbers_rows_in_written_order_and_goes_back(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'spis.sqlite3'}"
        if database == "sqlite"
        else request.getfixturevalue("empty_pg")
    )
    command.upgrade(alembic_config(url), BEFORE)
    _insert_before(url)
    written = sorted(ROWS, key=lambda row: row[0])  # each resource's rows in written order

    upgrade(url)
    key, foreign, indexes, stored = _shape(url)
    assert key == ["resource_id", "position"]
    assert foreign == []
    assert "ix_search_index_resource" not in indexes
    assert stored == written
    engine = make_engine(url)
    try:
        assert positions(engine) == {"r1": [0, 1, 2], "r2": [0, 1]}
    finally:
        engine.dispose()

    command.downgrade(alembic_config(url), BEFORE)
    key, foreign, indexes, stored = _shape(url)
    assert key == ["id"]
    assert foreign == ["resource"]
    assert {"ix_search_index_resource", "ix_search_index_lookup"} <= indexes
    assert stored == written

    upgrade(url)  # and up again, from rows the downgrade numbered
    assert _shape(url)[3] == written
