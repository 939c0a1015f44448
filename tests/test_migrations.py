"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine

from referral_service.db import make_engine
from referral_service.kit.models import Base
from referral_service.kit.registry import load_all_models
from referral_service.migrate import upgrade


def differences(engine: Engine) -> list[object]:
    load_all_models()
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def test_postgres_schema_matches_models(pg_engine: Engine) -> None:
    assert differences(pg_engine) == []


def test_sqlite_migrates_to_the_same_schema(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'spis.sqlite3'}"
    upgrade(url)
    upgrade(url)  # running it again is harmless
    engine = make_engine(url)
    try:
        assert differences(engine) == []
    finally:
        engine.dispose()
