"""The embedded default runs its own Celery worker (with beat) beside the API: one command, no servers.

It is the same worker `spis worker` runs in production, started as a child process with the same
settings; only the broker differs (kombu's on-disk transport under var/).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from referral_service.config import Settings

log = logging.getLogger("spis.embedded")


def is_embedded(settings: Settings) -> bool:
    return settings.broker_url.startswith("filesystem://")


def worker_command(settings: Settings, *, beat: bool) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "worker",
        "--pool=solo",
        f"--queues={settings.queue}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
    ]
    if beat:
        command += ["--beat", f"--schedule={settings.var_dir / 'celerybeat-schedule'}"]
    return command


def worker_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "SPIS_ENVIRONMENT": settings.environment,
            "SPIS_DATABASE_URL": settings.database_url,
            "SPIS_BROKER_URL": settings.broker_url,
            "SPIS_VAR_DIR": str(settings.var_dir.resolve()),
            "SPIS_QUEUE": settings.queue,
            "SPIS_TOKEN_SECRET": settings.token_secret.get_secret_value(),
            "SPIS_BLIND_INDEX_KEY": settings.blind_index_key.get_secret_value(),
            "SPIS_KEK": settings.kek.get_secret_value(),
        }
    )
    return env


def _die_with_parent() -> None:
    """Linux: the worker gets SIGTERM if `spis serve` goes away however it ends (uvicorn re-raises
    SIGTERM after its own shutdown, so our clean-up code may never run)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class Supervised:
    """Keeps one worker process running: if it dies, it is started again (its jobs are rows, so
    a restarted worker picks them up through the relay)."""

    def __init__(self, settings: Settings) -> None:
        self.command, self.env = worker_command(settings, beat=True), worker_env(settings)
        self.log_path = settings.var_dir / "logs" / "worker.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.stopping = threading.Event()
        self.process = self._start()
        self.restarts = 0
        self.watcher = threading.Thread(target=self._watch, name="spis-worker-watch", daemon=True)
        self.watcher.start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log_file:  # the child keeps its own handle
            return subprocess.Popen(  # noqa: S603 - our own argv
                self.command,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            if self.process.poll() is not None and not self.stopping.is_set():
                log.warning(
                    "embedded worker exited; starting it again",
                    extra={"code": self.process.returncode},
                )
                self.restarts += 1
                self.process = self._start()

    def stop(self) -> None:
        self.stopping.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


@contextmanager
def embedded_worker(settings: Settings) -> Iterator[Supervised]:
    supervised = Supervised(settings)
    try:
        yield supervised
    finally:
        supervised.stop()
