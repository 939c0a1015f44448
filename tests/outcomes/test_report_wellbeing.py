"""Wellbeing change on PostgreSQL from outcome score rows inserted directly: mean change with its
t interval, meaningful improvement and decline in each scale's better direction, the cohort's
edges, and scales too small to show."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.db import unit_of_work
from tests.outcomes.report_rows import Area, area, at, evaluate, keys, referral, score, table

WELLBEING = "spis-wellbeing-change"


def wellbeing_rows(session: Session) -> Area:
    """Hill Surgery, Catford; follow-ups on 15 August unless said otherwise.
    - SWEMWBS: w0..w7 13.33 → 16.33 (3 metric points, as floats 2.9999999999999982), w8..w15
      20.0 → 20.5. w0 has a later referral whose pair (−10) is not the first: left out.
    - ONS4 anxiety (lower is better): w0..w7 6 → 4.
    - UCLA-3: w0..w4 only (five people).
    - ONS4 happiness: eight in July; h-first at the period's first instant, h-last at its last;
      h-before and h-after a second outside; one with no follow-up yet; one ineligible."""
    a = area(session)
    follow = at("2026-08-15")
    for i in range(16):
        ref = referral(session, a.p1, f"w{i}", at("2026-03-01"), timebank=a.t1)
        if i < 8:
            score(session, ref, "swemwbs", 13.33, 16.33, follow)
            score(session, ref, "ons4-anxiety", 6, 4, follow)
        else:
            score(session, ref, "swemwbs", 20.0, 20.5, follow)
        if i < 5:
            score(session, ref, "ucla3", 7, 5, follow)
        if i == 0:
            later = referral(session, a.p1, "w0", at("2026-04-01"), timebank=a.t2)
            score(session, later, "swemwbs", 30, 20, follow, baseline_at=at("2026-05-01"))
    for i in range(8):
        ref = referral(session, a.p1, f"h{i}", at("2026-03-01"), timebank=a.t1)
        score(session, ref, "ons4-happy", 5, 7, at("2026-07-20"))
    edges = {
        "h-first": at("2026-07-01", 0),
        "h-last": at("2026-10-01", 0) - timedelta(seconds=1),
        "h-before": at("2026-07-01", 0) - timedelta(seconds=1),
        "h-after": at("2026-10-01", 0),
        "h-pending": None,
    }
    for patient, when in edges.items():
        ref = referral(session, a.p1, patient, at("2026-03-01"), timebank=a.t1)
        score(session, ref, "ons4-happy", 5, None if when is None else 6, when)
    ineligible = referral(session, a.p1, "x", at("2026-03-01"), timebank=a.t1, eligible=False)
    score(session, ineligible, "ons4-happy", 5, 6, follow)
    far = referral(session, a.p3, "far", at("2026-03-01"), timebank=a.t1)
    score(session, far, "swemwbs", 10, 30, follow)
    return a


@pytest.fixture
def wellbeing_area(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        return wellbeing_rows(session)


def test_swemwbs_mean_change_with_its_interval_and_the_shares(
    wellbeing_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, WELLBEING, wellbeing_area.board)
    cells = table(report)
    assert cells["swemwbs-pairs", "total", ""] == (15.0, None)  # 16
    change = report.cell("swemwbs-change")
    # Eight changes of 3 and eight of 0.5: mean 1.75, sd 1.291, t(15) = 2.131.
    assert (change.value, change.low, change.high, change.n) == (1.75, 1.06, 2.44, 15)
    assert cells["swemwbs-improved-count", "total", ""] == (10.0, None)  # 8: 3 points counts
    assert cells["swemwbs-improved", "total", ""] == (50.0, None)
    assert cells["swemwbs-declined-count", "total", ""] == (0.0, None)
    assert cells["swemwbs-declined", "total", ""] == (0.0, None)
    assert report.cell("swemwbs-improved").n == 15


def test_lower_is_better_for_anxiety(
    wellbeing_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    cells = table(evaluate(session_factory, settings, WELLBEING, wellbeing_area.board))
    assert cells["ons4-anxiety-pairs", "total", ""] == (10.0, None)  # 8
    assert cells["ons4-anxiety-change", "total", ""] == (-2.0, None)
    assert cells["ons4-anxiety-improved", "total", ""] == (100.0, None)
    assert cells["ons4-anxiety-declined", "total", ""] == (0.0, None)


def test_a_scale_with_too_few_people_shows_no_statistic(
    wellbeing_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    report = evaluate(session_factory, settings, WELLBEING, wellbeing_area.board)
    ucla = [
        c for c in report.cells if c.figure.startswith("ucla3-") and c.stratifier.value == "total"
    ]
    assert [(c.figure, c.value, c.suppressed and c.suppressed.value) for c in ucla] == [
        ("ucla3-pairs", None, "small-count"),
        ("ucla3-change", None, "small-n"),
        ("ucla3-improved", None, "small-n"),
        ("ucla3-improved-count", None, "small-count"),
        ("ucla3-declined", None, "small-n"),
        ("ucla3-declined-count", 0.0, None),
    ]
    # WEMWBS has no one: nothing to report, and no strata of its own (the others' are there).
    assert table(report)["wemwbs-pairs", "total", ""] == (0.0, None)
    assert table(report)["wemwbs-change", "total", ""] == (None, None)


def test_follow_ups_inside_the_period_only_and_each_scale_has_every_stratum(
    wellbeing_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = wellbeing_area
    report = evaluate(session_factory, settings, WELLBEING, a.board)
    cells = table(report)
    assert keys(report, "ons4-happy-pairs", "month") == ["2026-07", "2026-08", "2026-09"]
    assert cells["ons4-happy-pairs", "month", "2026-09"] == (None, "small-count")  # h-last
    # July (eight and h-first: 9) is hidden beside it; August has no one.
    assert cells["ons4-happy-pairs", "month", "2026-07"] == (None, "secondary")
    assert cells["ons4-happy-pairs", "month", "2026-08"] == (0.0, None)
    assert cells["ons4-happy-pairs", "total", ""] == (10.0, None)  # 10
    # w0's later referral (to Lewisham) is not their first pair; the other board's is not ours.
    assert keys(report, "swemwbs-pairs", "timebank") == [a.t1]
    assert keys(report, "swemwbs-pairs", "practice") == ["P11111"]
    assert cells["swemwbs-pairs", "month", "2026-07"] == (0.0, None)


def test_focus_on_a_time_bank_with_no_one(
    wellbeing_area: Area, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    a = wellbeing_area
    report = evaluate(session_factory, settings, WELLBEING, a.board, focus=f"Organization/{a.t2}")
    assert {c.stratifier.value for c in report.cells} == {"total"}
    assert table(report)["swemwbs-pairs", "total", ""] == (0.0, None)
