"""`spis transit-keys ensure`: SPIS's own JOSE keys, made once per deployment."""

from __future__ import annotations

import argparse

from referral_service.commands import CommandError, CommandGroup, Invocation
from referral_service.keys.jose import TransitKeyError, keys_dir, load_ring

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
