"""`spis synth`: fill a database with synthetic referrals, exchanges and wellbeing scores, for
demos and benchmarks.

A health board (registered, or the one with the ODS code given), practices and time banks in
its area, then per referral everything SPIS would hold had it come through intake, routing, the
brokers' moves, the ledger and the questionnaires over the months: the same resources with their
version histories, sealed bodies, search index rows, grants, submissions and ledger rows. It is
written straight to the store in bulk (`store/bulk.py`), one transaction per chunk of referrals,
so a load of a million Observations takes minutes instead of hours. None of it went through the
API, so it leaves no audit events and queues no jobs. The outcome rows are then rebuilt from it
with the same code `spis outcomes rebuild` runs.

The same seed gives the same data (resource ids included) for the same options and end time.
"""

from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import Database, opened, unit_of_work
from referral_service.demo import synth_area, synth_chunk
from referral_service.demo.synth_activity import assign_sides
from referral_service.demo.synth_area import Area
from referral_service.demo.synth_fhir import holds_patient
from referral_service.demo.synth_people import NhsNumbers, person
from referral_service.demo.synth_plan import Clock, Plan, plan, received_times
from referral_service.migrate import upgrade
from referral_service.outcomes.rebuild import rebuild
from referral_service.principal import Principal
from referral_service.store import repository as store

# Bumped whenever what a seed generates changes: a cached data set (bench/outcomes.py) names it.
GENERATOR = 1
CHUNK = 250  # referrals per transaction; part of what the seed decides (exchange partners)
RE_REFERRED = 0.04  # of referrals, a person the practice referred before


@dataclass(frozen=True, slots=True)
class Options:
    referrals: int
    board_ods: str | None = None
    practices: int = 6
    timebanks: int = 3
    months: int = 12
    seed: int = 1
    observations_per_referral: float = 40.0
    end: datetime | None = None  # the clock's "now": nothing happens after it (default: now)


@dataclass(slots=True)
class Summary:
    board: dict[str, str]
    practices: list[dict[str, str]]
    timebanks: list[dict[str, str]]
    period: dict[str, str]
    referrals: int = 0
    resources: Counter[str] = field(default_factory=Counter)
    rows: int = 0
    outcome_referrals: int = 0
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "board": self.board,
            "practices": self.practices,
            "timebanks": self.timebanks,
            "period": self.period,
            "referrals": self.referrals,
            "resources": dict(sorted(self.resources.items())),
            "resources_total": sum(self.resources.values()),
            "observations": self.resources["Observation"],
            "rows": self.rows,
            "outcome_rows_referrals": self.outcome_referrals,
            "seconds": round(self.seconds, 1),
            "note": "synthetic data written straight to the store: no audit events and no jobs "
            "for its history; rebuilding the outcome rows audits its consent decisions",
        }


