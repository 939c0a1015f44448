"""A real Celery worker process against Redis and PostgreSQL, and time banks to route to."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from referral_service.config import Settings
from referral_service.embedded import worker_command, worker_env
from tests.conftest import TEST_KEK
from tests.fixtures.routing import add_timebank

__all__ = ["Worker", "add_timebank", "wait_for"]

BROKER_URL = os.environ.get("SPIS_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_url,
        broker_url=BROKER_URL,
        queue=f"spis-test-{secrets.token_hex(4)}",
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        relay_after_s=2,
        kek=SecretStr(TEST_KEK),
        relay_interval_s=1,
    )


class Worker:
    """`spis worker` as a child process; kill() is a crash, start() a restart."""

    def __init__(self, settings: Settings, beat: bool, **env: str) -> None:
        self.settings, self.beat, self.env = settings, beat, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = worker_env(self.settings)
        env["SPIS_RELAY_AFTER_S"] = str(self.settings.relay_after_s)
        env["SPIS_RELAY_INTERVAL_S"] = str(self.settings.relay_interval_s)
        env.update(self.env)
        command = worker_command(self.settings, beat=self.beat)
        self.process = subprocess.Popen(command, env=env, start_new_session=True)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


@pytest.fixture
def worker(settings: Settings) -> Iterator[Worker]:
    running = Worker(settings, beat=True)
    running.start()
    yield running
    running.stop()


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
