"""Celery beat's scheduler with a heartbeat file, so that `spis health beat` can tell a live
scheduler from a hung or dead one."""

from __future__ import annotations

import logging
from typing import Any

from celery.beat import PersistentScheduler

from referral_service.health.probes import beat_heartbeat
from workers.app import settings

log = logging.getLogger("spis.workers")


class HeartbeatScheduler(PersistentScheduler):  # type: ignore[misc]
    def tick(self, *args: Any, **kwargs: Any) -> Any:
        interval = super().tick(*args, **kwargs)
        try:
            beat_heartbeat(settings).touch()
        except OSError as exc:  # the health check reports the stale heartbeat
            log.warning("beat heartbeat not written", extra={"error": type(exc).__name__})
        return interval
