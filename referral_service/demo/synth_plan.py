"""`spis synth`: one referral's story, as times of events, before any resource is built.

Pure: a random generator, the area and the clock in, a `Plan` out. The funnel follows what SPIS
does: routing picks time banks serving the person's district whose offers fit the needs; a time
bank answers within working days, declining some with a reason or not answering at all (the SLA
sweep then cancels its Task and routing tries the next); a referral no time bank takes is
rejected by SPIS with a coded reason. Accepted people are mostly enrolled, exchange time, fill in
questionnaires and are completed months later. Nothing is after `end`: a story that would go on
stops where the clock stands.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from fhir_adapters.codes import DECLINE_OTHER
from referral_service.demo.synth_area import OFFERS, Area
from referral_service.demo.synth_people import REASONS, Person
from referral_service.routing.rules import add_working_days

ACCEPTED, DECLINED, NO_ANSWER, PENDING, CANCELLED = (
    "accepted",
    "declined",
    "no-answer",
    "pending",
    "cancelled",
)
DECLINES = (
    ("no-capacity", 0.35),
    ("cannot-contact", 0.2),
    ("person-declined", 0.25),
    ("needs-not-offered", 0.15),
    (DECLINE_OTHER, 0.05),
)
# Instruments a time bank uses with a person: (questionnaire id, share of people, Observations).
INSTRUMENTS = (("swemwbs", 0.9, 1), ("wemwbs", 0.35, 1), ("ons4", 0.8, 4), ("ucla3", 0.7, 1))
FAILED_UNREACHED = "The person could not be reached after several tries"
FAILED_LATER = (
    "The person has moved out of the area",
    "The person stopped coming and did not want to continue",
    "The person's health no longer allows them to take part",
)


@dataclass(slots=True)
class Attempt:
    """A time bank offered the referral at `routed_at`, and what it did about it."""

    timebank: int
    routed_at: datetime
    answer: str = PENDING
    answered_at: datetime | None = None  # accepted, declined, or cancelled for no answer
    decline_code: str | None = None
    reminded_at: datetime | None = None


@dataclass(slots=True)
class Sitting:
    """A questionnaire session: when, and the person's wellbeing then (a z-score)."""

    at: datetime
    level: float


@dataclass(slots=True)
class Plan:
    index: int
    practice: int
    person: Person
    patient_of: int  # the referral whose Patient this is (itself, unless referred again)
    received_at: datetime
    needs: tuple[str, ...]
    reason: str
    attempts: list[Attempt] = field(default_factory=list)
    rejected: tuple[str, datetime] | None = None  # a measures.REJECTED_REASONS code
    cancelled_at: datetime | None = None  # by the practice
    enrolled_at: datetime | None = None
    started_at: datetime | None = None  # the time bank's Task in-progress
    ended: tuple[str, datetime, str | None] | None = None  # completed/failed, when, reason
    instruments: tuple[str, ...] = ()
    sittings: list[Sitting] = field(default_factory=list)
    give_share: float = 0.0  # how often they give rather than receive
    activity: float = 1.0  # how active they are, relative to others
    sides: int = 0  # their exchanges, once the whole load is planned

    @property
    def taken_up(self) -> Attempt | None:
        return next((a for a in self.attempts if a.answer == ACCEPTED), None)

    @property
    def active_until(self) -> datetime | None:
        return self.ended[1] if self.ended else None

    def score_observations(self) -> int:
        per = {qid: count for qid, _, count in INSTRUMENTS}
        return len(self.sittings) * sum(per[q] for q in self.instruments)


@dataclass(frozen=True, slots=True)
class Clock:
    start: datetime
    end: datetime
    sla_days: int
    grace_days: int


def plan(
    rng: random.Random,
    index: int,
    area: Area,
    practice: int,
    person: Person,
    received: datetime,
    clock: Clock,
) -> Plan:
    tbs = area.serving(person.district) if person.district else []
    offered = sorted({o for i in tbs for o in area.timebanks[i].offers}) or list(OFFERS)
    needs = tuple(sorted(rng.sample(offered, rng.choice((1, 1, 2))))) if rng.random() < 0.85 else ()
    p = Plan(index, practice, person, index, received, needs, rng.choice(REASONS))
    _route(rng, p, area, tbs, clock)
    if rng.random() < 0.02:
        _cancel(p, _later(rng, received, 1, 20), clock.end)
    if (taken := p.taken_up) is not None and p.cancelled_at is None:
        _engage(rng, p, taken, clock.end)
    return p


def _route(rng: random.Random, p: Plan, area: Area, tbs: list[int], clock: Clock) -> None:
    at = p.received_at + timedelta(seconds=rng.uniform(3, 90))
    if p.person.district is None:
        p.rejected = ("no-address", at)
        return
    fit = {i: len(set(p.needs) & set(area.timebanks[i].offers)) for i in tbs}
    order = sorted((i for i in tbs if fit[i] or not p.needs), key=lambda i: (-fit[i], rng.random()))
    for tb in order:
        attempt = Attempt(tb, at)
        p.attempts.append(attempt)
        roll = rng.random()
        if roll < 0.03:
            due = add_working_days(at, clock.sla_days) + timedelta(minutes=rng.uniform(1, 60))
            attempt.reminded_at = due if due <= clock.end else None
            gone = add_working_days(due, clock.grace_days) + timedelta(minutes=rng.uniform(1, 60))
            if gone > clock.end:
                return
            attempt.answer, attempt.answered_at = NO_ANSWER, gone
        else:
            answered = _office(rng, add_working_days(at, int(rng.expovariate(0.8))), at)
            if answered > clock.end:
                return
            attempt.answered_at = answered
            if roll >= 0.15:
                attempt.answer = ACCEPTED
                return
            attempt.answer, attempt.decline_code = DECLINED, _weighted(rng, DECLINES)
        at = attempt.answered_at + timedelta(seconds=rng.uniform(3, 90))
    if at <= clock.end:
        p.rejected = ("no-time-bank", at)


