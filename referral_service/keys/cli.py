"""`spis keys rotate|status`: the data keys that seal patient data at rest."""

from __future__ import annotations

import argparse

from referral_service.commands import CommandGroup, Invocation
from referral_service.keys.service import rotate, status

commands = CommandGroup()


@commands("keys", "rotate", help="make a new data key current and re-encrypt in the background")
def keys_rotate(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        key_id = rotate(session)
        stale = status(session).stale
    return {
        "current_key": key_id,
        "values_to_reencrypt": stale,
        "note": "a worker re-encrypts them in batches; `spis keys status` shows progress",
    }


@commands("keys", "status", help="the current data key and how many values each key still seals")
def keys_status(args: argparse.Namespace, invocation: Invocation) -> object:
    with invocation.unit_of_work() as session:
        found = status(session)
    return {
        "current_key": found.current,
        "values_by_key": found.rows_by_key,
        "to_reencrypt": found.stale,
        "retired_keys": found.retired,
        # complete: nothing left to re-seal and older keys retired; failed: see the job row's error
        "reencryption": found.reencryption,
    }
