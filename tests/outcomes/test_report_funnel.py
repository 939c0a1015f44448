"""The referral funnel on PostgreSQL, from outcome rows inserted directly: every figure on a
small data set whose values are worked out by hand below, the strata, the cohort's edges (dates,
eligibility, a person counted once, the board's area as it is now) and focus."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Stratifier
from referral_service.config import Settings
from referral_service.db import unit_of_work
from referral_service.organisations.service import set_board
from referral_service.outcomes.models import ReferralOutcome
from tests.outcomes.report_rows import Area, area, at, decline, evaluate, keys, referral, table

FUNNEL = "spis-referral-funnel"


def funnel_rows(session: Session) -> Area:
    """Hill Surgery (P1): a0..a9 referred in July to Catford (T1), accepted after 1..10 days;
    a0..a7 had their first exchange 3, 5, .. 17 days after referral and completed. a0 was
    referred again in August (to Lewisham): not counted again.

    Vale Practice (P2): b0..b7 referred in August to Lewisham (T2), accepted after 2 days
    (b0 was declined by Catford first); b8 routed to Lewisham, declined, then rejected by SPIS
    (no time bank); b9 rejected (consent), b10 rejected (no address), neither routed; d3 at the
    first instant of the period and d2 at the last, still waiting.

    Left out: a referral without secondary-use consent, one a second before the period and one
    at the first instant after it, and eight referrals of the other board's practice."""
    a = area(session)
    for i in range(10):
        received = at(f"2026-07-{i + 1:02d}")
        exchanged = i < 8
        first = referral(
            session, a.p1, f"a{i}", received,
            timebank=a.t1, status="completed" if exchanged else "accepted",
            routed=received + timedelta(hours=1), accepted=received + timedelta(days=i + 1),
            first_exchange=(received + timedelta(days=2 * i + 3)).date() if exchanged else None,
            completed=at("2026-09-20") if exchanged else None,
        )  # fmt: skip
        assert first
    again = referral(
        session, a.p1, "a0", at("2026-08-05"), timebank=a.t2, status="accepted",
        routed=at("2026-08-05", 10), accepted=at("2026-08-06"),
    )  # fmt: skip
    decline(session, again, a.t1, "outside-catchment")
    for i in range(8):
        received = at(f"2026-08-{i + 1:02d}", 10)
        b = referral(
            session, a.p2, f"b{i}", received, timebank=a.t2, status="accepted",
            routed=received, accepted=received + timedelta(days=2),
        )  # fmt: skip
        if i == 0:
            decline(session, b, a.t1, "outside-catchment")
    b8 = referral(
        session, a.p2, "b8", at("2026-08-09", 10), timebank=a.t2, status="rejected",
        routed=at("2026-08-09", 11), rejected_reason="no-time-bank",
    )  # fmt: skip
    decline(session, b8, a.t2, "no-capacity")
    referral(
        session, a.p2, "b9", at("2026-08-10"), status="rejected", rejected_reason="consent-denies"
    )
    referral(
        session, a.p2, "b10", at("2026-08-11"), status="rejected", rejected_reason="no-address"
    )
    referral(session, a.p2, "d3", at("2026-07-01", 0))
    referral(session, a.p2, "d2", at("2026-09-30", 0) + timedelta(hours=23, minutes=59, seconds=59))
    referral(session, a.p1, "c0", at("2026-07-03"), timebank=a.t1, eligible=False,
             routed=at("2026-07-03"), accepted=at("2026-07-04"))  # fmt: skip
    referral(session, a.p1, "d0", at("2026-07-01", 0) - timedelta(seconds=1))
    referral(session, a.p1, "d1", at("2026-10-01", 0))
    for i in range(8):
        referral(session, a.p3, f"e{i}", at("2026-07-15"), timebank=a.t1, accepted=at("2026-07-16"))
    return a


