"""`spis org list` (`spis org add` lives in timebanks/cli.py: a time bank's profile is set with it)."""

from __future__ import annotations

import argparse

from referral_service.commands import CommandGroup, Invocation
from referral_service.organisations.models import Organisation
from referral_service.organisations.repository import all_orgs

commands = CommandGroup()


def org_json(org: Organisation) -> dict[str, object]:
    return {"id": org.id, "kind": org.kind.value, "name": org.name, "ods_code": org.ods_code}


@commands("org", "list", help="list organisations")
def org_list(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return [org_json(org) for org in all_orgs(session)]