def run(settings: Settings, options: Options, progress: IO[str] = sys.stderr) -> Summary:
    if options.referrals < 1 or options.practices < 1 or options.timebanks < 1:
        raise ValueError("referrals, practices and time banks must each be at least 1")
    began = time.perf_counter()
    upgrade(settings.database_url)
    end = options.end or datetime.now(UTC)
    end = (end if end.tzinfo else end.replace(tzinfo=UTC)).astimezone(UTC)
    clock = _clock(settings, end, options.months)
    with opened(settings) as database:
        area = _area(database, options)
        key = f"synth/{options.seed}/{area.board_ods}"
        plans = plan_all(area, clock, options, key)
        summary = _summary(area, clock)
        loader = synth_chunk.Loader(settings, area, clock, key, options.seed, plans)
        with unit_of_work(database.sessionmaker) as session:
            summary.rows += loader.volunteers(session)
        for start in range(0, len(plans), CHUNK):
            with unit_of_work(database.sessionmaker) as session:
                ctx = Context(session, Principal.spis(), settings)
                summary.rows += loader.chunk(ctx, start // CHUNK, plans[start : start + CHUNK])
            summary.referrals = min(len(plans), start + CHUNK)
            _report(progress, summary, loader, len(plans), time.perf_counter() - began)
        summary.resources = loader.counts
        with unit_of_work(database.sessionmaker) as session:
            synth_area.set_capacities(session, area, loader.open_tasks())
            store.refresh_statistics(session)
        summary.outcome_referrals = _rebuild(database, settings, area, progress)
        with unit_of_work(database.sessionmaker) as session:
            # Again: the rebuild filled the outcome tables, which the first ANALYZE saw empty.
            store.refresh_statistics(session)
    summary.seconds = time.perf_counter() - began
    return summary


def _clock(settings: Settings, end: datetime, months: int) -> Clock:
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    start = end.replace(
        year=year, month=month + 1, day=1, hour=0, minute=0, second=0, microsecond=0
    )
    return Clock(start, end, settings.broker_sla, settings.broker_reminder_grace_working_days)


def _area(database: Database, options: Options) -> Area:
    with unit_of_work(database.sessionmaker) as session:
        ods = (options.board_ods or synth_area.default_board_ods(options.seed)).strip().upper()
        board_id, _ = synth_area.board(session, ods, options.seed)
        return synth_area.build(
            session, board_id, ods, options.seed, options.practices, options.timebanks
        )


def plan_all(area: Area, clock: Clock, options: Options, key: str) -> list[Plan]:
    """Every referral's story, in the order they arrive, with each member's share of the
    exchanges set so that the load has the Observations asked for."""
    times = received_times(random.Random(f"{key}/received"), options.referrals, clock)
    numbers = NhsNumbers(random.Random(key).randrange(1_000_000))
    sizes = [
        1.0 + 0.5 * random.Random(f"{key}/size/{i}").random() for i in range(len(area.practices))
    ]
    plans: list[Plan] = []
    seen: dict[int, list[Plan]] = {}
    for index, received in enumerate(times):
        rng = random.Random(f"{key}/plan/{index}")
        practice = rng.choices(range(len(area.practices)), weights=sizes)[0]
        earlier = [e for e in seen.get(practice, []) if (received - e.received_at).days > 60]
        again = rng.choice(earlier) if earlier and rng.random() < RE_REFERRED else None
        who = (
            again.person
            if again
            else person(rng, numbers, area.practices[practice].districts, clock.end.date())
        )
        p = plan(rng, index, area, practice, who, received, clock)
        p.patient_of = again.patient_of if again else index
        plans.append(p)
        seen.setdefault(practice, []).append(p)
    target = round(options.observations_per_referral * len(plans))
    fixed = sum(p.score_observations() + (p.enrolled_at is not None) for p in plans)
    assign_sides(plans, target - fixed, clock.end)
    return plans


def patient_grants(plans: list[Plan]) -> dict[int, set[int]]:
    """Per person (their first referral's index), the time banks that still read their Patient."""
    found: dict[int, set[int]] = {}
    for p in plans:
        found.setdefault(p.patient_of, set()).update(holds_patient(p))
    return found


def _summary(area: Area, clock: Clock) -> Summary:
    return Summary(
        board={"id": area.board_id, "ods": area.board_ods, "name": area.board_name},
        practices=[{"id": g.id, "ods": g.ods or "", "name": g.name} for g in area.practices],
        timebanks=[
            {"id": t.id, "name": t.name, "catchment": " ".join(t.districts)} for t in area.timebanks
        ],
        period={"start": clock.start.isoformat(), "end": clock.end.isoformat()},
    )


def _report(
    out: IO[str], summary: Summary, loader: synth_chunk.Loader, total: int, elapsed: float
) -> None:
    done = summary.referrals
    rows = summary.rows
    rate = rows / elapsed if elapsed else 0.0
    eta = elapsed / done * (total - done) if done else 0.0
    print(
        f"synth: {done:,}/{total:,} referrals, {sum(loader.counts.values()):,} resources, "
        f"{rows:,} rows ({rate:,.0f} rows/s), ETA {eta:,.0f} s",
        file=out,
        flush=True,
    )


def _rebuild(database: Database, settings: Settings, area: Area, out: IO[str]) -> int:
    """The outcome rows of the area's practices, by the code `spis outcomes rebuild` runs (which
    records its consent decisions as audit events, as every refresh does)."""
    began, referrals = time.perf_counter(), 0
    for practice in area.practices:

        def report(done: int, total: int, ods: str | None = practice.ods) -> None:
            spent = time.perf_counter() - began
            print(
                f"synth: outcome rows, {ods}: {done:,}/{total:,} people ({spent:,.0f} s)",
                file=out,
                flush=True,
            )

        rebuilt = rebuild(
            database.sessionmaker,
            settings,
            practice_id=practice.id,
            batch_size=500,
            progress=report,
        )
        referrals += rebuilt.referrals
        if rebuilt.failed:
            raise RuntimeError(
                f"outcome rows could not be computed for {len(rebuilt.failed)} people"
            )
    return referrals
