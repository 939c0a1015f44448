"""The broker SLA (DESIGN §3 step 3): an unanswered child Task is marked `reminder-due` after
`SPIS_BROKER_SLA` working days, then goes to the next time bank after the grace period. The mark
says a reminder is due; subscribers to the SLA reminder topic hear of it (deliveries/events.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from fhir_adapters import task as fhir_task
from referral_service.config import Settings
from referral_service.kit.clock import as_utc, utcnow
from referral_service.kit.refs import Ref
from referral_service.routing import service as routing
from referral_service.routing.rules import add_working_days
from referral_service.store import repository as store
from referral_service.store import service as resources
from referral_service.store.repository import TokenMatch

# Marked already, by this version or one before the rename: a Task stamped `reminder-sent` is in
# its grace period. Stamping it again would count a second reminder for the same silence and put
# off its re-routing by one more sweep.
REMINDED = frozenset({fhir_task.REMINDER_DUE, fhir_task.LEGACY_REMINDER_SENT})
NO_ANSWER = "No answer within the time allowed; referred onwards"


def sweep(session: Session, settings: Settings, as_of: str | None = None) -> dict[str, int]:
    """`as_of` (ISO 8601) lets tests and operators run the sweep for another moment."""
    now = as_utc(datetime.fromisoformat(as_of)) if as_of else utcnow()
    ctx = routing.system_context(session, settings)
    query = [[TokenMatch("status", "requested")], [TokenMatch("intent", "order")]]
    counts = {"reminded": 0, "rerouted": 0}
    for row in store.search(session, ctx.principal, "Task", query, limit=10_000, offset=0):
        task = resources.as_dict(row)
        parent = Ref.of((task.get("partOf") or [{}])[0])
        if parent is None:
            continue  # a referral Task, not a time bank's child Task
        due = add_working_days(_authored(task), settings.broker_sla)
        if now < due:
            continue
        if not REMINDED & fhir_task.business_status_codes(task):
            resources.update(ctx, row, fhir_task.reminder_due(task, settings.broker_sla))
            counts["reminded"] += 1
        elif now >= add_working_days(due, settings.broker_reminder_grace_working_days):
            task = fhir_task.cancelled(task, NO_ANSWER)
            resources.update(ctx, row, task)
            routing.end_access(ctx, task)
            routing.request_routing(session, parent.id)
            counts["rerouted"] += 1
    return counts


def _authored(task: dict[str, Any]) -> datetime:
    return as_utc(datetime.fromisoformat(task["authoredOn"].replace("Z", "+00:00")))
