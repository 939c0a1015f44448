"""What the independent tests ask of the product, through its public entry points only: the
refresh the worker runs (the `spis.refresh_outcomes` jobs the triggers queued), `spis outcomes
rebuild`, the outcome rows it keeps (read back as DataFrames to compare), `outcomes.service.
evaluate` as the board, and `$evaluate-measure` over FHIR. Nothing here computes a figure."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Cell, Report, Stratifier, Suppression
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
from tests.fixtures.systems import TestSystem, bearer


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


def fhir_report(
    client: TestClient, headers: dict[str, str], measure_id: str, start: date, end: date,
    *, csv: bool = False, subject: str | None = None,
) -> str:  # fmt: skip
    """`GET /fhir/Measure/<id>/$evaluate-measure` as the board: the MeasureReport JSON or CSV."""
    params = period(start, end) | ({"subject": subject} if subject else {})
    if csv:
        params["_format"] = "csv"
    answer = client.get(f"/fhir/Measure/{measure_id}/$evaluate-measure", params=params,
                        headers=headers)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.text


def csv_cells(text: str) -> list[Cell]:
    """The report's cells as the CSV gives them (assumption rows aside)."""
    found = []
    for row in csv.DictReader(io.StringIO(text)):
        if row["figure"].startswith("assumption:"):
            continue
        hidden = row["suppressed"].removeprefix("masked: ")
        found.append(
            Cell(
                row["figure"],
                Stratifier(row["stratifier"]),
                row["stratum"],
                row["stratum_label"],
                _number(row["value"]),
                _number(row["low"]),
                _number(row["high"]),
                int(row["n"]) if row["n"] else None,
                Suppression(hidden) if hidden else None,
            )
        )
    return found


def _number(text: str) -> float | None:
    return float(text) if text else None


def fhir_totals(
    client: TestClient, board: TestSystem, periods: dict[str, tuple[Any, date, date, str]]
) -> dict[str, float | None]:
    """Per named report, the total of one count figure, read off the MeasureReport's group."""
    headers = bearer(client, board)
    found: dict[str, float | None] = {}
    for name, (measure, start, end, figure) in periods.items():
        report = json.loads(fhir_report(client, headers, measure.id, start, end))
        group = next(g for g in report["group"] if g["code"]["coding"][0]["code"] == figure)
        found[name] = group["population"][0].get("count")
    return found
