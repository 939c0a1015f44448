"""`spis outcomes ...`: keeping the outcome rows whole, and the figures boards enter."""

from __future__ import annotations

import argparse
import sys

from referral_service.commands import CommandGroup, Invocation
from referral_service.outcomes.rebuild import rebuild

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
    parser.add_argument("--practice", help="only this practice's referrals (its organisation id)")
    parser.add_argument(
        "--batch-size",
        type=_positive,
        default=200,
        help="patients per transaction (one commit each)",
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
