"""A 500 leaves the error class, where it happened and a correlation id in the log, never its
message (issue 7, item 35).

Exception messages can quote request data (a driver echoing a row, a parser echoing a value), so
the log carries the error class, a correlation id and the traceback's frames (file, line,
function) only. The client gets the same correlation id in `X-Correlation-ID` and in the
OperationOutcome's diagnostics, so support can match a complaint to the log line.

The fault is injected into a real `spis serve` process through a `sitecustomize` module that adds
one failing route: the logging under test is the server's own (uvicorn, LOG_CONFIG, handlers).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.server import REPO_ROOT, ServerProcess, server_process

pytestmark = pytest.mark.slow

MARKER = "Okafor-9434765919"  # stands for the patient data an exception message can carry
FAULT_PATH = "/api/test-fault"  # a machine path: its errors are OperationOutcomes
CORRELATION_ID = re.compile(r"^[0-9a-f]{32}$")

SITECUSTOMIZE = f'''
"""Test only: `spis serve` with one route that fails with patient data in its messages."""
import referral_service.app as _app

_create_app = _app.create_app


def _fail() -> None:
    try:
        raise ValueError("the cause quotes {MARKER}")
    except ValueError as exc:
        raise RuntimeError("the message quotes {MARKER}") from exc


def create_app(settings=None, **options):
    app = _create_app(settings, **options)
    app.add_api_route("{FAULT_PATH}", _fail)
    return app


_app.create_app = create_app
'''


@pytest.fixture(scope="module")
def faulty_server(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    inject = tmp_path_factory.mktemp("inject")
    (inject / "sitecustomize.py").write_text(SITECUSTOMIZE)
    path = os.pathsep.join([str(inject), str(REPO_ROOT)])
    with server_process(pg_url, env={"PYTHONPATH": path}) as server:
        yield server


def server_log(log_path: Path, expected: str) -> str:
    """The server's output once `expected` shows up in it (it writes from another process)."""
    deadline = time.monotonic() + 10
    while True:
        text = log_path.read_text(errors="replace")
        if expected in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_a_500_logs_class_frames_and_correlation_id_but_no_message(
    faulty_server: ServerProcess,
) -> None:
    response = httpx.get(f"{faulty_server.base_url}{FAULT_PATH}", timeout=30)

    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/fhir+json")
    correlation_id = response.headers["x-correlation-id"]
    assert CORRELATION_ID.match(correlation_id)
    [issue] = response.json()["issue"]
    assert issue["code"] == "exception"
    assert issue["diagnostics"] == (
        f"Internal error; nothing was changed. Correlation id: {correlation_id}"
    )
    assert MARKER not in response.text

    log = server_log(faulty_server.log_path, "sitecustomize.py")
    [line] = [line for line in log.splitlines() if correlation_id in line]
    assert "ERROR spis.errors unhandled error" in line
    assert "error_type=RuntimeError" in line
    assert f"path={FAULT_PATH}" in line
    assert 'sitecustomize.py", line 10, in _fail' in log  # where: frames are kept
    assert "ValueError" in log  # the cause's class too
    assert MARKER not in log
    assert "Exception in ASGI application" not in log  # uvicorn never saw the exception


def test_every_500_has_its_own_correlation_id(faulty_server: ServerProcess) -> None:
    ids = {
        httpx.get(f"{faulty_server.base_url}{FAULT_PATH}", timeout=30).headers["x-correlation-id"]
        for _ in range(3)
    }
    assert len(ids) == 3
