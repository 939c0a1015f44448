"""`spis org list` and `spis org set-board` (`spis org add` lives in timebanks/cli.py: a time bank's profile is set with it)."""

from __future__ import annotations

import argparse

from referral_service.commands import CommandGroup, Invocation
from referral_service.organisations.models import Organisation
from referral_service.organisations.repository import all_orgs
from referral_service.organisations.service import set_board

commands = CommandGroup()


def org_json(org: Organisation) -> dict[str, object]:
    return {
        "id": org.id,
        "kind": org.kind.value,
        "name": org.name,
        "ods_code": org.ods_code,
        "board_id": org.board_id,
    }


@commands("org", "list", help="list organisations")
def org_list(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return [org_json(org) for org in all_orgs(session)]


def _set_board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="the practice's or time bank's id")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--board", help="the health board's organisation id (required unless --none)"
    )
    where.add_argument("--none", action="store_true", help="take it out of every board's area")


@commands(
    "org",
    "set-board",
    help="place a practice or a time bank in a health board's area",
    configure=_set_board_arguments,
)
def org_set_board(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return org_json(set_board(session, args.org, None if args.none else args.board))
