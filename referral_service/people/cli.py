"""`spis user add|list|disable|link`: the people who use the web workspace.

A new person (or one who forgot their password or lost their phone) gets a one-time set-up link;
the operator passes it on. It is printed once and stored only as a hash.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from referral_service.commands import CommandGroup, Invocation
from referral_service.kit.clock import as_utc
from referral_service.people import service
from referral_service.people.models import Person, Role

commands = CommandGroup()


def _instant(value: datetime | None) -> str | None:
    return as_utc(value).isoformat(timespec="seconds") if value is not None else None


def person_json(person: Person) -> dict[str, object]:
    """What an operator may see: no hash, no secret."""
    return {
        "id": person.id,
        "email": person.email,
        "role": person.role.value,
        "org": person.org_id,
        "active": person.active,
        "set_up": person.password_hash is not None,
        "second_factor": person.totp_confirmed_at is not None,
        "locked_until": _instant(person.locked_until),
        "created_at": _instant(person.created_at),
        "last_sign_in_at": _instant(person.last_sign_in_at),
        "disabled_at": _instant(person.disabled_at),
    }


def _link_json(issued: service.NewPerson) -> dict[str, object]:
    person = issued.person
    return {
        "id": person.id,
        "email": person.email,
        "role": person.role.value,
        "org": person.org_id,
        "setup_url": issued.setup_url,
        "expires_at": _instant(issued.expires_at),
    }


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="organisation id (from `spis org add`)")
    parser.add_argument("--email", required=True, help="the person's email address")
    parser.add_argument(
        "--role",
        required=True,
        choices=[role.value for role in Role],
        help="broker (at a time bank), practice (at a GP practice), analyst (at a health board)",
    )


@commands(
    "user",
    "add",
    help="add a person to an organisation; prints their one-time set-up link",
    configure=_add_arguments,
)
def user_add(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        added = service.add_person(
            session, invocation.settings, org_id=args.org, email=args.email, role=Role(args.role)
        )
        return _link_json(added)


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", help="only the people of this organisation (default: everyone)")


@commands("user", "list", help="list people (no secrets)", configure=_list_arguments)
def user_list(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return [person_json(person) for person in service.people(session, args.org)]


def _email_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the person's email address")


@commands(
    "user",
    "disable",
    help="stop a person signing in, and end their sessions",
    configure=_email_argument,
)
def user_disable(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return person_json(service.disable(session, args.email))


@commands(
    "user",
    "link",
    help="issue a new set-up link (forgotten password, lost phone): the person sets a new "
    "password and second factor; older links, their sessions and the old password stop working",
    configure=_email_argument,
)
def user_link(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return _link_json(service.reissue_setup_link(session, invocation.settings, args.email))
