"""A real Celery worker process against Redis and PostgreSQL, and time banks to route to."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
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

__all__ = ["PrivateRedis", "Worker", "add_timebank", "free_port", "wait_for"]

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A Redis of this test's own, so stopping it disturbs nothing else on the machine."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is needed for this test: apt-get install redis-server")
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        wait_for(self._up, timeout=20, what="the private Redis to start")

    def _up(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    redis = PrivateRedis()
    redis.start()
    yield redis
    redis.stop()
