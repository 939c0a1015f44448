"""Who may pull a report, what a report is refused for (measure, period, focus), and the audit
event each report pulled leaves."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.db import unit_of_work
from referral_service.errors import Forbidden, Invalid, NotFound, ServiceError
from referral_service.organisations.models import OrgKind
from referral_service.outcomes.service import check_period
from referral_service.principal import Principal
from tests.outcomes.report_rows import Area, area, at, evaluate, referral, table

FUNNEL = "spis-referral-funnel"


def as_org(org_id: str, kind: OrgKind) -> Principal:
    return Principal(f"client-{org_id}", org_id, kind, frozenset({"system/MeasureReport.rs"}))


@pytest.fixture
def board_area(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        a = area(session)
        for i in range(9):
            referral(session, a.p1, f"p{i}", at("2026-07-10"), timebank=a.t1)
        return a


def exports(factory: sessionmaker[Session]) -> list[AuditEvent]:
    with factory() as session:
        query = select(AuditEvent).where(AuditEvent.kind == "export").order_by(AuditEvent.seq)
        return list(session.scalars(query))


def test_a_board_pulls_its_own_report_and_the_pull_is_audited(
    board_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = board_area
    principal = as_org(a.board, OrgKind.HEALTHBOARD)
    focus = f"Organization/{a.p1}"
    report = evaluate(session_factory, settings, FUNNEL, a.board, principal=principal, focus=focus)
    assert table(report)["received", "total", ""] == (10.0, None)
    [event] = exports(session_factory)
    assert (event.action, event.outcome, event.patient_id) == ("E", 0, None)
    assert (event.actor_client_id, event.actor_org_id) == (f"client-{a.board}", a.board)
    assert event.tenant_org_id == a.board
    assert event.entities.split() == [f"Organization/{a.board}", f"Measure/{FUNNEL}", focus]
    assert event.purpose == "HOPERAT"
    assert event.detail == f"outcome report {FUNNEL} 2026-07-01..2026-09-30"

    evaluate(session_factory, settings, "spis-coproduction", a.board)  # SPIS, e.g. the CLI
    second = exports(session_factory)[-1]
    assert (second.actor_org_id, second.tenant_org_id) == ("spis", a.board)
    assert second.entities.split() == [f"Organization/{a.board}", "Measure/spis-coproduction"]


@pytest.mark.parametrize(
    ("who", "error"),
    [("p1", Forbidden), ("t1", Forbidden), ("other_board", NotFound)],
)
def test_practices_time_banks_and_other_boards_are_refused(
    board_area: Area,
    session_factory: sessionmaker[Session],
    settings: Settings,
    who: str,
    error: type[ServiceError],
) -> None:
    kinds = {"p1": OrgKind.PRACTICE, "t1": OrgKind.TIMEBANK, "other_board": OrgKind.HEALTHBOARD}
    principal = as_org(getattr(board_area, who), kinds[who])
    with pytest.raises(error) as refused:
        evaluate(session_factory, settings, FUNNEL, board_area.board, principal=principal)
    if error is NotFound:  # exactly as for a board that does not exist
        with pytest.raises(NotFound) as unknown:
            evaluate(session_factory, settings, FUNNEL, "no-such-board")
        assert refused.value.message == unknown.value.message
    assert exports(session_factory) == []


def test_a_board_id_must_be_a_health_board(
    board_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with pytest.raises(NotFound, match="No health board"):
        evaluate(session_factory, settings, FUNNEL, board_area.p1)


def test_an_unknown_measure_is_not_found(
    board_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with pytest.raises(NotFound, match="No Measure"):
        evaluate(session_factory, settings, "spis-nothing", board_area.board)
    assert exports(session_factory) == []


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        ("2026-09-30", "2026-07-01", "periodEnd is before periodStart"),
        ("2021-07-01", "2026-07-01", "at most 5 years"),
        ("2024-02-29", "2029-03-01", "at most 5 years"),
    ],
)
def test_a_period_must_run_forwards_and_last_at_most_five_years(
    board_area: Area,
    session_factory: sessionmaker[Session],
    settings: Settings,
    start: str,
    end: str,
    problem: str,
) -> None:
    period = (date.fromisoformat(start), date.fromisoformat(end))
    with pytest.raises(Invalid, match=problem):
        evaluate(session_factory, settings, FUNNEL, board_area.board, period=period)


@pytest.mark.parametrize(
    "period",
    [("2021-07-11", "2026-07-10"), ("2026-07-10", "2026-07-10"), ("2021-08-01", "2026-07-31")],
)
def test_one_day_to_five_whole_years_are_fine(
    board_area: Area,
    session_factory: sessionmaker[Session],
    settings: Settings,
    period: tuple[str, str],
) -> None:
    days = (date.fromisoformat(period[0]), date.fromisoformat(period[1]))
    report = evaluate(session_factory, settings, FUNNEL, board_area.board, period=days)
    assert table(report)["received", "total", ""] == (10.0, None)


@pytest.mark.parametrize(
    "focus",
    [
        "p3",  # the other board's practice
        "board",  # not a practice or a time bank
        "Organization/nope",
        "Patient/123",
        "practice P11111",
    ],
)
def test_focus_must_be_a_practice_or_time_bank_of_the_board(
    board_area: Area, session_factory: sessionmaker[Session], settings: Settings, focus: str
) -> None:
    a = board_area
    if focus in ("p3", "board"):
        focus = f"Organization/{getattr(a, focus)}"
    with pytest.raises(Invalid) as refused:
        evaluate(session_factory, settings, FUNNEL, a.board, focus=focus)
    assert refused.value.message == (
        "focus must be Organization/<id> of a practice or a time bank in the board's area"
    )
    assert refused.value.expression == ["focus"]


def test_five_years_from_the_29th_of_february_end_on_the_28th() -> None:
    check_period(date(2024, 2, 29), date(2029, 2, 28))
    with pytest.raises(Invalid):
        check_period(date(2024, 2, 29), date(2029, 3, 1))
