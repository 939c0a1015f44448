"""Sending job messages to the Celery broker by task name (this package never imports `workers`)."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from referral_service.config import Settings
from referral_service.jobs import disk_broker

log = logging.getLogger("spis.jobs")


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_url.startswith("filesystem://"):
        folder = (settings.var_dir / "broker").resolve()
        (folder / "control").mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.01,
        }
    # Longer than any job can take, so Redis never redelivers a job that is still running.
    return {"visibility_timeout": 3600}


def celery_app(settings: Settings, name: str) -> Celery:
    app = Celery(name, broker=settings.broker_url)
    if settings.broker_url.startswith("filesystem://"):
        (settings.var_dir / "broker").mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport = disk_broker.TRANSPORT  # atomic hand-offs (see disk_broker)
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
    )
    return app


class Producer:
    """Publishes `name(job_id)`; a failure is logged and left to the relay, never raised."""

    def __init__(self, settings: Settings) -> None:
        self.app = celery_app(settings, "spis-producer")

    def send(self, name: str, job_id: str) -> bool:
        try:
            self.app.send_task(name, args=[job_id], retry=False)
        except Exception as exc:
            log.warning(
                "job not sent; the relay will retry",
                extra={"job_id": job_id, "error": type(exc).__name__},
            )
            return False
        return True
