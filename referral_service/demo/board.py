"""`spis demo`, the health board's part: the demo's practice and time banks placed in a demo
board's area, synthetic referrals loaded beside them (the story's own referrals would be masked in
every cell: a board's figures need people by the dozen), and the board's reports for the demo's
period printed as tables.

What an operator does with `spis org add healthboard`, `spis org set-board`, `spis synth` and
`spis outcomes report`, through the same services. Run again, it reuses the board and the
synthetic load instead of adding another.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from datetime import date

from fhir_adapters.measures import MEASURES, Report, Stratifier
from referral_service.config import Settings
from referral_service.context import Context
from referral_service.db import opened, unit_of_work
from referral_service.demo import synth
from referral_service.demo.setup import Cast
from referral_service.demo.synth_area import practice_ods
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register, set_board
from referral_service.outcomes.rebuild import rebuild
from referral_service.outcomes.service import evaluate, set_programme_cost
from referral_service.outcomes.text import render_table
from referral_service.principal import Principal

BOARD_ODS = "QDM"
BOARD_NAME = "Demo Integrated Care Board"
SYNTHETIC = synth.Options(
    referrals=400,
    board_ods=BOARD_ODS,
    practices=3,
    timebanks=2,
    months=12,
    seed=1,
    observations_per_referral=10.0,
)
# What the board says the programme cost over the demo's period: made up, like the data.
DEMO_COST_PENCE = 45_000_00
FULL = "spis-referral-funnel"  # printed with every stratum; the others as totals
Say = Callable[[str], None]


def place(settings: Settings, cast: Cast) -> str:
    """The demo board (registered once), with the practice and both time banks in its area."""
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        board = organisations.by_ods(session, BOARD_ODS) or register(
            session, OrgKind.HEALTHBOARD, BOARD_NAME, BOARD_ODS
        )
        for system in (cast.practice, cast.catford, cast.lewisham):
            set_board(session, system.org_id, board.id)
        return board.id


def load_synthetic(settings: Settings, cast: Cast, say: Say) -> None:
    """The synthetic referrals, unless an earlier run loaded them; then the outcome rows of the
    demo practice too (its own referrals' rows are kept by the worker; this makes sure)."""
    with opened(settings) as database:
        with unit_of_work(database.sessionmaker) as session:
            loaded = organisations.by_ods(session, practice_ods(1, BOARD_ODS, 0)) is not None
        if loaded:
            say("synthetic referrals loaded by an earlier run are reused")
        else:
            summary = synth.run(settings, SYNTHETIC, io.StringIO()).as_json()
            say(
                f"SYNTHETIC DATA: {summary['referrals']} made-up referrals from "
                f"{len(summary['practices'])} synthetic practices to {len(summary['timebanks'])} "
                f"synthetic time banks over {SYNTHETIC.months} months ({summary['observations']:,} "
                f"Observations, {summary['seconds']:.0f} s; `spis synth`)"
            )
        rebuild(database.sessionmaker, settings, practice_id=cast.practice.org_id)


def period(today: date) -> tuple[date, date]:
    """The demo's period: the month of the demo and the two before it, up to today."""
    year, month = divmod(today.year * 12 + today.month - 1 - 2, 12)
    return date(year, month + 1, 1), today


def enter_cost(settings: Settings, board_id: str, start: date, end: date) -> None:
    """The board enters its programme cost for the period (`spis outcomes cost`)."""
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        ctx = Context(session, Principal.spis(), settings)
        set_programme_cost(ctx, board_id, start, end, DEMO_COST_PENCE, "demo")


def reports(settings: Settings, board_id: str, start: date, end: date) -> list[str]:
    """Each Measure as a table: the funnel with its strata, the others as totals (`spis
    outcomes report` prints any of them in full). Each report pulled is audited."""
    tables = []
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        ctx = Context(session, Principal.spis(), settings)
        for measure_id in MEASURES:
            report = evaluate(ctx, measure_id, start, end, board_id)
            tables.append(render_table(report if measure_id == FULL else _totals(report)))
    return tables


def _totals(report: Report) -> Report:
    cells = tuple(c for c in report.cells if c.stratifier is Stratifier.TOTAL)
    return dataclasses.replace(report, cells=cells)
