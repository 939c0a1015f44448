"""`spis outcomes ...`: keeping the outcome rows whole, the reports (`spis outcomes report`), and
the figures boards enter (`spis outcomes cost`)."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date
from decimal import Decimal

from fhir_adapters.measure_report import report_csv
from fhir_adapters.measures import MEASURES
from referral_service.commands import CommandGroup, Invocation
from referral_service.context import Context
from referral_service.outcomes import service
from referral_service.outcomes.rebuild import rebuild
from referral_service.outcomes.text import render_table, report_json
from referral_service.principal import Principal

commands = CommandGroup()


# --- keeping the rows whole: `spis outcomes rebuild` ---------------------------------------------


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("must be a whole number of at least 1")
    return value


def _rebuild_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--practice",
        help="only this practice's referrals, its organisation id (default: every practice)",
    )
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=200,
        help="patients per transaction, one commit each (default: 200)",
    )


def _report_progress(done: int, total: int) -> None:
    print(f"spis outcomes rebuild: {done}/{total} patients", file=sys.stderr, flush=True)


@commands(
    "outcomes",
    "rebuild",
    help="recompute every referral's outcome rows from the stored records and the ledger",
    configure=_rebuild_arguments,
)
def outcomes_rebuild(args: argparse.Namespace, invocation: Invocation) -> object:
    done = rebuild(
        invocation.unit_of_work,
        invocation.settings,
        practice_id=args.practice,
        batch_size=args.batch_size,
        progress=_report_progress,
    )
    return {"patients": done.patients, "referrals": done.referrals, "failed": done.failed}


# --- end of `spis outcomes rebuild` --------------------------------------------------------------


# --- reports and the programme cost (service.py) ------------------------------------------------


def _day(text: str) -> date:
    try:
        if len(text) == len("YYYY-MM-DD"):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)")


_POUNDS = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,2})?$")


def _pence(text: str) -> int:
    """Pounds as the operator types them ("40000", "40000.50") → pence."""
    if not _POUNDS.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in pounds (e.g. 40000.00)")
    return int(Decimal(text) * 100)


def _period_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", required=True, help="the health board's organisation id")
    parser.add_argument("--start", required=True, type=_day, help="first day, YYYY-MM-DD")
    parser.add_argument("--end", required=True, type=_day, help="last day, YYYY-MM-DD (included)")


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--measure", required=True, choices=list(MEASURES), help="the Measure")
    _period_arguments(parser)
    parser.add_argument(
        "--focus",
        help=(
            "narrow to Organization/<id>: a practice or a time bank in the board's area "
            "(default: the whole board)"
        ),
    )
    parser.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help="what to print: a table for people, CSV (as $evaluate-measure gives it) or JSON",
    )


@commands(
    "outcomes",
    "report",
    help="a health board's outcome report for a period, after disclosure control (audited)",
    configure=_report_arguments,
)
def outcomes_report(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        ctx = Context(session, Principal.spis(), invocation.settings)
        report = service.evaluate(ctx, args.measure, args.start, args.end, args.board, args.focus)
    if args.format == "json":
        return report_json(report)
    sys.stdout.write(report_csv(report) if args.format == "csv" else render_table(report))
    return None


def _cost_arguments(parser: argparse.ArgumentParser) -> None:
    _period_arguments(parser)
    parser.add_argument(
        "--amount", required=True, type=_pence, help="the programme's cost in pounds, e.g. 40000.00"
    )


@commands(
    "outcomes",
    "cost",
    help="enter what a board's programme cost over a period, for its social value estimate",
    configure=_cost_arguments,
)
def outcomes_cost(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        ctx = Context(session, Principal.spis(), invocation.settings)
        service.set_programme_cost(ctx, args.board, args.start, args.end, args.amount, "cli")
        stored = service.programme_cost(session, args.board, args.start, args.end)
    return {
        "board_id": args.board,
        "period_start": args.start.isoformat(),
        "period_end": args.end.isoformat(),
        "amount_pence": stored,
    }
