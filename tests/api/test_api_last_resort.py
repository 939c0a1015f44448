"""An exception raised outside the routes (in a middleware) is answered like any other: by the
handler for its class, with an OperationOutcome, and it goes no further (issue 7, items 28, 35).

Starlette's own last resort answers 500 for everything and re-raises, and uvicorn then logs the
exception with its message.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from referral_service.transit import middleware

MARKER = "Okafor-9434765919"


def fail_with(error: Exception) -> Any:
    def lookup(*_args: Any) -> None:
        raise error

    return lookup


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (OperationalError("SELECT", {}, ConnectionError(MARKER)), 503, "transient"),
        (RuntimeError(MARKER), 500, "exception"),
    ],
)
def test_an_error_in_a_middleware_gets_its_handler_and_stops_there(
    client: TestClient,
    practice_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    status: int,
    code: str,
) -> None:
    # The JWE middleware looks up the caller's encryption key before the request runs.
    monkeypatch.setattr(middleware, "encryption_key_for", fail_with(error))

    # TestClient re-raises whatever reaches Starlette's last resort: this returns, so none did.
    response = client.get("/fhir/Task", headers={**practice_headers, "Accept": "application/jose"})

    assert response.status_code == status
    [issue] = response.json()["issue"]
    correlation_id = response.headers["X-Correlation-ID"]
    assert issue["code"] == code
    assert issue["diagnostics"].endswith(f"Correlation id: {correlation_id}")
    assert MARKER not in response.text
