"""The Celery app. Shares configuration with referral_service through Settings.

Reliability settings follow DESIGN §12 / security.md §6: late acknowledgement, re-queue when a
worker dies, one message prefetched at a time.
"""

from __future__ import annotations

from celery import Celery

from referral_service.config import Settings, get_settings


def broker_transport_options(settings: Settings) -> dict[str, object]:
    if settings.broker_url.startswith("filesystem://"):
        folder = str(settings.var_dir / "broker")
        return {"data_folder_in": folder, "data_folder_out": folder, "polling_interval": 0.01}
    return {"visibility_timeout": 3600}


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    if settings.broker_url.startswith("filesystem://"):
        (settings.var_dir / "broker").mkdir(parents=True, exist_ok=True)
    app = Celery("spis", broker=settings.broker_url, include=[])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        worker_hijack_root_logger=False,
    )
    return app


app = create_celery()
