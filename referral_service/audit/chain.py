"""The hash chain, as pure functions: hash_n = SHA-256(hash_{n-1} || canonical_json(n, event_n)),
where n is the event's position in the chain (`audit_chain.pos`, from 1 with no gaps).

The canonical form is RFC 8785 JSON for the value types used here (strings, integers, null, lists
of strings): keys sorted, no whitespace, UTF-8. It covers the position (its key is "seq": chains
written before the sealer numbered events by their chain position, and still verify), so an event
moved to another place in the chain no longer matches its hash. Changing this form breaks every
existing chain: add fields only with a new chain version.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import orjson

from referral_service.kit.clock import as_utc

GENESIS = "0" * 64  # prev_hash of the first row


@dataclass(frozen=True, slots=True)
class Event:
    """An event's hashed fields, exactly as stored."""

    id: str
    recorded: datetime
    action: str
    kind: str
    actor_client_id: str
    actor_org_id: str
    tenant_org_id: str | None
    patient_id: str | None
    entities: tuple[str, ...]
    purpose: str | None
    outcome: int
    detail: str | None


@dataclass(frozen=True, slots=True)
class Recorded:
    """A stored event and its `seq` (insert order, not its place in the chain)."""

    seq: int
    event: Event


@dataclass(frozen=True, slots=True)
class Link:
    """A chain row: its position, the event it seals (None when that row is gone) and both
    hashes."""

    pos: int
    event_seq: int
    event: Event | None
    prev_hash: str
    hash: str


def canonical(pos: int, event: Event) -> bytes:
    fields = {
        "seq": pos,
        "id": event.id,
        # Microseconds: what both PostgreSQL and SQLite keep, so a stored row hashes the same.
        "recorded": as_utc(event.recorded).isoformat(timespec="microseconds"),
        "action": event.action,
        "kind": event.kind,
        "actor_client_id": event.actor_client_id,
        "actor_org_id": event.actor_org_id,
        "tenant_org_id": event.tenant_org_id,
        "patient_id": event.patient_id,
        "entities": list(event.entities),
        "purpose": event.purpose,
        "outcome": event.outcome,
        "detail": event.detail,
    }
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: str, pos: int, event: Event) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(pos, event)).hexdigest()


def entities_column(entities: tuple[str, ...]) -> str:
    return " ".join(entities)


def entities_of(column: str) -> tuple[str, ...]:
    return tuple(column.split())
