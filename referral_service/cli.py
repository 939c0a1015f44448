"""`spis`: the operator's command line. JSON results on stdout, one-line errors on stderr.

Each subcommand is one function registered with `@command(...)`; a command that touches the
database opens `unit_of_work(settings)`, which commits when the command succeeds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from referral_service.auth.models import Client
from referral_service.auth.service import register_client
from referral_service.config import Settings, get_settings
from referral_service.db import make_engine, make_sessionmaker
from referral_service.errors import ServiceError
from referral_service.organisations.models import Organisation, OrgKind
from referral_service.organisations.repository import all_orgs
from referral_service.organisations.service import register
from referral_service.timebanks.service import set_profile

if TYPE_CHECKING:
    from fastapi import FastAPI

Handler = Callable[[argparse.Namespace, Settings], object]
Configure = Callable[[argparse.ArgumentParser], None]


class CommandError(Exception):
    """A problem with the command line itself (a missing file, unreadable JSON)."""


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    help: str
    handler: Handler
    configure: Configure = field(default=lambda _parser: None)


COMMANDS: list[Command] = []


def command(
    *path: str, help: str, configure: Configure | None = None
) -> Callable[[Handler], Handler]:
    """Register a subcommand, e.g. `@command("org", "add", help=..., configure=...)`."""

    def register(handler: Handler) -> Handler:
        COMMANDS.append(Command(path, help, handler, configure or (lambda _parser: None)))
        return handler

    return register


@contextmanager
def unit_of_work(settings: Settings) -> Iterator[Session]:
    from referral_service.jobs.producer import Producer
    from referral_service.jobs.service import PRODUCER_KEY
    from referral_service.keys import ring

    engine = make_engine(settings.database_url)
    ring.register(engine, settings.kek.get_secret_value())
    try:
        factory = make_sessionmaker(engine, {PRODUCER_KEY: Producer(settings)})
        with factory() as session, session.begin():
            yield session
    finally:
        engine.dispose()


# -- organisations -------------------------------------------------------------------------------


def _org_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "kind", choices=["practice", "timebank", "healthboard"], help="what the organisation is"
    )
    parser.add_argument("--name", required=True, help="the organisation's name")
    parser.add_argument("--ods", help="ODS organisation code (required for a GP practice)")
    timebank = parser.add_argument_group("time banks (required with `timebank`)")
    timebank.add_argument(
        "--catchment", help="postcode districts, comma-separated: SE6,SE13 (required)"
    )
    timebank.add_argument(
        "--offers", help="offer categories, comma-separated: befriending,gardening (required)"
    )
    timebank.add_argument("--capacity", type=int, help="open referral slots (required)")
    timebank.add_argument("--contact", help="contact address for the broker (default: none)")


def _org_json(org: Organisation) -> dict[str, object]:
    return {"id": org.id, "kind": org.kind.value, "name": org.name, "ods_code": org.ods_code}


@command("org", "add", help="register an organisation", configure=_org_add_arguments)
def org_add(args: argparse.Namespace, settings: Settings) -> object:
    kind = OrgKind(args.kind)
    if kind is OrgKind.TIMEBANK and (
        not args.catchment or not args.offers or args.capacity is None
    ):
        raise CommandError("a time bank needs --catchment, --offers and --capacity")
    with unit_of_work(settings) as session:
        org = register(session, kind, args.name, args.ods)
        result = _org_json(org)
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


@command("org", "list", help="list organisations")
def org_list(args: argparse.Namespace, settings: Settings) -> object:
    with unit_of_work(settings) as session:
        return [_org_json(org) for org in all_orgs(session)]


# -- clients -------------------------------------------------------------------------------------


def _client_add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="organisation id (from `spis org add`)")
    keys = parser.add_mutually_exclusive_group(required=True)
    keys.add_argument(
        "--jwks",
        type=Path,
        help="file holding the client's public JWK Set (or --jwks-url: required)",
    )
    keys.add_argument(
        "--jwks-url", help="URL where the client publishes its JWK Set (or --jwks: required)"
    )
    parser.add_argument("--scopes", help="space-separated system scopes (default: all allowed)")
    parser.add_argument("--name", help="a name for the client system (default: none)")


def _read_jwks(path: Path) -> dict[str, object]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise CommandError(f"{path} is not JSON") from None
    if not isinstance(document, dict):
        raise CommandError(f"{path} does not hold a JWK Set (a JSON object with 'keys')")
    return document


@command("client", "add", help="register a client system", configure=_client_add_arguments)
def client_add(args: argparse.Namespace, settings: Settings) -> object:
    jwks = _read_jwks(args.jwks) if args.jwks is not None else None
    with unit_of_work(settings) as session:
        client = register_client(
            session,
            args.org,
            jwks,
            args.jwks_url,
            args.scopes,
            args.name,
            require_https=settings.environment == "production",
        )
        return {
            "client_id": client.id,
            "org_id": client.org_id,
            "scopes": client.scopes,
            "token_url": settings.token_url,
        }


def _client_json(client: Client) -> dict[str, object]:
    keys = "jwks_url" if client.jwks_url else "jwks"
    return {
        "client_id": client.id,
        "org_id": client.org_id,
        "name": client.name,
        "active": client.active,
        "keys": keys,
        "scopes": client.scopes,
    }


def _client_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--org", help="only this organisation's clients (default: every organisation's)"
    )


@command("client", "list", help="list client systems", configure=_client_list_arguments)
def client_list(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.auth import repository as clients

    with unit_of_work(settings) as session:
        return [_client_json(c) for c in clients.for_org(session, args.org)]


def _client_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", required=True, help="the client_id")


@command(
    "client",
    "deactivate",
    configure=_client_id_argument,
    help="stop a client system getting tokens (tokens it holds expire within 5 minutes)",
)
def client_deactivate(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.auth.service import deactivate_client

    with unit_of_work(settings) as session:
        return _client_json(deactivate_client(session, args.client))


# -- time banks ----------------------------------------------------------------------------------


def _timebank_set_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--org", required=True, help="the time bank's organisation id")
    unchanged = "(default: unchanged)"
    parser.add_argument(
        "--catchment", help=f"postcode districts, comma-separated: SE6,SE13 {unchanged}"
    )
    parser.add_argument("--offers", help=f"offer categories, comma-separated {unchanged}")
    parser.add_argument("--capacity", type=int, help=f"open referral slots {unchanged}")
    parser.add_argument("--contact", help=f"contact address for the broker {unchanged}")


@command(
    "timebank",
    "set",
    help="change a time bank's catchment, offers, capacity or contact",
    configure=_timebank_set_arguments,
)
def timebank_set(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.timebanks import repository as timebanks

    with unit_of_work(settings) as session:
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


# -- audit ---------------------------------------------------------------------------------------


def _audit_verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--anchor",
        type=Path,
        metavar="FILE",
        help="an anchor written by `spis audit anchor`: also fail if any row up to its seq "
        "changed or rows after it were removed (default: the chain alone)",
    )


@command(
    "audit",
    "verify",
    help="check the audit trail's hash chain (exit status 1 when broken)",
    configure=_audit_verify_arguments,
)
def audit_verify(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.audit.cli import AuditCommandError, verify_command

    try:
        result = verify_command(settings, anchor_file=args.anchor)
    except AuditCommandError as exc:
        raise CommandError(str(exc)) from None
    if not result["ok"]:
        print(json.dumps(result, indent=2))
        raise CommandError(
            f"the audit chain is broken at seq {result['first_bad_seq']}: {result['reason']}"
        )
    return result


def _audit_anchor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="also write the signed anchor to FILE, for a second party to keep "
        "(default: print it only)",
    )


@command(
    "audit",
    "anchor",
    help="print (and with --out write) the audit chain's head, signed with SPIS's signing key",
    configure=_audit_anchor_arguments,
)
def audit_anchor(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.audit.cli import AuditCommandError, anchor_command

    try:
        return anchor_command(settings, args.out)
    except AuditCommandError as exc:
        raise CommandError(str(exc)) from None


# -- transit keys --------------------------------------------------------------------------------


@command("transit-keys", "ensure", help="create SPIS's JOSE signing and encryption keys if missing")
def transit_keys_ensure(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.transit.keys import TransitKeyError, keys_dir, load_ring

    directory = keys_dir(settings)
    try:
        ring = load_ring(directory, generate=True)
    except OSError as exc:
        raise CommandError(
            f"cannot write transit keys to {directory} ({exc.strerror}): SPIS_TRANSIT_KEYS_DIR "
            "must be a directory that the user running spis may write, or creatable by it"
        ) from None
    except TransitKeyError as exc:
        raise CommandError(str(exc)) from None
    return {"directory": str(directory), "public_jwks": ring.public_jwks()}


# -- keys ----------------------------------------------------------------------------------------


@command("keys", "rotate", help="make a new data key current and re-encrypt in the background")
def keys_rotate(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.keys.service import rotate, status

    with unit_of_work(settings) as session:
        key_id = rotate(session)
        stale = status(session).stale
    return {
        "current_key": key_id,
        "values_to_reencrypt": stale,
        "note": "a worker re-encrypts them in batches; `spis keys status` shows progress",
    }


@command("keys", "status", help="the current data key and how many values each key still seals")
def keys_status(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.keys.service import status

    with unit_of_work(settings) as session:
        found = status(session)
    return {
        "current_key": found.current,
        "values_by_key": found.rows_by_key,
        "to_reencrypt": found.stale,
        "retired_keys": found.retired,
        # complete: nothing left to re-seal and older keys retired; failed: see the job row's error
        "reencryption": found.reencryption,
    }


@command(
    "migrate",
    help="upgrade the database schema to the latest revision; with SPIS_APP_DATABASE_ROLE, "
    "also create that role and grant it only what the application needs",
)
def migrate(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.migrate import AppRoleError, grant_app_role, upgrade

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


@command("serve", help="run the API", configure=_serve_arguments)
def serve(args: argparse.Namespace, settings: Settings) -> object:
    import uvicorn

    from referral_service.cli_errors import public_url_warning
    from referral_service.embedded import embedded_worker, is_embedded
    from referral_service.logs import LOG_CONFIG

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
    return create_app()


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--no-serve", action="store_true", help="exit after the narrated loop instead of serving"
    )


@command(
    "demo",
    help="run the referral loop end to end on the embedded default",
    configure=_demo_arguments,
)
def demo(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.demo.run import run

    ensure_port_free(args.host, args.port, "make demo PORT={port}` or `spis demo --port {port}")
    run(settings, args.host, args.port, serve_forever=not args.no_serve)
    return None


def ensure_port_free(host: str, port: int, how: str) -> None:
    """Fail before starting anything, with a port to use instead ("how" shows how to pass it)."""
    from referral_service.cli_errors import listen_problem

    problem = listen_problem(host, port, how)
    if problem is not None:
        raise CommandError(problem)


def _celery(*argv: str) -> object:
    """Worker and beat run the Celery app from `workers` by name: this package never imports it."""
    import os

    os.execvp(sys.executable, [sys.executable, "-m", "celery", "-A", "workers.app", *argv])  # noqa: S606 - fixed argv, no shell
    return None  # pragma: no cover - exec does not return


@command("worker", help="run a Celery worker for background jobs")
def worker(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.health.probes import worker_node_name

    node = f"--hostname={worker_node_name(settings)}"  # what `spis health worker` pings
    return _celery("worker", "--loglevel=INFO", "--without-gossip", "--without-mingle", node)


@command("beat", help="run the Celery beat scheduler (exactly one per deployment)")
def beat(args: argparse.Namespace, settings: Settings) -> object:
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


# -- health probes (container health checks) -----------------------------------------------------


def _health_api_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000/readyz", help="the readiness URL to call"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


@command(
    "health",
    "api",
    help="exit 0 when the API answers /readyz with 200",
    configure=_health_api_arguments,
)
def health_api(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.health.probes import probe_api

    return _probe(lambda: probe_api(args.url, args.timeout))


def _health_worker_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer")


@command(
    "health",
    "worker",
    help="exit 0 when this host's `spis worker` answers a ping through the broker",
    configure=_health_worker_arguments,
)
def health_worker(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.health.probes import probe_worker

    return _probe(lambda: probe_worker(settings, args.timeout))


def _health_beat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-age",
        type=float,
        default=120.0,
        help="the oldest heartbeat, in seconds, that still counts as healthy",
    )


@command(
    "health",
    "beat",
    help="exit 0 when `spis beat` touched its heartbeat file recently",
    configure=_health_beat_arguments,
)
def health_beat(args: argparse.Namespace, settings: Settings) -> object:
    from referral_service.health.probes import probe_beat

    return _probe(lambda: probe_beat(settings, args.max_age))


def _probe(run: Callable[[], object]) -> object:
    from referral_service.health.probes import ProbeFailed

    try:
        return run()
    except ProbeFailed as exc:
        raise CommandError(str(exc)) from None


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
    for cmd in COMMANDS:
        parent = _subparsers_for(groups, cmd.path[:-1])
        sub = parent.add_parser(
            cmd.path[-1], help=cmd.help, description=cmd.help, formatter_class=HelpFormatter
        )
        cmd.configure(sub)
        sub.set_defaults(handler=cmd.handler)
    return parser


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
        result = args.handler(args, get_settings())
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
