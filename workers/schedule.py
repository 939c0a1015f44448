"""The beat schedule, as data."""

from __future__ import annotations

from typing import Any

from referral_service.config import Settings


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "relay-pending-jobs": {"task": "spis.relay_jobs", "schedule": settings.relay_interval_s},
        "broker-sla": {"task": "spis.sweep_broker_sla", "schedule": settings.sla_sweep_interval_s},
        "sweep-deliveries": {
            "task": "spis.sweep_deliveries",
            "schedule": settings.delivery_sweep_interval_s,
        },
        "warm-reports": {
            "task": "spis.warm_reports",
            "schedule": settings.outcome_report_warm_interval_s,
        },
    }
