"""What a `spis` command is, for the command groups that live beside their domain
(`organisations/cli.py`, `auth/cli.py`, ...). `cli.py` builds the parser from their lists and runs
the chosen command; this module sits below both, so a domain's commands never import `cli.py`
and never open the database themselves (`Invocation.unit_of_work` does).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from referral_service.config import Settings


class CommandError(Exception):
    """A problem with the command line itself (a missing file, unreadable JSON)."""


@dataclass(frozen=True)
class Invocation:
    """What a command gets besides its arguments."""

    settings: Settings
    # One transaction on a freshly opened database, committed when the block ends normally.
    unit_of_work: Callable[[], AbstractContextManager[Session]]


Handler = Callable[[argparse.Namespace, Invocation], object]
Configure = Callable[[argparse.ArgumentParser], None]


def _no_arguments(_parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    help: str
    handler: Handler
    configure: Configure = field(default=_no_arguments)


class CommandGroup:
    """One module's commands, in the order they are declared (which is the order `--help`
    lists them)."""

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def __call__(
        self, *path: str, help: str, configure: Configure | None = None
    ) -> Callable[[Handler], Handler]:
        """Register a subcommand, e.g. `@commands("org", "add", help=..., configure=...)`."""

        def register(handler: Handler) -> Handler:
            self.commands.append(Command(path, help, handler, configure or _no_arguments))
            return handler

        return register
