"""What `spis health api|worker|beat` checks: the probes container health checks run.

The image has no curl, so each probe is a `spis` subcommand: exit status 0 when healthy, else a
one-line reason on stderr and exit status 1.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

from referral_service.config import Settings

BEAT_HEARTBEAT = "celerybeat-heartbeat"
BEAT_MAX_INTERVAL_S = 30.0  # beat wakes (and touches its heartbeat) at least this often


class ProbeFailed(Exception):
    """The probed process is not healthy; the message says why in one line."""


def worker_node_name(settings: Settings) -> str:
    """`spis worker` names its Celery node after the queue and the host, so a ping reaches this
    worker and not another deployment's (or test run's) worker on the same broker and host."""
    return f"{settings.queue}@{socket.gethostname()}"


def beat_heartbeat(settings: Settings) -> Path:
    return settings.var_dir / BEAT_HEARTBEAT


def probe_api(url: str, timeout: float) -> dict[str, Any]:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise ProbeFailed(f"{url} did not answer ({type(exc).__name__})") from None
    try:
        body: dict[str, Any] = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200:
        checks = body.get("checks", {})
        failed = "; ".join(f"{name}: {checks.get(name)}" for name in body.get("failed", []))
        raise ProbeFailed(f"{url} answered {response.status_code}: {failed or response.text[:200]}")
    return body


def probe_worker(settings: Settings, timeout: float) -> dict[str, Any]:
    from referral_service.jobs.producer import celery_app

    node = worker_node_name(settings)
    try:
        replies = celery_app(settings, "spis-health").control.ping(
            destination=[node], timeout=timeout
        )
    except Exception as exc:  # each kombu transport raises its own errors
        raise ProbeFailed(f"cannot reach the broker ({type(exc).__name__})") from None
    if not replies:
        raise ProbeFailed(f"worker {node} did not answer a ping within {timeout:g} s")
    return {"worker": node, "ok": True}


def probe_beat(settings: Settings, max_age_s: float) -> dict[str, Any]:
    path = beat_heartbeat(settings)
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        raise ProbeFailed(f"no beat heartbeat at {path}: beat is not running here") from None
    if age > max_age_s:
        raise ProbeFailed(f"beat heartbeat {path} is {age:.0f} s old (limit {max_age_s:g} s)")
    return {"heartbeat": str(path), "age_s": round(age, 1), "ok": True}
