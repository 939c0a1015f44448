"""The embedded default runs its own Celery worker (with beat) beside the API: one command, no servers.

It is the same worker `spis worker` runs in production, started as a child process with the same
settings; only the broker differs (kombu's on-disk transport under var/).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from referral_service.config import Settings


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
        }
    )
    return env


@contextmanager
def embedded_worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(worker_command(settings, beat=True), env=worker_env(settings))  # noqa: S603
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
