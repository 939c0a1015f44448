"""Co-production on PostgreSQL from outcome rows inserted directly: hours, reciprocity, network
reach (person-months in the month strata), the giving cohort, and what is left out."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import Stratifier
from referral_service.config import Settings
from referral_service.db import unit_of_work
from tests.outcomes.report_rows import Area, activity, area, at, evaluate, keys, referral, table

COPRODUCTION = "spis-coproduction"


def coproduction_rows(session: Session) -> Area:
    """Taking part (Hill Surgery, Catford), referred in June:
    - July: a0..a9 each gave 60 min, received 30, with partners x and y;
    - August: a0..a7 gave 30, received 60, with x and z;
    - a0's second referral (to Lewisham, later) gave 60 in July with w: a0 counts once, in
      Catford's stratum, with those hours and that partner;
    Left out: a1's June, a9's September row with no exchanges, and an ineligible member.

    Giving (Vale Practice, Lewisham): g0..g17 enrolled on 10 July; g0..g8 gave time 1..9 days
    later. g0 enrolled again in August (not counted again); the a's enrolled in June (outside)."""
    a = area(session)
    for i in range(10):
        first = referral(session, a.p1, f"a{i}", at(f"2026-06-{i + 1:02d}"), timebank=a.t1,
                         enrolled=at("2026-06-20"))  # fmt: skip
        activity(session, first, "2026-07", 60, 30, ("m-x", "m-y"))
        if i < 8:
            activity(session, first, "2026-08", 30, 60, ("m-x", "m-z"))
        if i == 0:
            again = referral(session, a.p1, "a0", at("2026-06-25"), timebank=a.t2)
            activity(session, again, "2026-07", 60, 0, ("m-w",))
        if i == 1:
            activity(session, first, "2026-06", 600, 0, ("m-v",))
        if i == 9:
            activity(session, first, "2026-09", 0, 0, exchanges=0)
    ineligible = referral(session, a.p1, "c0", at("2026-06-01"), timebank=a.t1, eligible=False)
    activity(session, ineligible, "2026-07", 600, 600, ("m-u",))
    far = referral(session, a.p3, "f0", at("2026-06-01"), timebank=a.t1)
    activity(session, far, "2026-07", 600, 600, ("m-u",))

    enrolled = at("2026-07-10", 12)
    for i in range(18):
        gift = (enrolled + timedelta(days=i + 1)).date() if i < 9 else None
        referral(session, a.p2, f"g{i}", at("2026-06-01"), timebank=a.t2, enrolled=enrolled,
                 first_gift=gift)  # fmt: skip
    referral(session, a.p2, "g0", at("2026-07-20"), timebank=a.t1, enrolled=at("2026-08-01"))
    return a


@pytest.fixture
def coproduction_area(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        return coproduction_rows(session)


def test_hours_reciprocity_and_reach_of_the_people_taking_part(
    coproduction_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, COPRODUCTION, coproduction_area.board)
    cells = table(report)
    assert cells["active-members", "total", ""] == (10.0, None)
    assert cells["hours-given", "total", ""] == (15.0, None)  # 600 + 240 + 60 minutes
    assert cells["hours-received", "total", ""] == (13.0, None)  # 300 + 480
    assert cells["reciprocity", "total", ""] == (1.15, None)  # 900 / 780
    reach = report.cell("network-reach")
    # a0: x, y, w, z; a1..a7: x, y, z; a8, a9: x, y. Mean 2.9, t(9) interval.
    assert (reach.value, reach.low, reach.high, reach.n) == (2.9, 2.49, 3.31, 10)
    assert report.cell("hours-given").n == 10


def test_month_strata_count_person_months(
    coproduction_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, COPRODUCTION, coproduction_area.board)
    cells = table(report)
    assert keys(report, "active-members", "month") == ["2026-07", "2026-08"]  # not June, Sept.
    assert cells["active-members", "month", "2026-07"] == (10.0, None)
    assert cells["active-members", "month", "2026-08"] == (10.0, None)  # 8
    assert cells["hours-given", "month", "2026-07"] == (11.0, None)
    assert cells["hours-received", "month", "2026-07"] == (5.0, None)
    assert cells["reciprocity", "month", "2026-07"] == (2.2, None)
    july = report.cell("network-reach", Stratifier.MONTH, "2026-07")
    assert (july.value, july.low, july.high) == (2.1, 1.87, 2.33)  # a0: x, y, w; others x, y
    august = report.cell("network-reach", Stratifier.MONTH, "2026-08")
    assert (august.value, august.low, august.high) == (2.0, 2.0, 2.0)
    assert cells["hours-given", "month", "2026-08"] == (4.0, None)
    assert cells["reciprocity", "month", "2026-08"] == (0.5, None)


def test_a_person_is_in_the_strata_of_their_earliest_referral_with_activity(
    coproduction_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = coproduction_area
    report = evaluate(session_factory, settings, COPRODUCTION, a.board)
    cells = table(report)
    assert cells["active-members", "timebank", a.t1] == (10.0, None)
    # Lewisham is a stratum only for the giving cohort: no one taking part is there.
    assert cells["active-members", "timebank", a.t2] == (0.0, None)
    assert cells["hours-given", "timebank", a.t2] == (None, None)
    assert report.cell("hours-given", Stratifier.TIMEBANK, a.t2).n == 0
    assert cells["hours-given", "practice", "P11111"] == (15.0, None)


def test_giving_share_and_days_to_first_gift(
    coproduction_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = coproduction_area
    report = evaluate(session_factory, settings, COPRODUCTION, a.board)
    cells = table(report)
    assert cells["enrolled", "total", ""] == (20.0, None)  # 18
    assert cells["givers", "total", ""] == (10.0, None)  # 9
    assert cells["gave-time", "total", ""] == (50.0, None)
    assert report.cell("gave-time").n == 20
    gift = report.cell("days-to-first-gift")
    assert (gift.value, gift.low, gift.high, gift.n) == (5.0, 3.0, 7.0, 10)
    assert keys(report, "enrolled", "month") == ["2026-07", "2026-08"]
    assert cells["enrolled", "month", "2026-07"] == (20.0, None)
    assert cells["enrolled", "month", "2026-08"] == (0.0, None)  # g0's second enrolment
    assert cells["enrolled", "practice", "P11111"] == (0.0, None)
    assert cells["enrolled", "timebank", a.t1] == (0.0, None)


def test_a_period_starting_mid_month_leaves_that_month_out(
    coproduction_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    period = (date(2026, 7, 2), date(2026, 8, 31))
    report = evaluate(
        session_factory, settings, COPRODUCTION, coproduction_area.board, period=period
    )
    cells = table(report)
    # July is a stratum only through the enrolments of 10 July: no one taking part in it.
    assert cells["active-members", "month", "2026-07"] == (0.0, None)
    assert cells["active-members", "month", "2026-08"] == (10.0, None)
    assert cells["hours-given", "total", ""] == (4.0, None)
    empty = evaluate(
        session_factory,
        settings,
        COPRODUCTION,
        coproduction_area.board,
        period=(date(2026, 7, 2), date(2026, 7, 31)),
    )
    assert table(empty)["active-members", "total", ""] == (0.0, None)
