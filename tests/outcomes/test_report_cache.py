"""The report cache: a report is served again, as it was computed, until something it rests on
changes, and then it is computed again. Every test first plants a marked copy in the cache (a
cell's value changed to -1) to tell a served report from a computed one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Report
from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import unit_of_work
from referral_service.kit.clock import utcnow
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import set_board
from referral_service.outcomes import eligibility, report_cache, repository, service, warm
from referral_service.outcomes.models import BoardVersion, CachedReport, ReferralOutcome
from referral_service.outcomes.repository import PatientRows
from referral_service.principal import Principal
from tests.outcomes.report_rows import Q3, Area, at, evaluate, org
from tests.outcomes.test_report_social_value import set_cost, with_life_satisfaction
from workers.schedule import beat_schedule

MEASURES = (
    "spis-referral-funnel",
    "spis-coproduction",
    "spis-wellbeing-change",
    "spis-social-value",
)
FUNNEL = MEASURES[0]
MARK = -1.0


@pytest.fixture
def board(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        return with_life_satisfaction(session, 8)


def cached_rows(factory: sessionmaker[Session]) -> list[CachedReport]:
    with factory() as session:
        return list(session.scalars(select(CachedReport)))


def plant_mark(factory: sessionmaker[Session], measure: str, board: str | None = None) -> None:
    """Replace the cached report's first shown value by MARK (the only one of `measure`, or
    the board's)."""
    query = select(CachedReport).where(CachedReport.measure == measure)
    if board is not None:
        query = query.where(CachedReport.board_id == board)
    with unit_of_work(factory) as session:
        row = session.scalars(query).one()
        cells, assumptions = report_cache.decode(row.cells)
        index = next(i for i, c in enumerate(cells) if c.value is not None)
        marked = (*cells[:index], replace(cells[index], value=MARK), *cells[index + 1 :])
        row.cells = report_cache.encode((marked, assumptions))


def served(report: Report) -> bool:
    return any(cell.value == MARK for cell in report.cells)


@pytest.mark.parametrize("measure", MEASURES)
def test_a_report_is_served_as_computed_until_the_rows_change(
    session_factory: sessionmaker[Session], settings: Settings, board: Area, measure: str
) -> None:
    first = evaluate(session_factory, settings, measure, board.board)
    [row] = cached_rows(session_factory)
    assert (row.board_id, row.measure, row.period_start, row.period_end, row.focus) == (
        board.board, measure, *Q3, "",
    )  # fmt: skip
    assert row.version == 0  # the test's rows were inserted directly, as no writer does
    again = evaluate(session_factory, settings, measure, board.board)
    assert again.cells == first.cells
    assert again.assumptions == first.assumptions

    plant_mark(session_factory, measure)
    assert served(evaluate(session_factory, settings, measure, board.board))

    with unit_of_work(session_factory) as session:
        repository.rows_changed(session, board.p2)
    fresh = evaluate(session_factory, settings, measure, board.board)
    assert not served(fresh)
    assert fresh.cells == first.cells
    [row] = cached_rows(session_factory)
    assert row.version == 1


