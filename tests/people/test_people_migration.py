"""Revision 20261128_0013 (people, sessions, set-up links) goes up and down on both databases.
(That head matches the models is tests/test_migrations.py.)"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from referral_service.db import make_engine
from referral_service.migrate import alembic_config, upgrade

TABLES = {"person", "web_session", "setup_link"}
BEFORE = "20261128_0012"


def tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def up_down_up(url: str) -> None:
    upgrade(url)
    assert tables(url) >= TABLES
    command.downgrade(alembic_config(url), BEFORE)
    left = tables(url)
    assert not left & TABLES
    assert "organisation" in left  # the revision before is intact
    upgrade(url)
    assert tables(url) >= TABLES


def test_up_and_down_on_postgresql(empty_pg: str) -> None:
    up_down_up(empty_pg)


def test_up_and_down_on_sqlite(tmp_path: Path) -> None:
    up_down_up(f"sqlite:///{tmp_path / 'spis.sqlite3'}")
