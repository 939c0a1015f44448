"""The social value estimate on PostgreSQL: the value of hours and of the life satisfaction
change, the programme cost a board enters, the ratio, the assumptions, and `INPUTS` suppression."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Report
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.errors import Forbidden, Invalid
from referral_service.organisations.models import OrgKind
from referral_service.outcomes import service
from referral_service.outcomes.models import ProgrammeCost
from referral_service.principal import Principal
from tests.outcomes.report_rows import Q3, Area, at, evaluate, referral, score, table
from tests.outcomes.test_report_coproduction import coproduction_rows

SOCIAL_VALUE = "spis-social-value"


def with_life_satisfaction(session: Session, people: int) -> Area:
    """The co-production rows (15 hours given, 13 received) and `people` people whose ONS4
    life satisfaction rose by 2 points, followed up in August."""
    a = coproduction_rows(session)
    for i in range(people):
        ref = referral(session, a.p1, f"ls{i}", at("2026-03-01"), timebank=a.t1)
        score(session, ref, "ons4-life-satisfaction", 5, 7, at("2026-08-15"))
    return a


@pytest.fixture
def valued(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        return with_life_satisfaction(session, 8)


def set_cost(
    factory: sessionmaker[Session],
    settings: Settings,
    board: str,
    pence: int,
    period: tuple[date, date] = Q3,
    principal: Principal | None = None,
) -> None:
    with unit_of_work(factory) as session:
        ctx = Context(session, principal or Principal.spis(), settings)
        service.set_programme_cost(ctx, board, *period, pence, "Person/analyst-1")


def money(report: Report) -> dict[str, tuple[float | None, str | None]]:
    return {figure: value for (figure, _, _), value in table(report).items()}


def test_social_value_without_a_cost_has_no_ratio(
    valued: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, SOCIAL_VALUE, valued.board)
    assert money(report) == {
        "value-of-hours": (342.0, None),  # 28 h × £12.21 = £341.88
        "value-of-wellbeing": (208_000.0, None),  # 8 people × 2 points × £13,000
        "social-value": (208_342.0, None),
        "programme-cost": (None, None),  # not entered: empty, not suppressed
        "social-return": (None, None),
    }
    assert [c.stratifier.value for c in report.cells] == ["total"] * 5
    assumptions = {a.code: a.value for a in report.assumptions}
    assert assumptions["value-per-hour"] == "£12.21 (National Living Wage, April 2025)"
    assert assumptions["wellby-value"] == "£13,000"
    assert assumptions["wellby-price-year"] == "2019"
    assert assumptions["wellby-source"] == (
        "HM Treasury Green Book supplementary guidance: wellbeing (2021)"
    )
    assert assumptions["duration"] == "One year, with no discounting"
    assert "estimate" in assumptions["estimate"]
    assert "programme-cost" not in assumptions


def test_the_ratio_divides_by_the_cost_entered_for_exactly_the_period(
    valued: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    board = as_board(valued.board)
    set_cost(session_factory, settings, valued.board, 5_000_000, principal=board)
    set_cost(session_factory, settings, valued.board, 4_000_000, principal=board)  # replaces
    set_cost(
        session_factory, settings, valued.board, 1, period=(date(2026, 7, 1), date(2026, 12, 31))
    )
    report = evaluate(session_factory, settings, SOCIAL_VALUE, valued.board)
    assert money(report)["programme-cost"] == (40_000.0, None)
    assert money(report)["social-return"] == (5.21, None)  # 208,342 / 40,000
    with session_factory() as session:
        assert service.programme_cost(session, valued.board, *Q3) == 4_000_000
        row = session.scalar(select(ProgrammeCost).where(ProgrammeCost.period_end == Q3[1]))
        assert row is not None
        assert row.entered_by == "Person/analyst-1"
        assert (
            service.programme_cost(session, valued.board, date(2026, 7, 1), date(2026, 9, 29))
            is None
        )


def test_the_values_follow_the_settings(
    valued: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    changed = settings.model_copy(
        update={
            "social_value_per_hour_pence": 1000,
            "social_value_per_hour_basis": "a round figure",
            "wellby_value_pence": 1_000_050,
            "wellby_price_year": 2021,
        }
    )
    report = evaluate(session_factory, changed, SOCIAL_VALUE, valued.board)
    assert money(report)["value-of-hours"] == (280.0, None)
    assert money(report)["value-of-wellbeing"] == (160_008.0, None)
    assumptions = {a.code: a.value for a in report.assumptions}
    assert assumptions["value-per-hour"] == "£10 (a round figure)"
    assert assumptions["wellby-value"] == "£10,000.50"
    assert assumptions["wellby-price-year"] == "2021"


def test_a_part_resting_on_a_suppressed_figure_is_suppressed_and_so_is_the_ratio(
    session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with unit_of_work(session_factory) as session:
        board = with_life_satisfaction(session, 5).board
    set_cost(session_factory, settings, board, 4_000_000)
    assert money(evaluate(session_factory, settings, SOCIAL_VALUE, board)) == {
        "value-of-hours": (342.0, None),
        "value-of-wellbeing": (None, "inputs-suppressed"),  # 5 people
        "social-value": (None, "inputs-suppressed"),
        "programme-cost": (40_000.0, None),
        "social-return": (None, "inputs-suppressed"),
    }


def test_with_no_one_taking_part_there_is_nothing_to_value(
    valued: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(
        session_factory,
        settings,
        SOCIAL_VALUE,
        valued.board,
        period=(date(2025, 1, 1), date(2025, 3, 31)),
    )
    assert {value for value in money(report).values()} == {(None, None)}


def test_a_focused_report_shows_no_cost_or_ratio(
    valued: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    set_cost(session_factory, settings, valued.board, 4_000_000)
    focus = f"Organization/{valued.p1}"
    report = evaluate(session_factory, settings, SOCIAL_VALUE, valued.board, focus=focus)
    assert money(report) == {
        "value-of-hours": (342.0, None),
        "value-of-wellbeing": (208_000.0, None),
        "social-value": (208_342.0, None),
        "programme-cost": (None, None),
        "social-return": (None, None),
    }
    assert "whole programme" in {a.code: a.value for a in report.assumptions}["programme-cost"]
    t2 = evaluate(
        session_factory, settings, SOCIAL_VALUE, valued.board, focus=f"Organization/{valued.t2}"
    )
    assert money(t2)["value-of-hours"] == (None, None)  # no one taking part at Lewisham


def as_board(board: str) -> Principal:
    return Principal("analyst", board, OrgKind.HEALTHBOARD, frozenset())


def test_who_may_enter_a_cost_and_what_a_cost_is(
    valued: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    practice = Principal("gp", valued.p1, OrgKind.PRACTICE, frozenset())
    with pytest.raises(Forbidden):
        set_cost(session_factory, settings, valued.board, 100, principal=practice)
    for pence in (0, -5, 2**31):
        with pytest.raises(Invalid, match="programme cost"):
            set_cost(session_factory, settings, valued.board, pence)
    with pytest.raises(Invalid, match="before"):
        set_cost(session_factory, settings, valued.board, 100, period=(Q3[1], Q3[0]))
    with session_factory() as session:
        assert service.programme_cost(session, valued.board, *Q3) is None