@pytest.fixture
def funnel_area(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        return funnel_rows(session)


def test_every_funnel_figure_of_the_board(
    funnel_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, FUNNEL, funnel_area.board)
    cells = table(report)
    total = {
        figure: value for (figure, stratifier, _), value in cells.items() if stratifier == "total"
    }
    assert total == {
        "received": (25.0, None),  # 23
        "routed": (20.0, None),  # 19: a0..a9, b0..b8
        "accepted": (20.0, None),  # 18
        "first-exchange": (10.0, None),  # 8
        "completed": (10.0, None),  # 8
        "rejected": (None, "small-count"),  # 3
        "declined": (None, "small-count"),  # 2: b0 by Catford, b8 by Lewisham
        # 1..10 days and eight times 2: quartiles (inclusive) 2, 2, 5.75
        "days-to-acceptance": (2.0, None),
        "days-to-first-exchange": (10.0, None),  # 3, 5, .. 17
    }
    median = report.cell("days-to-acceptance")
    assert (median.low, median.high, median.n) == (2.0, 5.8, 20)
    first = report.cell("days-to-first-exchange")
    assert (first.low, first.high, first.n) == (6.5, 13.5, 10)
    assert (report.board_id, report.board_name) == (funnel_area.board, "South East London")


def test_funnel_strata_by_practice_time_bank_month_and_reason(
    funnel_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = funnel_area
    report = evaluate(session_factory, settings, FUNNEL, a.board)
    cells = table(report)
    assert keys(report, "received", "practice") == ["P11111", "P22222"]
    assert report.cell("received", Stratifier.PRACTICE, "P11111").label == ("Hill Surgery (P11111)")
    assert cells["received", "practice", "P11111"] == (10.0, None)
    assert cells["received", "practice", "P22222"] == (15.0, None)  # 13
    assert cells["accepted", "practice", "P22222"] == (10.0, None)  # 8
    assert cells["rejected", "practice", "P11111"] == (0.0, None)
    assert cells["rejected", "practice", "P22222"] == (None, "small-count")
    assert cells["first-exchange", "practice", "P22222"] == (0.0, None)
    # Vale's people had no first exchange: nothing to report, not a suppression.
    assert cells["days-to-first-exchange", "practice", "P22222"] == (None, None)
    p1 = report.cell("days-to-acceptance", Stratifier.PRACTICE, "P11111")
    assert (p1.value, p1.low, p1.high, p1.n) == (5.5, 3.3, 7.8, 10)  # 3.25 and 7.75, half up

    # Time banks by id, named; "none" for the referrals never placed (b9, b10, d2, d3: 4):
    # hidden, with the smallest shown stratum (Lewisham, 9) hidden beside it.
    by_bank = {c.key: (c.label, c.value, c.suppressed) for c in report.cells
               if c.figure == "received" and c.stratifier.value == "timebank"}  # fmt: skip
    assert by_bank == {
        a.t1: ("Catford Time Bank", 10.0, None),
        a.t2: ("Lewisham Time Bank", None, "secondary"),
        "none": ("Not placed with a time bank", None, "small-count"),
    }
    assert cells["accepted", "timebank", "none"] == (0.0, None)
    # Declines are in the declining time bank's stratum.
    assert cells["declined", "timebank", a.t1] == (None, "small-count")
    assert cells["declined", "timebank", a.t2] == (None, "small-count")

    # Months of receipt: the period's first and last instants count, June and October do not.
    assert keys(report, "received", "month") == ["2026-07", "2026-08", "2026-09"]
    assert [c.label for c in report.cells if c.figure == "received" and c.key == "2026-09"] == [
        "September 2026"
    ]
    assert cells["received", "month", "2026-09"] == (None, "small-count")  # d2
    assert cells["received", "month", "2026-07"] == (None, "secondary")  # 11, tied with August
    assert cells["received", "month", "2026-08"] == (10.0, None)  # 11

    # Reasons: only on the rejections and the declines, each its own.
    assert keys(report, "rejected", "reason") == ["consent-denies", "no-address", "no-time-bank"]
    assert keys(report, "declined", "reason") == ["no-capacity", "outside-catchment"]
    assert keys(report, "received", "reason") == []
    labels = {c.key: c.label for c in report.cells if c.stratifier.value == "reason"}
    assert labels["no-capacity"] == "The time bank has no room for new members at the moment"
    assert labels["no-address"] == "SPIS could not read the patient's home postcode"


def test_cells_come_in_the_measures_figure_order_then_strata(
    funnel_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, FUNNEL, funnel_area.board)
    figures = list(dict.fromkeys(c.figure for c in report.cells))
    assert figures == [f.code for f in report.measure.figures]
    rejected = [(c.stratifier.value, c.key) for c in report.cells if c.figure == "rejected"]
    order = ["total", "practice", "timebank", "month", "reason"]
    assert rejected == sorted(rejected, key=lambda s: (order.index(s[0]), s[1]))
    assert rejected[0] == ("total", "")


def test_focus_narrows_to_the_practices_or_the_time_banks_stratum(
    funnel_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = funnel_area
    whole = table(evaluate(session_factory, settings, FUNNEL, a.board))
    p1 = evaluate(session_factory, settings, FUNNEL, a.board, focus=f"Organization/{a.p1}")
    assert p1.focus == f"Organization/{a.p1}"
    assert keys(p1, "received", "practice") == ["P11111"]
    assert keys(p1, "received", "timebank") == [a.t1]
    assert table(p1)["received", "total", ""] == whole["received", "practice", "P11111"]
    assert table(p1)["days-to-acceptance", "total", ""] == (5.5, None)

    t2 = evaluate(session_factory, settings, FUNNEL, a.board, focus=f"Organization/{a.t2}")
    cells = table(t2)
    assert keys(t2, "received", "practice") == ["P22222"]
    assert cells["received", "total", ""] == (10.0, None)  # b0..b8: 9
    assert cells["accepted", "total", ""] == (10.0, None)  # b0..b7: 8
    # Only Lewisham's own decline (b8), not Catford's decline of b0.
    assert keys(t2, "declined", "timebank") == [a.t2]
    assert keys(t2, "declined", "reason") == ["no-capacity"]


def test_the_boards_area_is_read_when_the_report_runs(
    funnel_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = funnel_area
    with unit_of_work(session_factory) as session:
        set_board(session, a.p3, a.board)  # eight more people, referred in July
    report = evaluate(session_factory, settings, FUNNEL, a.board)
    assert table(report)["received", "total", ""] == (30.0, None)  # 31
    assert keys(report, "received", "practice") == ["P11111", "P22222", "P33333"]
    other = evaluate(session_factory, settings, FUNNEL, a.other_board)
    assert table(other)["received", "total", ""] == (0.0, None)
    assert [c.figure for c in other.cells if c.stratifier.value != "total"] == []


def test_withdrawn_consent_removes_the_person(
    funnel_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    with unit_of_work(session_factory) as session:
        session.execute(
            update(ReferralOutcome)
            .where(ReferralOutcome.patient_id.in_(["b0", "b1", "b2"]))
            .values(eligible=False)
        )
    cells = table(evaluate(session_factory, settings, FUNNEL, funnel_area.board))
    assert cells["accepted", "practice", "P22222"] == (None, "small-count")  # 5 left
    assert cells["accepted", "total", ""] == (15.0, None)  # 15
    assert cells["declined", "timebank", funnel_area.t1] == (0.0, None)  # b0's decline went too
