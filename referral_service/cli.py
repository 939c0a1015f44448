"""`spis`: the operator's command line. JSON results on stdout, one-line errors on stderr.

Each command group lives beside its domain (`organisations/cli.py`, `auth/cli.py`, ...) as a
`CommandGroup` (commands.py); this module builds the parser from them, keeps the commands that run
SPIS's processes (migrate, serve, demo, synth, worker, beat), and runs the chosen command. A command that
touches the database opens `invocation.unit_of_work()`, which commits when the command succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from referral_service.audit.cli import commands as audit_commands
from referral_service.auth.cli import commands as client_commands
from referral_service.commands import Command, CommandError, CommandGroup, Invocation
from referral_service.config import Settings, get_settings
from referral_service.db import opened, unit_of_work
from referral_service.deliveries.cli import commands as deliveries_commands
from referral_service.errors import ServiceError
from referral_service.health.cli import commands as health_commands
from referral_service.keys.cli import commands as keys_commands
from referral_service.organisations.cli import commands as org_list_commands
from referral_service.outcomes.cli import commands as outcomes_commands
from referral_service.people.cli import commands as user_commands
from referral_service.timebanks.cli import commands as timebank_commands
from referral_service.timebanks.cli import org_commands as org_add_commands
from referral_service.transit.cli import commands as transit_commands

if TYPE_CHECKING:
    from fastapi import FastAPI

commands = CommandGroup()  # this module's own: the processes


@contextmanager
def _unit_of_work(settings: Settings) -> Iterator[Session]:
    with opened(settings) as database, unit_of_work(database.sessionmaker) as session:
        yield session


@commands(
    "migrate",
    help="upgrade the database schema to the latest revision; with SPIS_APP_DATABASE_ROLE, "
    "also create that role and grant it only what the application needs",
)
def migrate(args: argparse.Namespace, invocation: Invocation) -> object:
    from referral_service.migrate import AppRoleError, grant_app_role, upgrade

    settings = invocation.settings
    upgrade(settings.database_url)
    result: dict[str, object] = {"migrated": True}
    if settings.app_database_role:
        password = settings.app_database_password
        try:
            created = grant_app_role(
                settings.database_url,
                settings.app_database_role,
                password.get_secret_value() if password else None,
            )
        except AppRoleError as exc:
            raise CommandError(str(exc)) from None
        result["app_role"] = {"name": settings.app_database_role, "created": created}
    return result


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port",
        type=int,
        default=8000,
        help="port to listen on (clients still use SPIS_PUBLIC_BASE_URL)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="API processes (each with its own connections)"
    )


@commands("serve", help="run the API", configure=_serve_arguments)
def serve(args: argparse.Namespace, invocation: Invocation) -> object:
    import uvicorn

    from referral_service.cli_errors import public_url_warning
    from referral_service.embedded import embedded_worker, is_embedded
    from referral_service.logs import LOG_CONFIG

    settings = invocation.settings

    def run() -> None:
        uvicorn.run(
            "referral_service.cli:server_process_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=LOG_CONFIG,
        )

    ensure_port_free(args.host, args.port, "spis serve --port {port}")
    if warning := public_url_warning(settings, args.port):
        print(f"spis: warning: {warning}", file=sys.stderr)
    if is_embedded(settings):  # no broker server: run the background worker here too
        with embedded_worker(settings):
            run()
    else:
        run()
    return None


def server_process_app() -> FastAPI:
    """The app factory of `spis serve`. With `--workers N` uvicorn calls it in each of its worker
    processes, which must end with `spis serve` even when it is killed (kit/lifeline.py)."""
    import multiprocessing

    from referral_service.app import create_app
    from referral_service.kit.lifeline import die_with_parent

    parent = multiprocessing.parent_process()
    if parent is not None and parent.pid is not None:
        die_with_parent(parent.pid)
    return create_app(whole_process=True)


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--no-serve", action="store_true", help="exit after the narrated loop instead of serving"
    )


@commands(
    "demo",
    help="run the referral loop end to end on the embedded default",
    configure=_demo_arguments,
)
def demo(args: argparse.Namespace, invocation: Invocation) -> object:
    from referral_service.demo.run import run

    settings = invocation.settings
    ensure_port_free(args.host, args.port, "make demo PORT={port}` or `spis demo --port {port}")
    run(settings, args.host, args.port, serve_forever=not args.no_serve)
    return None


def _synth_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--referrals", type=int, required=True, help="how many referrals")
    parser.add_argument(
        "--board-ods",
        help="the health board's ODS code: registered when unknown (default: QS<seed>)",
    )
    parser.add_argument("--practices", type=int, default=6, help="practices to register")
    parser.add_argument("--timebanks", type=int, default=3, help="time banks to register")
    parser.add_argument("--months", type=int, default=12, help="months of history")
    parser.add_argument("--seed", type=int, default=1, help="the same seed gives the same data")
    parser.add_argument(
        "--observations-per-referral",
        type=float,
        default=40.0,
        help="Observations per referral on average: scores, enrolments and exchange hours",
    )
    parser.add_argument(
        "--end",
        type=datetime.fromisoformat,
        help="the clock's now, ISO 8601: nothing happens after it (default: now)",
    )


@commands(
    "synth",
    help="fill the database with synthetic referrals, exchanges and wellbeing scores for demos "
    "and benchmarks: a health board, practices and time banks in its area, and per referral "
    "what intake, routing, brokers and the ledger would have stored, written straight to the "
    "store in bulk (so no audit events and no jobs), then the outcome rows rebuilt",
    configure=_synth_arguments,
)
def synth(args: argparse.Namespace, invocation: Invocation) -> object:
    from referral_service.demo.synth import Options, run

    options = Options(
        referrals=args.referrals,
        board_ods=args.board_ods,
        practices=args.practices,
        timebanks=args.timebanks,
        months=args.months,
        seed=args.seed,
        observations_per_referral=args.observations_per_referral,
        end=args.end,
    )
    try:
        return run(invocation.settings, options).as_json()
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def ensure_port_free(host: str, port: int, how: str) -> None:
    """Fail before starting anything, with a port to use instead ("how" shows how to pass it)."""
    from referral_service.cli_errors import listen_problem

    problem = listen_problem(host, port, how)
    if problem is not None:
        raise CommandError(problem)


def _celery(*argv: str) -> object:
    """Worker and beat run the Celery app from `workers` by name: this package never imports it."""
    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "workers.app", *argv])  # noqa: S606 - fixed argv, no shell
    return None  # pragma: no cover - exec does not return


@commands("worker", help="run a Celery worker for background jobs")
def worker(args: argparse.Namespace, invocation: Invocation) -> object:
    from referral_service.health.probes import worker_node_name

    settings = invocation.settings
    node = f"--hostname={worker_node_name(settings)}"  # what `spis health worker` pings
    return _celery("worker", "--loglevel=INFO", "--without-gossip", "--without-mingle", node)


@commands("beat", help="run the Celery beat scheduler (exactly one per deployment)")
def beat(args: argparse.Namespace, invocation: Invocation) -> object:
    settings = invocation.settings
    var_dir = _writable_dir(settings.var_dir, "SPIS_VAR_DIR")  # the schedule and heartbeat files
    return _celery("beat", "--loglevel=INFO", f"--schedule={var_dir / 'celerybeat-schedule'}")


def _writable_dir(path: Path, setting: str) -> Path:
    """Create `path` when missing; a one-line error when it cannot be created or written."""
    if path.exists() and not path.is_dir():
        raise CommandError(f"{setting} {path} is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CommandError(f"cannot create {setting} {path} ({exc.strerror})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise CommandError(f"{setting} {path} is not writable by this user")
    return path


# -- wiring --------------------------------------------------------------------------------------


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, when it has one (text that names its own
    default, such as "(default: unchanged)", is left alone)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS)
        if shown and action.option_strings and "default" not in text:
            text += " (default: %(default)s)"
        return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spis",
        description="Social Prescribing Integration Service",
        formatter_class=HelpFormatter,
    )
    groups: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]] = {
        (): parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    }
    for cmd in _all_commands():
        parent = _subparsers_for(groups, cmd.path[:-1])
        sub = parent.add_parser(
            cmd.path[-1], help=cmd.help, description=cmd.help, formatter_class=HelpFormatter
        )
        cmd.configure(sub)
        sub.set_defaults(handler=cmd.handler)
    return parser


def _all_commands() -> Iterator[Command]:
    """In the order `spis --help` has always listed them."""
    for group in (
        org_add_commands,
        org_list_commands,
        client_commands,
        user_commands,
        timebank_commands,
        audit_commands,
        transit_commands,
        keys_commands,
        outcomes_commands,
        deliveries_commands,
        commands,
        health_commands,
    ):
        yield from group.commands


def _subparsers_for(
    groups: dict[tuple[str, ...], argparse._SubParsersAction[argparse.ArgumentParser]],
    path: tuple[str, ...],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """The sub-command group for `path` ("org", "client", ...), created on first use."""
    if path not in groups:
        parent = _subparsers_for(groups, path[:-1])
        group_parser = parent.add_parser(
            path[-1], help=f"{' '.join(path)} commands", formatter_class=HelpFormatter
        )
        groups[path] = group_parser.add_subparsers(
            dest="_".join(path), required=True, metavar="COMMAND"
        )
    return groups[path]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        result = args.handler(args, Invocation(settings, lambda: _unit_of_work(settings)))
    except (ServiceError, CommandError, ValidationError, SQLAlchemyError, OSError) as exc:
        print(f"spis: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


def _one_line(exc: Exception) -> str:
    from referral_service.cli_errors import database_problem, settings_problem

    if isinstance(exc, ServiceError):
        return exc.message
    if isinstance(exc, ValidationError):  # settings from the environment
        return settings_problem(exc)
    if isinstance(exc, SQLAlchemyError):  # settings were read, or there would be no database
        return database_problem(exc, get_settings().database_url)
    if isinstance(exc, OSError) and exc.filename:  # a file or folder of the operator's
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


if __name__ == "__main__":
    sys.exit(main())
