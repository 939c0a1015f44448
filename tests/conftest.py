"""Shared fixtures: a throw-away PostgreSQL database per test run, the app, and registered systems.

The API and persistence tests run against PostgreSQL (`SPIS_TEST_DATABASE_URL`, default the local
server's `postgres` database used only to create and drop `spis_test_<random>`). Every test starts
with empty tables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.repository import SEALER_LOCK_KEY
from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker
from referral_service.keys import ring as key_ring
from referral_service.kit.models import Base
from referral_service.kit.registry import load_all_models

ADMIN_URL = os.environ.get(
    "SPIS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

pytest_plugins = ["tests.fixtures.systems", "tests.fixtures.referrals"]


def _admin_engine() -> Engine:
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    name = f"spis_test_{secrets.token_hex(4)}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pytest.exit(
            f"PostgreSQL is needed at {make_url(ADMIN_URL).render_as_string()} "
            f"({type(exc).__name__}). "
            "Start it (see DEVELOPERS.md) or point SPIS_TEST_DATABASE_URL at a server "
            "where this user may CREATE DATABASE.",
            returncode=3,
        )
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def new_database(prefix: str = "spis_empty") -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database of its own (for a test that migrates it, or a
    server it starts), dropped afterwards, also when the test fails."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = _admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """`new_database` as a fixture."""
    with new_database() as url:
        yield url


def migrate(url: str) -> None:
    from referral_service.migrate import upgrade

    upgrade(url)


TEST_KEK = "test-key-encryption-key-not-for-production"


@pytest.fixture(scope="session")
def pg_engine(pg_url: str) -> Iterator[Engine]:
    engine = make_engine(pg_url)
    key_ring.register(engine, TEST_KEK)
    yield engine
    engine.dispose()


def _truncate_all(engine: Engine) -> None:
    load_all_models()
    existing = set(inspect(engine).get_table_names())
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name in existing)
    with engine.begin() as conn:
        # The sealers' lock first: a sealer thread still running (the session-wide server's, an
        # app's lifespan) then skips its turn instead of locking the audit tables in another
        # order than TRUNCATE does, which PostgreSQL would end as a deadlock.
        conn.execute(select(func.pg_advisory_xact_lock(SEALER_LOCK_KEY)))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_url,
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        kek=SecretStr(TEST_KEK),
    )


@pytest.fixture
def session_factory(pg_engine: Engine) -> sessionmaker[Session]:
    _truncate_all(pg_engine)
    return make_sessionmaker(pg_engine)


@pytest.fixture
def app(settings: Settings, session_factory: sessionmaker[Session]):  # type: ignore[no-untyped-def]
    from referral_service.app import create_app

    return create_app(settings)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client