def _cancel(p: Plan, when: datetime, end: datetime) -> None:
    """The practice cancels a referral still waiting, or accepted but not yet started: time banks
    not yet answered are told (their Tasks cancelled); an accepting one's Task is cancelled too."""
    if when > end or (p.rejected is not None and p.rejected[1] <= when):
        return
    if any(a.answer == ACCEPTED and a.answered_at and a.answered_at <= when for a in p.attempts):
        p.cancelled_at = when  # the accepting time bank's Task is cancelled with the referral
        return
    p.attempts = [a for a in p.attempts if a.routed_at <= when]
    for attempt in p.attempts:
        if attempt.answered_at is None or attempt.answered_at > when:
            attempt.answer, attempt.answered_at, attempt.decline_code = CANCELLED, when, None
            if attempt.reminded_at is not None and attempt.reminded_at > when:
                attempt.reminded_at = None
    p.rejected, p.cancelled_at = None, when


def _engage(rng: random.Random, p: Plan, taken: Attempt, end: datetime) -> None:
    accepted = taken.answered_at
    assert accepted is not None
    if rng.random() < 0.08:
        failed = _later(rng, accepted, 21, 50)
        if failed <= end:
            p.ended = ("failed", failed, FAILED_UNREACHED)
        return
    enrolled = _later(rng, accepted, 1, 21)
    if enrolled > end:
        return
    p.enrolled_at, p.started_at = enrolled, enrolled + timedelta(minutes=rng.uniform(1, 60))
    finished = _later(rng, enrolled, 90, 300)
    if finished <= end:
        stopped = rng.random() < 0.15
        p.ended = (
            ("failed", finished, rng.choice(FAILED_LATER))
            if stopped
            else ("completed", finished, None)
        )
    p.give_share = 0.0 if rng.random() < 0.3 else rng.uniform(0.25, 0.7)
    p.activity = rng.gammavariate(2.0, 0.5)
    chosen = tuple(q for q, share, _ in INSTRUMENTS if rng.random() < share)
    p.instruments = chosen or ("swemwbs",)
    p.sittings = _sittings(rng, enrolled, p.active_until, end)


def _sittings(
    rng: random.Random, enrolled: datetime, until: datetime | None, end: datetime
) -> list[Sitting]:
    """A baseline near enrolment (some too late for the cohort's window), a follow-up 8–26
    weeks later for many (some outside it), sometimes one in between. Wellbeing improves a
    little on average, with noise."""
    roll = rng.random()
    if roll < 0.05:
        return []
    first = _later(rng, enrolled, 0, 14) if roll < 0.9 else _later(rng, enrolled, 35, 60)
    level, gain = rng.gauss(0, 1), rng.gauss(0.45, 0.8)
    times = [first]
    if rng.random() < 0.2:
        times.append(_later(rng, first, 21, 49))
    follow = rng.random()
    if follow < 0.7:
        times.append(_later(rng, first, 60, 178))
    elif follow < 0.82:
        early = rng.random() < 0.5
        times.append(_later(rng, first, 28, 49) if early else _later(rng, first, 190, 240))
    last = min(end, until + timedelta(days=7) if until else end)
    return [
        Sitting(t, level + gain * min(1.0, (t - first).days / 84) + rng.gauss(0, 0.25))
        for t in sorted(times)
        if t <= last
    ]


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _later(rng: random.Random, after: datetime, low: float, high: float) -> datetime:
    """Some days after `after` (`low` to `high`), in office hours on a working day."""
    return _office(rng, after + timedelta(days=rng.uniform(low, high)), after)


def _office(rng: random.Random, day: datetime, after: datetime) -> datetime:
    """A time between 09:00 and 17:00 on `day` (the Monday after, at a weekend), and after
    `after` in any case: people act in working hours."""
    day += timedelta(days=max(0, 7 - day.weekday()) if day.weekday() >= 5 else 0)
    moment = day.replace(hour=9, minute=0, second=0, microsecond=0)
    moment += timedelta(seconds=rng.uniform(0, 8 * 3600))
    return moment if moment > after else after + timedelta(minutes=rng.uniform(10, 120))


def received_times(rng: random.Random, count: int, clock: Clock) -> list[datetime]:
    """When referrals arrive: working days, surgery hours, a little busier as time goes on."""
    span = (clock.end - clock.start).total_seconds()
    times: list[datetime] = []
    while len(times) < count:
        share = rng.random() ** 0.85  # later months a little busier
        moment = clock.start + timedelta(seconds=span * share)
        if moment.weekday() >= 5:
            continue
        day = moment.replace(hour=8, minute=0, second=0, microsecond=0)
        moment = day + timedelta(seconds=rng.uniform(0, 10 * 3600))
        if clock.start <= moment <= clock.end - timedelta(minutes=5):
            times.append(moment)
    return sorted(times)
