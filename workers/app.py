"""The Celery app. Shares configuration with referral_service through Settings.

Reliability (security.md §6): acknowledge late, re-queue when a worker dies mid-job, prefetch one
message at a time. Jobs are database rows first, so a lost message only delays a job: the relay
sends pending rows again.
"""

from __future__ import annotations

import logging.config
from typing import Any

from celery import Celery, signals

from referral_service.config import get_settings
from referral_service.health.probes import BEAT_MAX_INTERVAL_S
from referral_service.jobs.producer import celery_app
from referral_service.logs import LOG_CONFIG
from workers import broker
from workers.schedule import beat_schedule

logging.config.dictConfig(LOG_CONFIG)


def _spis_logging(loglevel: int | None = None, **_: Any) -> None:
    """Celery's own logging set-up would print task failures with the exception's message and
    a full traceback: keep SPIS's (logs.py), at the level of the worker's command line."""
    logging.config.dictConfig(LOG_CONFIG)
    logging.getLogger().setLevel(loglevel or logging.WARNING)


signals.setup_logging.connect(_spis_logging)


settings = get_settings()
app: Celery = celery_app(settings, "spis")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    # Reconnect to a lost broker for as long as it takes: Celery's default gives up after 100
    # tries (about 50 minutes at up to 30 s apart) and the worker exits, which a worker run by
    # hand or by a plain supervisor would not come back from. Work waits in the database
    # meanwhile (jobs and deliveries are rows the relay and the sweep send again).
    broker_connection_max_retries=None,
    beat_schedule=beat_schedule(settings),
    # Wake at least every BEAT_MAX_INTERVAL_S and touch the heartbeat `spis health beat` reads.
    beat_scheduler="workers.beat:HeartbeatScheduler",
    beat_max_interval=BEAT_MAX_INTERVAL_S,
    # workers.sealer: the audit sealer's thread in each process that runs tasks.
    include=["workers.tasks.jobs", "workers.sealer"],
)
if settings.broker_url.startswith("redis://"):
    # kombu's Redis transport with a guard that keeps the worker up through a broker outage.
    app.conf.broker_transport = broker.TRANSPORT
