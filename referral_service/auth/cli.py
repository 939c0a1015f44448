"""`spis client add|list|deactivate`: the client systems that may ask for tokens."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from referral_service.auth import repository as clients
from referral_service.auth.models import Client
from referral_service.auth.service import deactivate_client, register_client
from referral_service.commands import CommandError, CommandGroup, Invocation

commands = CommandGroup()


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


@commands("client", "add", help="register a client system", configure=_client_add_arguments)
def client_add(args: argparse.Namespace, invocation: Invocation) -> object:
    jwks = _read_jwks(args.jwks) if args.jwks is not None else None
    with invocation.unit_of_work() as session:
        client = register_client(
            session,
            args.org,
            jwks,
            args.jwks_url,
            args.scopes,
            args.name,
            require_https=invocation.settings.environment == "production",
        )
        return {
            "client_id": client.id,
            "org_id": client.org_id,
            "scopes": client.scopes,
            "token_url": invocation.settings.token_url,
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


@commands("client", "list", help="list client systems", configure=_client_list_arguments)
def client_list(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return [_client_json(c) for c in clients.for_org(session, args.org)]


def _client_id_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", required=True, help="the client_id")


@commands(
    "client",
    "deactivate",
    configure=_client_id_argument,
    help="stop a client system getting tokens (tokens it holds expire within 5 minutes)",
)
def client_deactivate(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        return _client_json(deactivate_client(session, args.client))
