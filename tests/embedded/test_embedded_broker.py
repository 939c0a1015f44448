"""The embedded default's on-disk broker under ordinary load: many senders at once, one real worker.

kombu's filesystem transport writes a message file in place, so the worker could pick up a file
before its writer had finished and die with "Unrecoverable error: JSONDecodeError".
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from referral_service.config import Settings
from referral_service.embedded import worker_command, worker_env
from referral_service.migrate import upgrade

SENDERS = 8
MESSAGES_EACH = 60

# Each sender is a separate process, as API workers and CLI commands are.
SENDER = """
import sys
from referral_service.config import Settings
from referral_service.jobs.producer import Producer

producer = Producer(Settings())
for n in range(int(sys.argv[1])):
    assert producer.send("spis.relay_jobs", f"load-{n}")
"""


def waiting_messages(settings: Settings) -> list[Path]:
    return list((settings.var_dir / "broker").glob("*.msg"))


@pytest.mark.slow
def test_many_concurrent_senders_do_not_crash_the_embedded_worker(tmp_path: Path) -> None:
    settings = Settings(environment="test", var_dir=tmp_path / "var", queue="load")
    upgrade(settings.database_url)
    env = worker_env(settings)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(  # noqa: S603 - our own argv
        worker_command(settings, beat=False), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        senders = [
            subprocess.Popen([sys.executable, "-c", SENDER, str(MESSAGES_EACH)], env=env)  # noqa: S603
            for _ in range(SENDERS)
        ]
        assert [s.wait(timeout=120) for s in senders] == [0] * SENDERS
        deadline = time.monotonic() + 60
        while waiting_messages(settings) and worker.poll() is None:
            assert time.monotonic() < deadline, "the worker did not drain the queue"
            time.sleep(0.2)
        worker_log = (tmp_path / "worker.log").read_text()
        assert worker.poll() is None, worker_log
        assert "Unrecoverable error" not in worker_log
        assert waiting_messages(settings) == []  # every message was taken, none left behind
        assert not list((settings.var_dir / "broker").glob(".*")), "no half-written files left"
    finally:
        worker.terminate()
        worker.wait(timeout=15)
        log.close()
