"""Migration 0019 (issue 12): a chain written by the old code (seq = position, hashes on the
rows) is copied into audit_chain unchanged, so it and its anchors still verify; downgrading
chains what is queued and gives back the old table, which the old walk accepts. On both
databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import chain, sealer
from referral_service.audit.models import Action, Kind
from referral_service.audit.repository import ChainHead
from referral_service.audit.service import record
from referral_service.audit.verify import verify
from referral_service.db import make_engine, make_sessionmaker
from referral_service.migrate import alembic_config, upgrade
from tests.audit.conftest import a_principal
from tests.conftest import new_database

BEFORE = "20261129_0018"
OLD_ROWS = 5


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'spis.sqlite3'}"
        return
    with new_database("spis_test_mig") as url:
        yield url


def old_event(n: int) -> chain.Event:
    return chain.Event(
        id=f"00000000-0000-0000-0000-{n:012d}",
        recorded=datetime(2026, 11, 28, 12, 0, n, 123456, tzinfo=UTC),
        action="R",
        kind="read",
        actor_client_id="client-a",
        actor_org_id="org-a",
        tenant_org_id="org-a",
        patient_id="patient-1",
        entities=(f"Task/t-{n}",),
        purpose="TREAT",
        outcome=0,
        detail=None,
    )


def stored_time(engine: Engine, instant: datetime) -> object:
    """As SQLAlchemy stores a DateTime on SQLite (naive UTC text); PostgreSQL takes it as is."""
    if engine.dialect.name == "sqlite":
        return instant.replace(tzinfo=None).isoformat(" ")
    return instant


def write_old_chain(engine: Engine) -> list[str]:
    """What the code before 0019 stored: seq = position, the hashes on the row."""
    hashes, prev = [], chain.GENESIS
    with engine.begin() as conn:
        for n in range(1, OLD_ROWS + 1):
            event = old_event(n)
            digest = chain.link_hash(prev, n, event)
            conn.execute(
                text(
                    "INSERT INTO audit_event VALUES (:seq, :id, :recorded, :action, :kind, "
                    ":client, :org, :tenant, :patient, :entities, :purpose, :outcome, :detail, "
                    ":prev, :hash)"
                ),
                {
                    "seq": n,
                    "id": event.id,
                    "recorded": stored_time(engine, event.recorded),
                    "action": event.action,
                    "kind": event.kind,
                    "client": event.actor_client_id,
                    "org": event.actor_org_id,
                    "tenant": event.tenant_org_id,
                    "patient": event.patient_id,
                    "entities": chain.entities_column(event.entities),
                    "purpose": event.purpose,
                    "outcome": event.outcome,
                    "detail": event.detail,
                    "prev": prev,
                    "hash": digest,
                },
            )
            hashes.append(digest)
            prev = digest
    return hashes


def add_event(factory: sessionmaker[Session], name: str) -> None:
    with factory.begin() as session:
        record(session, a_principal(), kind=Kind.READ, action=Action.READ, entities=[name])


def old_walk(engine: Engine) -> int:
    """The walk before 0019, over the old table: contiguous seq, linked, hashes over seq."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, prev_hash, hash FROM audit_event ORDER BY seq"))
        prev, n = chain.GENESIS, 0
        for n, row in enumerate(rows, start=1):
            assert (row.seq, row.prev_hash) == (n, prev)
            prev = row.hash
    return n


def test_an_old_chain_survives_the_migration_and_the_way_back(fresh_url: str) -> None:
    upgrade(fresh_url, BEFORE)
    engine = make_engine(fresh_url)
    try:
        old_hashes = write_old_chain(engine)
        upgrade(fresh_url)
        factory = make_sessionmaker(engine)
        with factory() as session:
            result = verify(session, anchor=ChainHead(OLD_ROWS, old_hashes[-1]))
        assert (result.ok, result.checked, result.queued) == (True, OLD_ROWS, 0)
        with engine.connect() as conn:
            copied = conn.execute(text("SELECT hash FROM audit_chain ORDER BY pos")).scalars()
            assert list(copied) == old_hashes

        add_event(factory, "Task/new-1")  # numbered on from the old rows
        with factory() as session:
            assert session.scalar(text("SELECT max(seq) FROM audit_event")) == OLD_ROWS + 1
        sealer.seal_all(engine)  # (SQLite chained it at commit already)
        with engine.begin() as conn:  # queued, and left for the downgrade to chain
            conn.execute(
                text(
                    "INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, "
                    "actor_org_id, entities, outcome) VALUES ('by-hand', :at, 'R', 'read', "
                    "'c', 'o', '', 0)"
                ),
                {"at": stored_time(engine, datetime(2026, 11, 29, 10, 0, tzinfo=UTC))},
            )
        with factory() as session:
            queued = verify(session)
        assert (queued.ok, queued.checked, queued.queued) == (True, OLD_ROWS + 1, 1)
        command.downgrade(alembic_config(fresh_url), BEFORE)

        assert old_walk(engine) == OLD_ROWS + 2
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT hash FROM audit_event ORDER BY seq")).scalars()
            assert list(kept)[:OLD_ROWS] == old_hashes

        upgrade(fresh_url)
        with factory() as session:
            again = verify(session, anchor=ChainHead(OLD_ROWS, old_hashes[-1]))
        assert (again.ok, again.checked) == (True, OLD_ROWS + 2)
    finally:
        engine.dispose()
