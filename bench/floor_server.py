"""The floors' server (bench/floor_app/floor_app.py): plain FastAPI on the bench's database,
with the bench's worker count, in the bench's own venv (FastAPI, uvicorn, psycopg's pool and
fhir_adapters are SPIS's own).

    with floor_server(database_url, "<ServiceRequest id>", workers=2) as floor:
        run = wrk("get.lua", f"{floor.base_url}/select/<id>", 10, {"TOKEN": ""})
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from peer import Served, start_server, stop_server, wait_until_ready
from sqlalchemy import create_engine, make_url, text

APP_DIR = Path(__file__).resolve().parent / "floor_app"
TABLES = (  # in the bench's database, dropped with it
    "CREATE TABLE IF NOT EXISTS bench_floor_audit (seq BIGSERIAL PRIMARY KEY, "
    "resource_id TEXT NOT NULL, recorded TIMESTAMPTZ NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_floor_resource (id TEXT PRIMARY KEY, type TEXT NOT NULL, "
    "body BYTEA NOT NULL)",
)


class FloorUnavailable(RuntimeError):
    pass


@contextmanager
def floor_server(database_url: str, rid: str, workers: int) -> Iterator[Served]:
    """The floor app on a free port, ready when GET /select/<rid> answers 200; its tables made in
    the database first."""
    from tests.fixtures.server import free_port

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            for table in TABLES:
                conn.execute(text(table))
    finally:
        engine.dispose()
    libpq = make_url(database_url).set(drivername="postgresql").render_as_string(False)
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "floor_app:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log",
        "--log-level", "warning",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        env = {"PATH": "/usr/bin:/bin", "FLOOR_DATABASE_URL": libpq}
        proc = start_server(command, APP_DIR, log, env)
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(
                proc,
                lambda: httpx.get(f"{base_url}/select/{rid}"),
                200,
                FloorUnavailable("the floor app"),
                lambda: _tail(log),
            )
            yield Served(base_url, proc.pid)
        finally:
            stop_server(proc)


def _tail(log: object) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    data: bytes = log.read()  # type: ignore[attr-defined]
    return data[-2000:].decode(errors="replace")