def test_the_cache_holds_published_cells_only(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    for measure in MEASURES:
        evaluate(session_factory, settings, measure, board.board)
    with session_factory() as session:
        patients = set(session.scalars(select(ReferralOutcome.patient_id)))
        referrals = set(session.scalars(select(ReferralOutcome.referral_id)))
    assert len(patients) > 10
    for row in cached_rows(session_factory):
        text = row.cells.decode()
        payload = orjson.loads(row.cells)
        assert set(payload) == {"cells", "assumptions"}
        strings = {v for cell in payload["cells"] for v in cell if isinstance(v, str)}
        assert not strings & (patients | referrals), text


def entered_cost(factory: sessionmaker[Session], settings: Settings, a: Area) -> None:
    set_cost(factory, settings, a.board, 50_000_00)


def moved_practice(factory: sessionmaker[Session], settings: Settings, a: Area) -> None:
    moved_practice_out(factory, a.p2)


def time_bank_joined(factory: sessionmaker[Session], settings: Settings, a: Area) -> None:
    with unit_of_work(factory) as session:
        org(session, OrgKind.TIMEBANK, "Deptford Time Bank", None, a.board)


def excluded_person(factory: sessionmaker[Session], settings: Settings, a: Area) -> None:
    with unit_of_work(factory) as session:
        patient = session.scalars(
            select(ReferralOutcome.patient_id).where(ReferralOutcome.practice_id == a.p1)
        ).first()
        assert patient is not None
        assert eligibility.exclude(Context(session, Principal.spis(), settings), a.p1, patient)


def refreshed_person(factory: sessionmaker[Session], settings: Settings, a: Area) -> None:
    """As a refresh writes a patient's rows: a new referral received in August."""
    new = ReferralOutcome(
        referral_id="task-new", practice_id=a.p1, patient_id="newcomer", timebank_id=None,
        status="requested", received_at=at("2026-08-20"), routed_at=None, accepted_at=None,
        first_exchange_on=None, completed_at=None, rejected_reason=None, member_id=None,
        enrolled_at=None, first_gift_on=None, eligible=True,
    )  # fmt: skip
    with unit_of_work(factory) as session:
        repository.replace_patient_rows(
            session, a.p1, "newcomer", PatientRows([new], [], [], [], [])
        )


Change = Callable[[sessionmaker[Session], Settings, Area], None]


@pytest.mark.parametrize(
    ("change", "measure"),
    [
        (refreshed_person, FUNNEL),
        (excluded_person, "spis-coproduction"),
        (moved_practice, FUNNEL),
        (time_bank_joined, "spis-wellbeing-change"),
        (entered_cost, "spis-social-value"),
    ],
)
def test_a_change_the_report_rests_on_computes_it_again(
    session_factory: sessionmaker[Session],
    settings: Settings,
    board: Area,
    change: Change,
    measure: str,
) -> None:
    evaluate(session_factory, settings, measure, board.board)
    plant_mark(session_factory, measure)
    assert served(evaluate(session_factory, settings, measure, board.board))
    change(session_factory, settings, board)
    assert not served(evaluate(session_factory, settings, measure, board.board))


def test_other_settings_compute_it_again(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    measure = "spis-wellbeing-change"
    evaluate(session_factory, settings, measure, board.board)
    plant_mark(session_factory, measure)
    thresholds = {**settings.outcome_meaningful_change, "ons4-life-satisfaction": 3.0}
    other = settings.model_copy(update={"outcome_meaningful_change": thresholds})
    assert not served(evaluate(session_factory, other, measure, board.board))
    plant_mark(session_factory, measure)  # the report as the other settings compute it
    assert served(evaluate(session_factory, other, measure, board.board))
    assert not served(evaluate(session_factory, settings, measure, board.board))


def test_each_report_is_cached_on_its_own(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    august = (date(2026, 8, 1), date(2026, 8, 31))
    evaluate(session_factory, settings, FUNNEL, board.board)
    evaluate(session_factory, settings, FUNNEL, board.board, period=august)
    evaluate(session_factory, settings, FUNNEL, board.board, focus=f"Organization/{board.p1}")
    evaluate(session_factory, settings, FUNNEL, board.other_board)
    kept = {(r.board_id, r.period_start, r.focus) for r in cached_rows(session_factory)}
    assert kept == {
        (board.board, Q3[0], ""),
        (board.board, august[0], ""),
        (board.board, Q3[0], f"Organization/{board.p1}"),
        (board.other_board, Q3[0], ""),
    }
    for row in cached_rows(session_factory):
        assert row.version == 0


def test_rows_changed_moves_on_the_practice_board_only(
    session_factory: sessionmaker[Session], board: Area
) -> None:
    def versions() -> dict[str, int]:
        with session_factory() as session:
            return {v.board_id: v.version for v in session.scalars(select(BoardVersion))}

    start = versions()
    with unit_of_work(session_factory) as session:
        repository.rows_changed(session, board.p1)
        repository.rows_changed(session, board.p3)
        unplaced = org(session, OrgKind.PRACTICE, "Nowhere Surgery", "P99999")
        repository.rows_changed(session, unplaced)
    assert versions() == {
        board.board: start.get(board.board, 0) + 1,
        board.other_board: start.get(board.other_board, 0) + 1,
    }
    with session_factory() as session, session.begin():  # rolled back: moves nothing on
        repository.rows_changed(session, board.p1)
        session.rollback()
    assert versions()[board.board] == start.get(board.board, 0) + 1


def test_two_pulls_of_one_report_at_once_both_answer(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    """The second to cache the same report waits for the first to commit, then keeps its copy
    and answers with its own figures: no error for either."""
    first_session = session_factory()
    first_session.begin()
    first = service.evaluate(
        Context(first_session, Principal.spis(), settings), FUNNEL, *Q3, board.board
    )
    answers: list[Report] = []
    second = threading.Thread(
        target=lambda: answers.append(evaluate(session_factory, settings, FUNNEL, board.board))
    )
    second.start()
    second.join(timeout=1)
    assert second.is_alive()  # waiting on the first's uncommitted copy
    first_session.commit()
    first_session.close()
    second.join(timeout=30)
    assert [a.cells for a in answers] == [first.cells]
    assert len(cached_rows(session_factory)) == 1


# --- the workers keep pulled reports computed (warm.py) -----------------------------------------


def run_warm(factory: sessionmaker[Session], settings: Settings, **kw: Any) -> warm.Warmed:
    return warm.warm(lambda: unit_of_work(factory), settings, **kw)


def audit_count(factory: sessionmaker[Session]) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def test_the_workers_compute_again_what_changed_and_only_that(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    for measure in MEASURES:
        evaluate(session_factory, settings, measure, board.board)
        plant_mark(session_factory, measure)
    evaluate(session_factory, settings, FUNNEL, board.other_board)
    pulled = {(r.board_id, r.measure): r.pulled_at for r in cached_rows(session_factory)}
    audited = audit_count(session_factory)

    assert run_warm(session_factory, settings) == warm.Warmed(checked=5, computed=0)
    assert served(evaluate(session_factory, settings, FUNNEL, board.board))

    with unit_of_work(session_factory) as session:
        repository.rows_changed(session, board.p1)
    assert run_warm(session_factory, settings) == warm.Warmed(checked=5, computed=4)
    audited_after = audit_count(session_factory)
    for measure in MEASURES:  # computed by the workers, then served as they left it
        plant_mark(session_factory, measure, board.board)
        assert served(evaluate(session_factory, settings, measure, board.board))
    assert audited_after == audited + 1  # the one pull above; the workers pulled nothing
    rows = {(r.board_id, r.measure): r for r in cached_rows(session_factory)}
    assert {k: r.pulled_at for k, r in rows.items()} == pulled
    assert {r.version for k, r in rows.items() if k[0] == board.board} == {1}


def test_the_workers_forget_reports_no_one_pulls(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    evaluate(session_factory, settings, FUNNEL, board.board)
    evaluate(session_factory, settings, FUNNEL, board.other_board)
    later = utcnow() + timedelta(days=settings.outcome_report_keep_days, minutes=1)
    with unit_of_work(session_factory) as session:
        session.execute(
            update(CachedReport)
            .where(CachedReport.board_id == board.other_board)
            .values(pulled_at=later - timedelta(days=1))
        )
    assert run_warm(session_factory, settings, now=later) == warm.Warmed(checked=1, forgotten=1)
    assert [r.board_id for r in cached_rows(session_factory)] == [board.other_board]


def test_the_workers_forget_a_report_that_can_no_longer_be_asked_for(
    session_factory: sessionmaker[Session], settings: Settings, board: Area
) -> None:
    focus = f"Organization/{board.p1}"
    evaluate(session_factory, settings, FUNNEL, board.board, focus=focus)
    evaluate(session_factory, settings, FUNNEL, board.board)
    moved_practice_out(session_factory, board.p1)
    assert run_warm(session_factory, settings) == warm.Warmed(checked=2, computed=1, forgotten=1)
    assert [r.focus for r in cached_rows(session_factory)] == [""]


def moved_practice_out(factory: sessionmaker[Session], practice: str) -> None:
    with unit_of_work(factory) as session:
        set_board(session, practice, None)


def test_the_beat_runs_the_workers_keeping_reports_computed(settings: Settings) -> None:
    other = settings.model_copy(update={"outcome_report_warm_interval_s": 15.0})
    entry = beat_schedule(other)["warm-reports"]
    assert entry == {"task": "spis.warm_reports", "schedule": 15.0}
