"""`spis org add` and `spis timebank set`. Registering an organisation lives here rather than in
organisations/ because a time bank is registered with its directory profile, and timebanks
already imports organisations (never the other way)."""

from __future__ import annotations

import argparse

from referral_service.commands import CommandError, CommandGroup, Invocation
from referral_service.organisations.cli import org_json
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register
from referral_service.timebanks import repository as timebanks
from referral_service.timebanks.service import set_profile

org_commands = CommandGroup()  # listed first by `spis --help`, with `org list`
commands = CommandGroup()


def _org_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind", choices=["practice", "timebank", "healthboard"], help="what the organisation is"
    )
    parser.add_argument("--name", required=True, help="the organisation's name")
    parser.add_argument("--ods", help="ODS organisation code (required for a GP practice)")
    parser.add_argument(
        "--board",
        help=(
            "the health board whose area a practice or time bank is in, its organisation id "
            "(default: none; `spis org set-board` changes it later)"
        ),
    )
    timebank = parser.add_argument_group("time banks (required with `timebank`)")
    timebank.add_argument(
        "--catchment", help="postcode districts, comma-separated: SE6,SE13 (required)"
    )
    timebank.add_argument(
        "--offers", help="offer categories, comma-separated: befriending,gardening (required)"
    )
    timebank.add_argument("--capacity", type=int, help="open referral slots (required)")
    timebank.add_argument("--contact", help="contact address for the broker (default: none)")


@org_commands("org", "add", help="register an organisation", configure=_org_add_arguments)
def org_add(args: argparse.Namespace, invocation: Invocation) -> object:
    kind = OrgKind(args.kind)
    if kind is OrgKind.TIMEBANK and (
        not args.catchment or not args.offers or args.capacity is None
    ):
        raise CommandError("a time bank needs --catchment, --offers and --capacity")
    with invocation.unit_of_work() as session:
        org = register(session, kind, args.name, args.ods, args.board)
        result = org_json(org)
        if kind is OrgKind.TIMEBANK:
            profile = set_profile(
                session,
                org.id,
                args.catchment.split(","),
                args.offers.split(","),
                args.capacity,
                args.contact,
            )
            result.update(
                catchment=profile.catchment.split(),
                offers=profile.offers.split(),
                capacity=profile.capacity,
            )
        return result


def _timebank_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="the time bank's organisation id")
    unchanged = "(default: unchanged)"
    parser.add_argument(
        "--catchment", help=f"postcode districts, comma-separated: SE6,SE13 {unchanged}"
    )
    parser.add_argument("--offers", help=f"offer categories, comma-separated {unchanged}")
    parser.add_argument("--capacity", type=int, help=f"open referral slots {unchanged}")
    parser.add_argument("--contact", help=f"contact address for the broker {unchanged}")


@commands(
    "timebank",
    "set",
    help="change a time bank's catchment, offers, capacity or contact",
    configure=_timebank_set_arguments,
)
def timebank_set(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        current = timebanks.get(session, args.org)
        if current is None:
            raise CommandError("no time bank directory profile for this organisation id")
        profile = set_profile(
            session,
            args.org,
            args.catchment.split(",") if args.catchment else current.catchment.split(),
            args.offers.split(",") if args.offers else current.offers.split(),
            args.capacity if args.capacity is not None else current.capacity,
            args.contact if args.contact is not None else current.contact,
        )
        return {
            "org_id": profile.org_id,
            "catchment": profile.catchment.split(),
            "offers": profile.offers.split(),
            "capacity": profile.capacity,
            "contact": profile.contact,
        }
