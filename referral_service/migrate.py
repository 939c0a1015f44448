"""`spis migrate`: Alembic upgrade to head, on SQLite or PostgreSQL alike."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"  # shipped inside the package


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from referral_service.db import make_engine

    engine = make_engine(database_url)  # creates the SQLite directory when needed
    engine.dispose()
    command.upgrade(alembic_config(database_url), revision)
