"""`spis synth`: the exchanges of time referred members take part in. Pure.

Each enrolled person gets a number of exchange "sides" while they are active, in proportion to
how long they are active and how active they are, so that the whole load has the Observations
asked for (`assign_sides`). Sides become exchanges with the time bank's other members
(volunteers, some of them much busier than others) or, for some, with another referred member
active at the same time in the same time bank: each then counts it. Referred people both give
and receive; some never give. A few exchanges are reversed later as mistakes.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from referral_service.demo.synth_area import Area
from referral_service.demo.synth_plan import Plan

MINUTES = (30, 45, 60, 60, 60, 90, 90, 120, 120, 150, 180, 240)
REVERSAL_REASONS = (
    "Recorded twice by mistake",
    "Recorded against the wrong member",
    "The wrong number of minutes was recorded",
)
PAIR_SHARE = 0.2  # of a referred member's exchanges, tried with another referred member


@dataclass(frozen=True, slots=True)
class Party:
    """A referred member (`plan` is their referral's index) or a volunteer (`volunteer`)."""

    plan: int | None = None
    volunteer: int | None = None


@dataclass(frozen=True, slots=True)
class Swap:
    timebank: int
    giver: Party
    receiver: Party
    minutes: int
    day: date
    category: str
    recorded_at: datetime
    reversed_at: datetime | None = None
    reversal_reason: str | None = None


def window(p: Plan, end: datetime) -> tuple[date, date] | None:
    """The days a referred member can exchange time: from the day after enrolment on."""
    if p.enrolled_at is None:
        return None
    first = (p.enrolled_at + timedelta(days=1)).date()
    last = min(p.active_until or end, end).date()
    return (first, last) if first <= last else None


def assign_sides(plans: list[Plan], hours_observations: int, end: datetime) -> None:
    """Share `hours_observations` exchange sides among enrolled members, by active days times
    activity, rounding so that the total is exact."""
    weights = []
    for p in plans:
        span = window(p, end)
        weights.append(((span[1] - span[0]).days + 1) * p.activity if span else 0.0)
    total = sum(weights)
    if total <= 0 or hours_observations <= 0:
        return
    rate, running = hours_observations / total, 0.0
    for p, weight in zip(plans, weights, strict=True):
        before = round(running)
        running += weight * rate
        p.sides = round(running) - before


def exchanges(
    rng: random.Random, plans: list[Plan], area: Area, volunteers: list[int], end: datetime
) -> list[Swap]:
    """The exchanges of the referred members in `plans` (one chunk of the load)."""
    left = {p.index: p.sides for p in plans if window(p, end) and p.sides}
    by_tb: dict[int, list[Plan]] = {}
    for p in plans:
        if p.index in left and (taken := p.taken_up) is not None:
            by_tb.setdefault(taken.timebank, []).append(p)
    found: list[Swap] = []
    for tb, members in by_tb.items():
        for p in rng.sample(members, len(members)):
            while left[p.index] > 0:
                left[p.index] -= 1
                partner = (
                    _partner(rng, p, members, left, end) if rng.random() < PAIR_SHARE else None
                )
                if partner is not None:
                    left[partner.index] -= 1
                    found.append(_between(rng, tb, p, partner, area, end))
                else:
                    found.append(_with_volunteer(rng, tb, p, area, volunteers[tb], end))
    return found


def _partner(
    rng: random.Random, p: Plan, members: list[Plan], left: dict[int, int], end: datetime
) -> Plan | None:
    mine = window(p, end)
    assert mine is not None
    for _ in range(5):
        other = rng.choice(members)
        theirs = window(other, end)
        if other is p or not left[other.index] or theirs is None:
            continue
        if max(mine[0], theirs[0]) <= min(mine[1], theirs[1]) and p.give_share + other.give_share:
            return other
    return None


def _between(rng: random.Random, tb: int, a: Plan, b: Plan, area: Area, end: datetime) -> Swap:
    wa, wb = window(a, end), window(b, end)
    assert wa is not None
    assert wb is not None
    day = _day(rng, max(wa[0], wb[0]), min(wa[1], wb[1]))
    giver, receiver = (
        (a, b) if rng.random() * (a.give_share + b.give_share) < a.give_share else (b, a)
    )
    category = _category(rng, area, tb, receiver)
    return _swap(rng, tb, Party(plan=giver.index), Party(plan=receiver.index), day, category, end)


def _with_volunteer(
    rng: random.Random, tb: int, p: Plan, area: Area, count: int, end: datetime
) -> Swap:
    span = window(p, end)
    assert span is not None
    volunteer = Party(volunteer=int(count * rng.random() ** 2))  # a few do much of the giving
    member = Party(plan=p.index)
    gives = rng.random() < p.give_share
    giver, receiver = (member, volunteer) if gives else (volunteer, member)
    category = _category(rng, area, tb, None if gives else p)
    return _swap(rng, tb, giver, receiver, _day(rng, *span), category, end)


def _swap(
    rng: random.Random,
    tb: int,
    giver: Party,
    receiver: Party,
    day: date,
    category: str,
    end: datetime,
) -> Swap:
    recorded = datetime.combine(day, time(9), tzinfo=end.tzinfo) + timedelta(
        days=rng.choice((0, 0, 0, 1, 2)), hours=rng.uniform(0, 9)
    )
    recorded = min(recorded, end)
    reversed_at = recorded + timedelta(days=rng.uniform(0.05, 10))
    if rng.random() < 0.015 and reversed_at <= end:
        reason = rng.choice(REVERSAL_REASONS)
        return Swap(
            tb, giver, receiver, rng.choice(MINUTES), day, category, recorded, reversed_at, reason
        )
    return Swap(tb, giver, receiver, rng.choice(MINUTES), day, category, recorded)


def _category(rng: random.Random, area: Area, tb: int, receiver: Plan | None) -> str:
    """What was done: what the receiver asked for, when they were referred for it."""
    offers = area.timebanks[tb].offers
    wanted = [n for n in receiver.needs if n in offers] if receiver is not None else []
    return rng.choice(wanted) if wanted and rng.random() < 0.6 else rng.choice(offers)


def _day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))
