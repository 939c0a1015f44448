"""The pooled-connection check `make_engine` installs (db.py): a connection the server ended is
replaced at checkout, and a live one is handed out without a round trip."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Connection, create_engine, text

from referral_service.db import make_engine
from tests.conftest import ADMIN_URL


def _backend_pid(conn: Connection) -> int:
    return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_the_server_ended_is_replaced_at_checkout(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1)
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            first = _backend_pid(conn)
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
        time.sleep(0.2)  # the terminated backend's goodbye reaches the pooled socket
        with engine.connect() as conn:
            assert _backend_pid(conn) != first
    finally:
        engine.dispose()
        admin.dispose()


def test_a_live_pooled_connection_is_handed_out_without_a_ping(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(pg_url, pool_size=1)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", pings.append)
    try:
        with engine.connect() as conn:
            first = _backend_pid(conn)
        with engine.connect() as conn:
            assert _backend_pid(conn) == first
        assert pings == []
    finally:
        engine.dispose()
