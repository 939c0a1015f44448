"""`spis transit-keys ensure`: SPIS's own JOSE keys, made once per deployment. `spis receive` and
`spis receive-keys`: the receiving end of SPIS's notifications, for integrators and tests."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from joserfc.jwk import ECKey

from referral_service.commands import CommandError, CommandGroup, Invocation
from referral_service.keys.jose import TransitKeyError, keys_dir, load_ring
from referral_service.kit.jwe_keys import ECDH_ES_A256KW, PRIVATE_MEMBERS

commands = CommandGroup()


@commands(
    "transit-keys", "ensure", help="create SPIS's JOSE signing and encryption keys if missing"
)
def transit_keys_ensure(args: argparse.Namespace, invocation: Invocation) -> object:
    directory = keys_dir(invocation.settings)
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


def _receive_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8900, help="port to listen on (0: any free)")
    parser.add_argument(
        "--key",
        type=Path,
        help="the receiver's private encryption key: a JWK or JWK Set file "
        "(from `spis receive-keys`); required unless --allow-plain",
    )
    parser.add_argument(
        "--spis-jwks",
        metavar="URL_OR_FILE",
        help="SPIS's public JWK Set (default: <SPIS_PUBLIC_BASE_URL>/.well-known/jwks.json)",
    )
    parser.add_argument(
        "--allow-plain",
        action="store_true",
        help="also take application/fhir+json bodies (development only; still signed)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="append each notification Bundle taken to this file, as JSON lines (default: none)",
    )
    parser.add_argument(
        "--gone", action="store_true", help="answer 410 to everything (SPIS turns it off)"
    )
    parser.add_argument(
        "--fail", type=int, default=0, metavar="N", help="answer 503 to the first N requests"
    )


@commands(
    "receive",
    help="run a receiver for SPIS's subscription notifications: verify, decrypt, check event "
    "numbers, print a line for each (docs/deliveries.md)",
    configure=_receive_arguments,
)
def receive(args: argparse.Namespace, invocation: Invocation) -> object:
    from referral_service.transit.endpoints import JWKS_PATH
    from referral_service.transit.receive_server import (
        Receiver,
        ReceiverServer,
        ReceiverSetupError,
        SpisKeys,
        load_private_keys,
    )

    if args.key is None and not args.allow_plain:
        raise CommandError("--key is required (or --allow-plain, for plain JSON only)")
    source = args.spis_jwks or f"{invocation.settings.public_base_url.rstrip('/')}{JWKS_PATH}"
    try:
        keys = load_private_keys(args.key) if args.key is not None else []
        receiver = Receiver(
            SpisKeys(source), keys, args.allow_plain, args.out, args.gone, args.fail
        )
        server = ReceiverServer((args.host, args.port), receiver)
    except ReceiverSetupError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror}): choose another --port"
        ) from None
    address = f"http://{args.host}:{server.server_port}/"
    print(f"spis receive: listening on {address} (SPIS keys: {source})", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return None


def _receive_keys_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="file to create with the private key (a JWK Set, mode 0600; never overwritten)",
    )
    parser.add_argument(
        "--jwks",
        type=Path,
        help="your client's public JWK Set (its signing keys): printed with the new key added "
        "(default: the new key alone)",
    )


@commands(
    "receive-keys",
    help="make an EC P-384 encryption key pair for a receiver: the private key to --out, the "
    "public JWK Set to register (`spis client add --jwks`) printed",
    configure=_receive_keys_arguments,
)
def receive_keys(args: argparse.Namespace, invocation: Invocation) -> object:
    registered = _public_jwks(args.jwks) if args.jwks is not None else []
    key = ECKey.generate_key("P-384")
    kid = key.thumbprint()
    private = key.as_dict(private=True, kid=kid, use="enc", alg=ECDH_ES_A256KW)
    try:
        descriptor = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CommandError(
            f"{args.out} exists: choose another --out (it is never overwritten)"
        ) from None
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"keys": [private]}, file, indent=2)
    public = key.as_dict(private=False, kid=kid, use="enc", alg=ECDH_ES_A256KW)
    # First: SPIS seals to the first usable encryption key of a client's set.
    return {"keys": [public, *registered]}


def _public_jwks(path: Path) -> list[object]:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError:
        raise CommandError(f"{path} is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list):
        raise CommandError(f"{path} does not hold a JWK Set (a JSON object with 'keys')")
    if any(isinstance(k, dict) and PRIVATE_MEMBERS & k.keys() for k in keys):
        raise CommandError(f"{path} holds private key material: give the public JWK Set")
    return keys
