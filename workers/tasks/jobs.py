"""Each task: open a session, call one referral_service function, classify errors.

Job tasks take a job id only; the job row holds the ids it works on.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from celery import Task
from sqlalchemy.exc import InterfaceError, OperationalError

from referral_service.deliveries import sending
from referral_service.deliveries import sweep as delivery_sweep
from referral_service.jobs import service as jobs
from referral_service.jobs.producer import Producer
from referral_service.jobs.service import JobName
from referral_service.keys import service as _key_handlers  # noqa: F401 - registers handlers
from referral_service.outcomes import refresh as _outcome_handlers  # noqa: F401 - handler, triggers
from referral_service.outcomes import warm
from referral_service.routing import service as _routing_handlers  # noqa: F401 - registers handlers
from referral_service.routing import sla
from workers.app import app, settings
from workers.session import session_scope

log = logging.getLogger("spis.workers")
# The database or the network hiccuped: the same job will very likely work a little later.
TRANSIENT = (OperationalError, InterfaceError)
# Retry delays stay far below the Redis visibility timeout, so a waiting retry is never redelivered.
MAX_BACKOFF_S = 300


def _run(task: Task, job_id: str) -> None:
    try:
        with session_scope() as session:
            jobs.run(session, settings, job_id)
    except TRANSIENT as exc:
        delay = min(MAX_BACKOFF_S, 2**task.request.retries) + random.uniform(0, 1)  # noqa: S311 - jitter
        with session_scope() as session:
            jobs.record_transient_failure(session, job_id, type(exc).__name__, delay)
        raise task.retry(countdown=delay, max_retries=jobs.MAX_ATTEMPTS) from None
    except Exception as exc:
        # A bug, not the weather: retrying would fail the same way. Keep the row for an operator.
        with session_scope() as session:
            jobs.record_failure(session, job_id, type(exc).__name__)
        # No traceback or message in the log: driver messages can quote row values.
        log.error("job crashed", extra={"job_id": job_id, "error_type": type(exc).__name__})


@app.task(name=JobName.ROUTE_REFERRAL.value, bind=True)
def route_referral(self: Task, job_id: str) -> None:
    _run(self, job_id)


@app.task(name=JobName.REENCRYPT.value, bind=True)
def reencrypt(self: Task, job_id: str) -> None:
    _run(self, job_id)


@app.task(name=JobName.REFRESH_OUTCOMES.value, bind=True)
def refresh_outcomes(self: Task, job_id: str) -> None:
    _run(self, job_id)


@app.task(name=JobName.DELIVER.value, bind=True)
def deliver(self: Task, subscription_id: str) -> None:
    """Send a subscription's due deliveries in order (deliveries/sending.py). Its delivery rows
    are the outbox: a failure here leaves them pending for the sweep."""
    try:
        drained = sending.deliver(session_scope, settings, subscription_id)
    except TRANSIENT:
        delay = min(MAX_BACKOFF_S, 2**self.request.retries) + random.uniform(0, 1)  # noqa: S311 - jitter
        raise self.retry(countdown=delay, max_retries=jobs.MAX_ATTEMPTS) from None
    except Exception as exc:
        log.error(
            "delivery run crashed",
            extra={"subscription_id": subscription_id, "error_type": type(exc).__name__},
        )
        return
    if drained.more:
        Producer(settings).send(JobName.DELIVER.value, subscription_id)


@app.task(name="spis.sweep_deliveries")
def sweep_deliveries() -> dict[str, int]:
    """Subscriptions past their end off, heartbeats due added, and `spis.deliver` sent for every
    subscription whose head delivery is due (a retry, a lost message)."""
    swept = delivery_sweep.sweep(session_scope)
    due = [(JobName.DELIVER.value, sid) for sid in swept.due]
    sent = Producer(settings).send_all(due) if due else 0
    return {
        "due": len(swept.due),
        "sent": sent,
        "heartbeats": swept.heartbeats,
        "ended": swept.ended,
    }


@app.task(name="spis.relay_jobs")
def relay_jobs() -> int:
    """Send again what was never picked up (broker down at commit time, message lost): up to
    500 a run, in one round trip to Redis (`Producer.send_all`)."""
    producer = Producer(settings)
    with session_scope() as session:
        due = [(job.name, job.id) for job in jobs.due(session, settings.relay_after_s)]
    sent = producer.send_all(due)
    if due:
        log.info("relayed pending jobs", extra={"count": sent})
    return sent


@app.task(name="spis.sweep_broker_sla")
def sweep_broker_sla(as_of: str | None = None) -> dict[str, Any]:
    with session_scope() as session:
        return sla.sweep(session, settings, as_of)


@app.task(name="spis.warm_reports")
def warm_reports() -> dict[str, int]:
    """Compute again the cached outcome reports whose figures changed (outcomes/warm.py)."""
    done = warm.warm(session_scope, settings)
    if done.computed or done.forgotten:
        log.info(
            "outcome reports kept computed",
            extra={"computed": done.computed, "forgotten": done.forgotten},
        )
    return {"checked": done.checked, "computed": done.computed, "forgotten": done.forgotten}
