"""Alembic environment: one metadata for every SPIS table; SQLite uses batch mode."""

from __future__ import annotations

from alembic import context

from referral_service.config import get_settings
from referral_service.db import make_engine
from referral_service.keys import ring
from referral_service.kit.models import Base
from referral_service.kit.registry import load_all_models

load_all_models()
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url, "sqlalchemy.url is set by referral_service.migrate"
    engine = make_engine(url)
    # Migrations that re-seal values need the KEK of the process running them (`spis migrate`).
    ring.register(engine, get_settings().kek.get_secret_value())
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
