"""What the independent tests ask of the product, through its public entry points only: the
refresh the worker runs (the `spis.refresh_outcomes` jobs the triggers queued), `spis outcomes
rebuild`, the outcome rows it keeps (read back as DataFrames to compare), `outcomes.service.
evaluate` as the board, and `$evaluate-measure` over FHIR. Nothing here computes a figure."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Report
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.jobs import service as jobs
from referral_service.jobs.service import JobName
from referral_service.organisations.models import OrgKind
from referral_service.outcomes.models import (
    OutcomeActivity,
    OutcomeDecline,
    OutcomePartner,
    OutcomeScore,
    ReferralOutcome,
)
from referral_service.outcomes.rebuild import rebuild as rebuild_rows
from referral_service.outcomes.service import evaluate, set_programme_cost
from referral_service.principal import Principal
from tests.fixtures.systems import TestSystem


def refresh(session_factory: sessionmaker[Session], settings: Settings) -> int:
    """Run every queued outcome refresh, each in its own transaction, as the worker does; how
    many ran."""
    ran = 0
    while True:
        with session_factory() as session:
            queued = [
                j.id for j in jobs.due(session, -3600) if j.name == JobName.REFRESH_OUTCOMES.value
            ]
        if not queued:
            return ran
        for job_id in queued:
            with session_factory() as session, session.begin():
                ran += jobs.run(session, settings, job_id)


def rebuild(session_factory: sessionmaker[Session], settings: Settings) -> None:
    done = rebuild_rows(session_factory, settings)
    assert done.failed == []


TABLES: dict[str, tuple[type[Any], list[str]]] = {
    "referrals": (ReferralOutcome, ["referral_id"]),
    "declines": (OutcomeDecline, ["referral_id", "task_id"]),
    "activity": (OutcomeActivity, ["referral_id", "month"]),
    "partners": (OutcomePartner, ["referral_id", "month", "partner_member_id"]),
    "scores": (OutcomeScore, ["referral_id", "scale"]),
}


def rows(session: Session) -> dict[str, pd.DataFrame]:
    """The product's outcome rows, one DataFrame per table."""
    found = {}
    for name, (model, _) in TABLES.items():
        columns = [c.name for c in model.__table__.columns if c.name != "refreshed_at"]
        found[name] = pd.DataFrame(
            [{c: getattr(r, c) for c in columns} for r in session.scalars(select(model))],
            columns=columns,
        )
    return found


def period(start: date, end: date) -> dict[str, str]:
    return {"periodStart": start.isoformat(), "periodEnd": end.isoformat()}


def board_principal(board: TestSystem) -> Principal:
    """The board's client as the API sees it once its token is checked."""
    return Principal(board.client_id, board.org_id, OrgKind.HEALTHBOARD,
                     frozenset(board.scopes.split()))  # fmt: skip


def report(
    sessions: sessionmaker[Session],
    settings: Settings,
    measure_id: str,
    start: date,
    end: date,
    board: TestSystem,
    focus: str | None = None,
) -> Report:
    """`outcomes.service.evaluate`, as the board, committed (it records an audit event)."""
    with unit_of_work(sessions) as session:
        ctx = Context(session, board_principal(board), settings)
        return evaluate(ctx, measure_id, start, end, board.org_id, focus)


def set_cost(
    sessions: sessionmaker[Session], settings: Settings, board: TestSystem, start: date,
    end: date, pence: int,
) -> None:  # fmt: skip
    with unit_of_work(sessions) as session:
        ctx = Context(session, board_principal(board), settings)
        set_programme_cost(ctx, board.org_id, start, end, pence, "test")
