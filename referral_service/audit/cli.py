"""`spis audit verify` and `spis audit anchor`.

Progress goes to stderr so that stdout stays one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from referral_service.audit import anchor, repository, sealer
from referral_service.audit.verify import verify
from referral_service.commands import CommandError, CommandGroup, Invocation
from referral_service.config import Settings
from referral_service.db import opened
from referral_service.keys.jose import KeyRing, TransitKeyError, keys_dir, load_ring
from referral_service.kit.clock import utcnow

commands = CommandGroup()


class AuditCommandError(Exception):
    """An anchor file that cannot be read or trusted, or keys that cannot sign one."""


def _verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--anchor",
        type=Path,
        metavar="FILE",
        help="an anchor written by `spis audit anchor`: also fail if any row up to its seq "
        "changed or rows after it were removed (default: the chain alone)",
    )
    parser.add_argument(
        "--no-seal",
        action="store_true",
        help="only read: do not chain the events still queued first (for a read-only replica; "
        "they are then checked for presence only, and counted)",
    )


@commands(
    "audit",
    "verify",
    help="check the audit trail's hash chain (exit status 1 when broken)",
    configure=_verify_arguments,
)
def audit_verify(args: argparse.Namespace, invocation: Invocation) -> object:
    try:
        result = verify_command(
            invocation.settings, anchor_file=args.anchor, seal_first=not args.no_seal
        )
    except AuditCommandError as exc:
        raise CommandError(str(exc)) from None
    if not result["ok"]:
        print(json.dumps(result, indent=2))
        where = "" if result["first_bad_seq"] is None else f" at seq {result['first_bad_seq']}"
        raise CommandError(f"the audit chain is broken{where}: {result['reason']}")
    return result


def _anchor_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="also write the signed anchor to FILE, for a second party to keep "
        "(default: print it only)",
    )


@commands(
    "audit",
    "anchor",
    help="print (and with --out write) the audit chain's head, signed with SPIS's signing key",
    configure=_anchor_arguments,
)
def audit_anchor(args: argparse.Namespace, invocation: Invocation) -> object:
    try:
        return anchor_command(invocation.settings, args.out)
    except AuditCommandError as exc:
        raise CommandError(str(exc)) from None


def verify_command(
    settings: Settings, *, anchor_file: Path | None = None, seal_first: bool = True
) -> dict[str, object]:
    """Chain what is queued (unless `seal_first` is off), then walk the whole chain;
    {"ok", "checked", "first_bad_seq", "reason", "queued", "oldest_queued_s"} and, with an anchor
    file, the anchor it was checked against. `queued` counts events committed but not chained
    (those committed while the command ran, or all of them when no sealer runs), and
    `oldest_queued_s` is the age of the oldest: a sealer that is behind or stopped shows there."""
    anchored = _read_anchor(anchor_file, settings) if anchor_file is not None else None
    with opened(settings) as database:
        if seal_first:
            _print_sealed(sealer.seal_all(database.engine))
        with database.sessionmaker() as session:
            result = verify(
                session,
                progress=_print_progress,
                anchor=anchored.head if anchored else None,
            )
    oldest = result.oldest_queued
    found: dict[str, object] = {
        "ok": result.ok,
        "checked": result.checked,
        "first_bad_seq": result.first_bad_seq,
        "reason": result.reason,
        "queued": result.queued,
        "oldest_queued_s": None
        if oldest is None
        else round((utcnow() - oldest).total_seconds(), 1),
    }
    if anchored is not None:
        found["anchor"] = {
            "seq": anchored.head.seq,
            "hash": anchored.head.hash,
            "anchored_at": anchored.anchored_at,
        }
    return found


def anchor_command(settings: Settings, out: Path | None = None) -> dict[str, Any]:
    """Chain what is queued, then sign the chain's head; write it to `out` (atomically) when
    given. Events committed before the command are covered by the anchor."""
    with opened(settings) as database:
        sealer.seal_all(database.engine)
        with database.sessionmaker() as session:
            head = repository.head(session)
    document = anchor.make(head, _ring(settings), utcnow())
    if out is not None:
        _write(out, document)
    return document


def _ring(settings: Settings) -> KeyRing:
    try:
        return load_ring(keys_dir(settings), generate=settings.environment != "production")
    except (TransitKeyError, OSError) as exc:
        raise AuditCommandError(f"SPIS's signing key is not usable: {exc}") from None


def _read_anchor(path: Path, settings: Settings) -> anchor.Anchor:
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise AuditCommandError(f"cannot read the anchor file {path}: {exc.strerror}") from None
    except ValueError:
        raise AuditCommandError(f"the anchor file {path} is not JSON") from None
    try:
        return anchor.read(document, _ring(settings))
    except anchor.AnchorError as exc:
        raise AuditCommandError(f"{path}: {exc}") from None


def _write(path: Path, document: dict[str, Any]) -> None:
    """Whole or not at all: a half-written anchor would fail the next verify."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise AuditCommandError(f"cannot write the anchor file {path}: {exc.strerror}") from None


def _print_sealed(count: int) -> None:
    if count:
        print(
            f"spis audit verify: chained {count} queued events first", file=sys.stderr, flush=True
        )


def _print_progress(checked: int, total: int) -> None:
    print(f"spis audit verify: {checked} of {total} rows checked", file=sys.stderr, flush=True)
