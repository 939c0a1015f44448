"""Verifying the chain: `spis audit verify` walks it, optionally against a signed anchor."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from referral_service.audit import chain, repository
from referral_service.audit.repository import ChainHead


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None


Progress = Callable[[int, int], None]  # (rows checked, rows in the table when the walk began)


def verify(
    session: Session,
    *,
    batch_size: int = 5000,
    progress: Progress | None = None,
    anchor: ChainHead | None = None,
) -> VerifyResult:
    """Walk the chain in seq order. A row that was edited fails its own hash; a row deleted leaves
    a gap at its seq; a row moved breaks the prev_hash link. `anchor` (a head kept elsewhere)
    also catches the newest rows being cut off, which the chain alone cannot show."""
    total = repository.last_seq(session)
    expected_seq, prev, checked = 1, chain.GENESIS, 0
    while batch := repository.links_after(session, expected_seq - 1, batch_size):
        for link in batch:
            if problem := _check(link, expected_seq, prev, anchor):
                return VerifyResult(False, checked, expected_seq, problem)
            expected_seq, prev, checked = expected_seq + 1, link.hash, checked + 1
        if progress is not None:
            progress(checked, total)
    if anchor is not None and checked < anchor.seq:
        return VerifyResult(
            False, checked, checked + 1, f"rows from this seq to {anchor.seq} were removed"
        )
    return VerifyResult(True, checked)


def _check(link: chain.Link, seq: int, prev: str, anchor: ChainHead | None) -> str | None:
    if link.seq != seq:
        return "row missing (deleted)"
    if link.prev_hash != prev:
        return "prev_hash does not match the previous row (rows deleted, inserted or reordered)"
    if chain.link_hash(prev, seq, link.event) != link.hash:
        return "hash does not match the row (row edited)"
    if anchor is not None and anchor.seq == seq and anchor.hash != link.hash:
        return "hash differs from the anchored head (chain rewritten)"
    return None


def head(session: Session) -> ChainHead | None:
    return repository.head(session)
