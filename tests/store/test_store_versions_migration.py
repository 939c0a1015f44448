"""Migration 0024: `resource_version` keeps superseded versions only. Upgrading deletes the copies
of current versions an earlier release stored there; going back refuses once a resource keeps its
current version only in `resource`, which the earlier code would not find for vread or history."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import make_engine, make_sessionmaker
from referral_service.keys import ring
from referral_service.migrate import alembic_config, upgrade
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.principal import Principal
from referral_service.store import service
from tests.conftest import TEST_KEK

BEFORE = "20261201_0023"


def test_upgrade_drops_current_copies_and_downgrade_refuses_once_they_are_gone(
    tmp_path: Path, settings: Settings
) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    command.downgrade(alembic_config(url), BEFORE)  # nothing stored: it goes back
    engine = make_engine(url)
    try:
        with engine.begin() as conn:  # rows as the earlier release wrote them, bodies aside
            conn.execute(
                text(
                    "INSERT INTO organisation (id, kind, name, created_at)"
                    " VALUES ('o1', 'practice', 'Practice', CURRENT_TIMESTAMP)"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO resource (id, type, version_id, last_updated, org_id, body)"
                    " VALUES ('r1', 'Task', 2, CURRENT_TIMESTAMP, 'o1', x'00')"
                )
            )
            for version in (1, 2):
                conn.execute(
                    text(
                        "INSERT INTO resource_version"
                        " (resource_id, version_id, last_updated, org_id, body)"
                        " VALUES ('r1', :v, CURRENT_TIMESTAMP, 'o1', x'00')"
                    ),
                    {"v": version},
                )
        upgrade(url)
        with engine.connect() as conn:
            kept = conn.execute(text("SELECT resource_id, version_id FROM resource_version"))
            assert kept.all() == [("r1", 1)]
            conn.execute(text("DELETE FROM resource_version"))
            conn.execute(text("DELETE FROM resource"))
            conn.commit()

        ring.register(engine, TEST_KEK)
        with make_sessionmaker(engine)() as session, session.begin():
            org = register(session, OrgKind.PRACTICE, "Practice", "F84001").id
            service.create(
                Context(session, Principal.spis(), settings),
                "Patient",
                {"resourceType": "Patient"},
                tenant=org,
            )
        with pytest.raises(RuntimeError, match="1 resources keep their current version only"):
            command.downgrade(alembic_config(url), BEFORE)
        with engine.connect() as conn:  # still at the head, nothing lost
            assert conn.scalar(text("SELECT count(*) FROM resource")) == 1
            assert conn.scalar(text("SELECT version_num FROM alembic_version")) == "20261202_0024"
    finally:
        engine.dispose()
