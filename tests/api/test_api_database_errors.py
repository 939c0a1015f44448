"""How a database failure reads to the client. A connection that drops mid-request leaves the
session needing a rollback and the next statement raises PendingRollbackError: that is an outage
(503), not a bug (500). A locked SQLite database is busy, not down."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError, PendingRollbackError

from referral_service.fhir.errors import install_error_handlers


@pytest.mark.parametrize(
    ("cause", "status"),
    [(psycopg.OperationalError("server closed the connection"), 503), (None, 500)],
)
def test_a_pending_rollback_after_a_dropped_connection_is_503(
    cause: BaseException | None, status: int
) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fhir/x")
    def endpoint() -> None:
        try:
            if cause is not None:
                raise cause
            raise ValueError("a bug")
        except (psycopg.OperationalError, ValueError):
            raise PendingRollbackError("rolled back", None, None)  # noqa: B904 (context kept)

    answer = TestClient(app, raise_server_exceptions=False).get("/fhir/x")
    assert answer.status_code == status
    body = answer.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == ("transient" if status == 503 else "exception")
    assert ("Retry-After" in answer.headers) is (status == 503)


@pytest.mark.parametrize(
    ("driver_message", "says"),
    [("database is locked", "busy"), ("connection refused", "unavailable")],
)
def test_a_locked_sqlite_database_is_busy_not_unavailable(driver_message: str, says: str) -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/fhir/x")
    def endpoint() -> None:
        raise OperationalError("SELECT 1", {}, sqlite3.OperationalError(driver_message))

    answer = TestClient(app, raise_server_exceptions=False).get("/fhir/x")
    assert answer.status_code == 503
    diagnostics = answer.json()["issue"][0]["diagnostics"]
    assert diagnostics.startswith(f"The database is {says}; nothing was changed. Retry shortly.")
    assert answer.headers["Retry-After"] == "5"
