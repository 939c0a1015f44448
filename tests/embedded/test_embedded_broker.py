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
MESSAGES_EACH = 40

# Each sender is a separate process, as API processes and CLI commands are. The padding header
# widens the window kombu's in-place write left open (it serialised the message after creating
# the file), so the race shows on every run rather than one run in four.
SENDER = """
import sys
from referral_service.config import Settings
from referral_service.jobs.producer import Producer

app = Producer(Settings()).app
for n in range(int(sys.argv[1])):
    app.send_task("spis.route_referral", args=[f"load-{n}"], headers={"padding": "x" * 500_000})
"""


def waiting_messages(settings: Settings) -> list[Path]:
    return list((settings.var_dir / "broker").glob("*.msg"))


def drained(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while waiting_messages(settings) and worker.poll() is None:
        assert time.monotonic() < deadline, "the worker did not drain the queue"
        time.sleep(0.1)


@pytest.mark.slow
def test_many_concurrent_senders_do_not_crash_the_embedded_worker(tmp_path: Path) -> None:
    settings = Settings(environment="test", var_dir=tmp_path / "var", queue="load")
    upgrade(settings.database_url)
    env = worker_env(settings)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        worker_command(settings, beat=False), env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        assert subprocess.run([sys.executable, "-c", SENDER, "1"], env=env).returncode == 0
        drained(settings, worker)  # the worker is up and polling
        senders = [
            subprocess.Popen([sys.executable, "-c", SENDER, str(MESSAGES_EACH)], env=env)
            for _ in range(SENDERS)
        ]
        assert [s.wait(timeout=120) for s in senders] == [0] * SENDERS
        drained(settings, worker)
        worker_log = (tmp_path / "worker.log").read_text()
        assert worker.poll() is None, worker_log
        assert "Unrecoverable error" not in worker_log
        assert waiting_messages(settings) == []  # every message was taken, none left behind
        assert not list((settings.var_dir / "broker").glob(".*")), "no half-written files left"
    finally:
        worker.terminate()
        worker.wait(timeout=15)
        log.close()
