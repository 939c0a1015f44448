"""The broker SLA (DESIGN §3 step 3): an unanswered child Task gets a reminder after
`SPIS_BROKER_SLA` working days, then goes to the next time bank after the grace period."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from fhir_adapters import referral as fhir_referral
from fhir_adapters.rules import reference
from referral_service.config import Settings
from referral_service.kit.clock import as_utc, utcnow
from referral_service.routing import service as routing
from referral_service.routing.rules import add_working_days
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.repository import TokenMatch

REMINDED = "reminder-sent"


def sweep(session: Session, settings: Settings, as_of: str | None = None) -> dict[str, int]:
    """`as_of` (ISO 8601) lets tests and operators run the sweep for another moment."""
    now = as_utc(datetime.fromisoformat(as_of)) if as_of else utcnow()
    ctx = routing.system_context(session, settings)
    query = [[TokenMatch("status", "requested")], [TokenMatch("intent", "order")]]
    counts = {"reminded": 0, "rerouted": 0}
    for row in store.search(session, ctx.principal, "Task", query, limit=10_000, offset=0):
        task = resources.as_dict(row)
        parent = reference((task.get("partOf") or [{}])[0])
        if not parent:
            continue  # a referral Task, not a time bank's child Task
        authored = as_utc(datetime.fromisoformat(task["authoredOn"].replace("Z", "+00:00")))
        due = add_working_days(authored, settings.broker_sla)
        if now < due:
            continue
        if not _reminded(task):
            task["businessStatus"] = fhir_referral.business_status(
                REMINDED, f"No answer within {settings.broker_sla} working days: reminder sent"
            )
            resources.update(ctx, row, task)
            counts["reminded"] += 1
        elif now >= add_working_days(due, settings.broker_reminder_grace_working_days):
            task["status"] = "cancelled"
            task["statusReason"] = {"text": "No answer within the time allowed; referred onwards"}
            resources.update(ctx, row, task)
            routing.end_access(ctx, task)
            routing.request_routing(session, parent.partition("/")[2])
            counts["rerouted"] += 1
    return counts


def _reminded(task: dict[str, object]) -> bool:
    status = task.get("businessStatus") or {}
    codings = status.get("coding", []) if isinstance(status, dict) else []
    return any(c.get("code") == REMINDED for c in codings)
