"""Verifying the trail: `spis audit verify` walks the chain, optionally against a signed anchor,
then checks that every event is either chained or queued for the sealer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from referral_service.audit import chain, repository
from referral_service.audit.repository import ChainHead


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int  # chain rows checked
    first_bad_seq: int | None = None  # the chain position (`audit_chain.pos`) that failed
    reason: str | None = None
    queued: int = 0  # events committed but not chained yet
    oldest_queued: datetime | None = None  # when the oldest of them was recorded


Progress = Callable[[int, int], None]  # (rows checked, rows in the chain when the walk began)


def verify(
    session: Session,
    *,
    batch_size: int = 5000,
    progress: Progress | None = None,
    anchor: ChainHead | None = None,
) -> VerifyResult:
    """Walk the chain by position. An edited event fails its own hash; a chain row deleted leaves
    a gap at its position; an event deleted leaves its chain row without one; rows moved break
    the prev_hash link. Then every event must be chained or queued: one in neither was slipped in
    past the trigger, or had its chain row (the newest ones too) or queue row removed. `anchor` (a
    head kept elsewhere) also catches a chain rewritten from some row onward, and the newest
    rows cut off together with their events."""
    total = repository.last_pos(session)
    expected, prev, checked = 1, chain.GENESIS, 0
    while batch := repository.links_after(session, expected - 1, batch_size):
        for link in batch:
            if problem := _check(link, expected, prev, anchor):
                return VerifyResult(False, checked, expected, problem)
            expected, prev, checked = expected + 1, link.hash, checked + 1
        if found := _groups_differ(session, batch):
            pos, problem = found
            return VerifyResult(False, pos - 1, pos, problem)
        if progress is not None:
            progress(checked, total)
    if anchor is not None and checked < anchor.seq:
        return VerifyResult(
            False, checked, checked + 1, f"rows from this seq to {anchor.seq} were removed"
        )
    if problem := _unaccounted(session):
        return VerifyResult(False, checked, None, problem)
    state = repository.queue_state(session)
    return VerifyResult(True, checked, queued=state.count, oldest_queued=state.oldest_recorded)


def _check(link: chain.Link, pos: int, prev: str, anchor: ChainHead | None) -> str | None:
    if link.pos != pos:
        return "chain row missing (deleted)"
    if link.event is None:
        return f"the event this row chains (seq {link.event_seq}) is missing (deleted)"
    if link.prev_hash != prev:
        return "prev_hash does not match the previous row (rows deleted, inserted or reordered)"
    if chain.link_hash(prev, pos, link.event) != link.hash:
        return "hash does not match the row (row edited, or another event put in its place)"
    if anchor is not None and anchor.seq == pos and anchor.hash != link.hash:
        return "hash differs from the anchored head (chain rewritten)"
    return None


def _groups_differ(session: Session, batch: list[chain.Link]) -> tuple[int, str] | None:
    """The first chained merged event whose group rows (not hashed: they only find it) are not
    exactly what its hashed `entity_groups` says: a row edited, added or removed would show a
    tenant or patient another event, or hide this one from them."""
    merged = [
        (link.pos, link.event_seq, link.event.entity_groups)
        for link in batch
        if link.event is not None and link.event.entity_groups is not None
    ]
    stored = repository.group_rows(session, [seq for _, seq, _ in merged])
    for pos, seq, column in merged:
        try:
            groups = chain.groups_of(column)
        except ValueError:
            return pos, f"the entity_groups of event seq {seq} are unreadable"
        expected = {(n, g.tenant_org_id, g.patient_id) for n, g in enumerate(groups)}
        if stored[seq] != expected:
            return pos, (
                f"the group rows of event seq {seq} differ from its hashed "
                "entity_groups (audit_event_group edited)"
            )
    return None


def _unaccounted(session: Session) -> str | None:
    if (seq := repository.first_stray_group(session)) is not None:
        return (
            f"a group row names event seq {seq}, which is missing or has no groups "
            "(audit_event_group edited)"
        )
    if (seq := repository.first_queued_without_event(session)) is not None:
        return f"event seq {seq} was queued for sealing and is missing (deleted)"
    if (seq := repository.first_unaccounted_event(session)) is not None:
        return (
            f"event seq {seq} is neither chained nor queued (inserted behind SPIS's back, "
            "or its chain or queue row removed)"
        )
    return None


def head(session: Session) -> ChainHead | None:
    return repository.head(session)
