"""`organisations.repository.read`, the intake's look at its practice: the same organisation the
ORM loads, out of the session, on PostgreSQL (sent by the driver) and SQLite (through SQLAlchemy)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from referral_service.db import make_engine, make_sessionmaker
from referral_service.migrate import upgrade
from referral_service.organisations import repository
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register

COLUMNS = ("id", "kind", "name", "ods_code", "board_id", "created_at")


def _check(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        board = register(session, OrgKind.HEALTHBOARD, "Board", None).id
        practice = register(session, OrgKind.PRACTICE, "Practice", "F84001", board_id=board).id
    with sessions() as session:
        for org_id in (board, practice):
            read = repository.read(session, org_id)
            loaded = repository.get(session, org_id)
            assert read is not None
            assert loaded is not None
            assert read is not loaded
            assert read not in session
            assert {c: getattr(read, c) for c in COLUMNS} == {
                c: getattr(loaded, c) for c in COLUMNS
            }
            assert isinstance(read.kind, OrgKind)
        assert repository.read(session, "no-such-organisation") is None


def test_on_postgresql(session_factory: sessionmaker[Session]) -> None:
    _check(session_factory)


def test_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)
    engine: Engine = make_engine(url)
    try:
        _check(make_sessionmaker(engine))
    finally:
        engine.dispose()
