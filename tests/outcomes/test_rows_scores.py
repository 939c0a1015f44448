"""Baseline and follow-up as the cohort rules choose them, from questionnaires a time bank
records over FHIR: the first score within the baseline window of enrolment, the last one 8–26
weeks after the baseline; scores outside both windows are ignored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.questionnaire_form import questionnaire_response
from referral_service.config import Settings
from referral_service.ledger.models import Member
from referral_service.outcomes.cohort import Scored, Windows, choose
from tests.fixtures.fhir import FHIR_JSON
from tests.fixtures.referrals import Referral
from tests.fixtures.routing import route_now
from tests.fixtures.systems import TestSystem, bearer
from tests.ledger.conftest import enrol
from tests.outcomes.rows_support import put_task, referral_row, run_refreshes, scores

ENROLLED = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
WINDOWS = Windows(baseline_days=30, min_weeks=8, max_weeks=26)


def at(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T10:00:00+00:00")


def scored(when: datetime, value: float) -> Scored:
    return Scored(when, value, (when, str(value)))


def test_the_windows_include_their_bounds() -> None:
    edge = ENROLLED - timedelta(days=30)
    pair = choose(
        [
            scored(edge - timedelta(seconds=1), 1.0),  # just outside the baseline window
            scored(edge, 2.0),
            scored(edge + timedelta(weeks=8) - timedelta(seconds=1), 3.0),  # too early
            scored(edge + timedelta(weeks=26), 4.0),
            scored(edge + timedelta(weeks=26, seconds=1), 5.0),  # too late
        ],
        ENROLLED,
        WINDOWS,
    )
    assert pair is not None
    assert pair.follow_up is not None
    assert (pair.baseline.value, pair.follow_up.value) == (2.0, 4.0)


def test_no_score_near_enrolment_means_no_baseline() -> None:
    late = ENROLLED + timedelta(days=31)
    assert (
        choose([scored(late, 20.0), scored(late + timedelta(weeks=10), 25.0)], ENROLLED, WINDOWS)
        is None
    )


def record(
    client: TestClient, headers: dict[str, str], qid: str, answers: list[int], day: str, **refs: str
) -> None:
    typed = {str(n): str(answer) for n, answer in enumerate(answers, 1)}
    qr = questionnaire_response(qid, typed, authored=f"{day}T10:00:00Z", **refs)
    sent = client.post("/fhir/QuestionnaireResponse", json=qr, headers={**headers, **FHIR_JSON})
    assert sent.status_code == 201, sent.text


def test_baseline_and_follow_up_from_recorded_questionnaires(
    client: TestClient,
    session_factory: sessionmaker[Session],
    settings: Settings,
    referral: Referral,
    timebank_a: TestSystem,
) -> None:
    child = route_now(session_factory, settings, referral.task_id)
    assert child is not None
    filler = put_task(client, timebank_a, child, status="accepted")["focus"]["reference"]
    broker = bearer(client, timebank_a)
    member = enrol(client, broker, timebank_a, child).json()["member"]["id"]
    with session_factory() as session, session.begin():  # as if enrolled on 1 March 2025
        session.execute(update(Member).where(Member.id == member).values(enrolled_at=ENROLLED))

    refs = {"patient_ref": referral.patient, "based_on_ref": filler}
    swemwbs = [  # raw sum -> metric (DESIGN §7)
        ([1, 1, 1, 1, 1, 1, 2], "2025-01-15"),  # 8 -> 9.51: 45 days before enrolment, ignored
        ([2, 2, 2, 2, 2, 2, 2], "2025-02-10"),  # 14 -> 15.32: the baseline (first in window)
        ([3, 3, 3, 3, 3, 3, 3], "2025-03-20"),  # 21: in the window, but not the first
        ([3, 3, 3, 3, 3, 3, 4], "2025-05-01"),  # 22: a follow-up, but not the last
        ([4, 4, 4, 4, 4, 4, 4], "2025-07-20"),  # 28 -> 25.03: the follow-up (last in 8-26 weeks)
        ([5, 5, 5, 5, 5, 5, 5], "2025-09-01"),  # 35: 29 weeks after the baseline, ignored
    ]
    for answers, day in swemwbs:
        record(client, broker, "swemwbs", answers, day, **refs)
    record(client, broker, "ucla3", [3, 3, 2], "2025-03-05", **refs)  # baseline, no follow-up
    record(client, broker, "wemwbs", [3] * 14, "2025-06-01", **refs)  # no baseline: no row
    record(client, broker, "ons4", [4, 5, 6, 7], "2025-02-20", **refs)
    record(client, broker, "ons4", [6, 7, 8, 3], "2025-06-20", **refs)

    run_refreshes(session_factory, settings)
    found = scores(session_factory, referral.task_id)
    assert sorted(found) == [
        "ons4-anxiety",
        "ons4-happy",
        "ons4-life-satisfaction",
        "ons4-worthwhile",
        "swemwbs",
        "ucla3",
    ]
    sw = found["swemwbs"]
    assert (sw.baseline, sw.baseline_at, sw.follow_up, sw.follow_up_at) == (
        15.32,
        at("2025-02-10"),
        25.03,
        at("2025-07-20"),
    )
    assert (found["ucla3"].baseline, found["ucla3"].follow_up, found["ucla3"].follow_up_at) == (
        8.0,
        None,
        None,
    )
    ons4 = {
        scale: (s.baseline, s.follow_up) for scale, s in found.items() if scale.startswith("ons4")
    }
    assert ons4 == {
        "ons4-life-satisfaction": (4.0, 6.0),
        "ons4-worthwhile": (5.0, 7.0),
        "ons4-happy": (6.0, 8.0),
        "ons4-anxiety": (7.0, 3.0),
    }
    assert referral_row(session_factory, referral.task_id).enrolled_at == ENROLLED
