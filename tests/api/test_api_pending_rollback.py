"""A connection that drops mid-request leaves the session needing a rollback; the next statement
raises PendingRollbackError. That is a database outage (503), not a bug (500)."""

from __future__ import annotations

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import PendingRollbackError

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
