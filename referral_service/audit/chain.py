"""The hash chain, as pure functions: hash_n = SHA-256(hash_{n-1} || canonical_json(n, event_n)),
where n is the event's position in the chain (`audit_chain.pos`, from 1 with no gaps).

The canonical form is RFC 8785 JSON for the value types used here (strings, integers, null, lists
of strings): keys sorted, no whitespace, UTF-8. It covers the position (its key is "seq": chains
written before the sealer numbered events by their chain position, and still verify), so an event
moved to another place in the chain no longer matches its hash. Changing this form breaks every
existing chain: add fields only with a new chain version, or, like `entity_groups`, only to
events that have them (an event without one hashes exactly as before it existed).

An event that covers several tenants or patients (a search page: the request's reads, merged into
one stored event) names whose each run of its entities is in `entity_groups`, and is shown as one
event per group (`parts`): BALP's one AuditEvent per patient, at the cost of one stored event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    # Exactly as stored (`groups_column`), so the hash covers the stored text; None when the
    # event is about one tenant and patient at most, named by the two fields above.
    entity_groups: str | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """Whose `size` entities of a merged event are, following the previous group's."""

    tenant_org_id: str | None
    patient_id: str | None
    size: int


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
    if event.entity_groups is not None:
        fields["entity_groups"] = event.entity_groups
    return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)


def link_hash(prev_hash: str, pos: int, event: Event) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical(pos, event)).hexdigest()


def entities_column(entities: tuple[str, ...]) -> str:
    return " ".join(entities)


def entities_of(column: str) -> tuple[str, ...]:
    return tuple(column.split())


def groups_column(groups: Sequence[Group]) -> str:
    return orjson.dumps([[g.tenant_org_id, g.patient_id, g.size] for g in groups]).decode()


def groups_of(column: str) -> tuple[Group, ...]:
    """The groups of a stored `entity_groups`; ValueError if it is not what `groups_column`
    writes (only tampering makes it so, and the hash then fails too)."""
    found = orjson.loads(column)
    if not isinstance(found, list):
        raise ValueError("entity_groups is not a list")
    return tuple(_group(item) for item in found)


def _group(item: object) -> Group:
    match item:
        case [str() | None as tenant, str() | None as patient, int() as size] if size >= 0:
            return Group(tenant, patient, size)
    raise ValueError("an entity group is not [tenant, patient, count]")


PART_SEPARATOR = "-"  # a part's id is `<event id>-<n>`: a valid FHIR id, at most 48 characters


def split_part_id(shown_id: str) -> tuple[str, int | None]:
    """(event id, part number) of an id as shown: a part's `<id>-<n>`, or an event's own id
    (an event id is a UUID, 36 characters, so a part's is the longer one)."""
    base, separator, n = shown_id[:36], shown_id[36:37], shown_id[37:]
    # One spelling per part: up to six ASCII digits, no leading zeros.
    digits = 0 < len(n) <= 6 and n.isascii() and n.isdigit() and (n == "0" or n[0] != "0")
    if separator == PART_SEPARATOR and digits:
        return base, int(n)
    return shown_id, None


def parts(event: Event) -> list[Event]:
    """The events a merged event stands for, in order: each with its group's tenant, patient and
    entities, and the id `<id>-<n>`. An event that is not merged is its own only part."""
    if event.entity_groups is None:
        return [event]
    return [part(event, n) for n in range(len(groups_of(event.entity_groups)))]


def part(event: Event, n: int) -> Event:
    """Part `n` (from 0) of a merged event; IndexError if it has no such part."""
    assert event.entity_groups is not None
    groups = groups_of(event.entity_groups)
    if not 0 <= n < len(groups):
        raise IndexError(n)
    start = sum(g.size for g in groups[:n])
    group = groups[n]
    return replace(
        event,
        id=f"{event.id}{PART_SEPARATOR}{n}",
        tenant_org_id=group.tenant_org_id,
        patient_id=group.patient_id,
        entities=event.entities[start : start + group.size],
        entity_groups=None,
    )
