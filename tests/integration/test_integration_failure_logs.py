"""A task that fails in a real worker logs its class and where, never its message or arguments
(issue 7, item 35).

Celery's own failure line quotes the exception's repr and a full traceback; its arguments come
along in the record. Here the task's argument is the "patient data", and the exception's message
quotes it, as `datetime.fromisoformat` does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from referral_service.config import Settings
from referral_service.embedded import worker_command, worker_env
from referral_service.jobs.producer import celery_app

pytestmark = pytest.mark.slow

MARKER = "Okafor-9434765919"


def wait_for_line(log: Path, fragment: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if fragment in line:
                return line
        time.sleep(0.1)
    raise AssertionError(f"no {fragment!r} in the worker log:\n{log.read_text(errors='replace')}")


def test_a_failed_task_logs_no_message_and_no_arguments(settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    command = [*worker_command(settings, beat=False), "--loglevel=INFO"]  # as `spis worker`
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command, env=worker_env(settings), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        result = celery_app(settings, "test").send_task("spis.sweep_broker_sla", args=[MARKER])
        line = wait_for_line(log, f"[{result.id}] raised unexpected")
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)

    assert "ERROR celery.app.trace Task spis.sweep_broker_sla" in line
    assert line.endswith("raised unexpected: ValueError")
    text = log.read_text(errors="replace")
    assert "Traceback (message withheld):" in text
    assert 'routing/sla.py", line' in text  # where it failed
    assert MARKER not in text
