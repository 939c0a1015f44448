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
from pathlib import Path

from referral_service.config import Settings
from referral_service.kit import lifeline

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
            # What notifications say and where they may go: the same as the API's.
            "SPIS_PUBLIC_BASE_URL": settings.public_base_url,
            "SPIS_DELIVERY_ALLOWED_HOSTS": settings.delivery_allowed_hosts,
            "SPIS_TOKEN_SECRET": settings.token_secret.get_secret_value(),
            "SPIS_BLIND_INDEX_KEY": settings.blind_index_key.get_secret_value(),
            "SPIS_KEK": settings.kek.get_secret_value(),
        }
    )
    return env


def beat_command(settings: Settings) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.app",
        "beat",
        "--loglevel=WARNING",
        f"--schedule={settings.var_dir / 'celerybeat-schedule'}",
    ]


class Child:
    """One supervised process, started so that it ends with `spis serve` (kit/lifeline.py)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.restarts = 0
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("ab") as log_file:  # the child keeps its own handle
            return subprocess.Popen(  # noqa: S603 - our own argv
                lifeline.wrap(self.command),
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    def restart_if_dead(self) -> None:
        if self.process.poll() is not None:
            log.warning(
                "embedded process exited; starting it again",
                extra={"child": self.name, "code": self.process.returncode},
            )
            self.restarts += 1
            self.process = self._start()

    def wait(self) -> None:
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Supervised:
    """Keeps one worker and one beat running: if either dies, it is started again (jobs are rows,
    so a restarted worker picks them up through the relay).

    Beat is its own process, not the worker's `--beat` child: a worker killed with SIGKILL cannot
    take a child of its own down with it, and its restart would then run a second beat.
    """

    def __init__(self, settings: Settings) -> None:
        env, logs = worker_env(settings), settings.var_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.stopping = threading.Event()
        self.children = [
            Child("worker", worker_command(settings, beat=False), env, logs / "worker.log"),
            Child("beat", beat_command(settings), env, logs / "beat.log"),
        ]
        # Restarts come from this thread, which lives until stop(): the kernel signals a child
        # when the *thread* that started it ends.
        self.watcher = threading.Thread(target=self._watch, name="spis-worker-watch", daemon=True)
        self.watcher.start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            for child in self.children:
                if not self.stopping.is_set():
                    child.restart_if_dead()

    def stop(self) -> None:
        self.stopping.set()
        self.watcher.join(timeout=5)
        for child in self.children:
            child.process.terminate()
        for child in self.children:
            child.wait()


@contextmanager
def embedded_worker(settings: Settings) -> Iterator[Supervised]:
    supervised = Supervised(settings)
    try:
        yield supervised
    finally:
        supervised.stop()
