"""Rotating the data key: a new current key at once, then background re-encryption in batches.

Every batch is its own short transaction, so the service stays up and keeps serving; values sealed
with an older key stay readable until the job has re-sealed them. Every process reads the current
key once per transaction (keys/ring.py), so nothing is sealed under an older key once the rotation
has committed, except by transactions that had already begun: the job's last run waits for those
(`ring.lock_older_keys`), counts again, and retires the older keys only when nothing is left.
Values in the older format (before the tenant was bound) are re-sealed the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from referral_service.config import Settings
from referral_service.jobs.models import Job, JobStatus
from referral_service.jobs.service import JobName, enqueue, handles
from referral_service.keys import ring, sealed
from referral_service.keys.models import DataKey
from referral_service.kit import envelope

log = logging.getLogger("spis.keys")


@dataclass(frozen=True)
class KeyStatus:
    current: int
    # (format, key id) of every sealed value → how many
    rows_by_header: dict[tuple[int, int], int]
    retired: list[int]
    job: str | None  # the latest re-encryption job's status, if there was one

    @property
    def rows_by_key(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for (_, key_id), n in self.rows_by_header.items():
            counts[key_id] = counts.get(key_id, 0) + n
        return counts

    @property
    def stale(self) -> int:
        """Values still to re-seal: under an older key, or in the older format."""
        wanted = (envelope.FORMAT, self.current)
        return sum(n for head, n in self.rows_by_header.items() if head != wanted)

    @property
    def reencryption(self) -> str:
        if self.job == JobStatus.PENDING.value:
            return "in progress"
        if self.job == JobStatus.FAILED.value:
            return "failed"
        if self.stale:  # e.g. format-1 values after an upgrade, and no job asked for yet
            return "needed: run `spis keys rotate`"
        return "complete"


def rotate(session: Session) -> int:
    """A new current data key, and the job that re-seals everything under it."""
    key_id = ring.add_key(session.connection())
    enqueue(session, JobName.REENCRYPT, key=str(key_id))
    return key_id


def status(session: Session) -> KeyStatus:
    """Counted from the values themselves, so it is true whichever process wrote them."""
    counts: dict[tuple[int, int], int] = {}
    for model, attribute in sealed.columns():
        column = getattr(model, attribute)
        prefix = func.substr(column, 1, envelope.HEADER.size)
        present = select(prefix, func.count()).where(
            column.is_not(None)
        )  # NULL: nothing sealed (an optional text or secret)
        for head, n in session.execute(present.group_by(prefix)):
            version, key_id = envelope.HEADER.unpack(bytes(head))
            counts[(version, key_id)] = counts.get((version, key_id), 0) + int(n)
    retired = session.scalars(
        select(DataKey.id).where(DataKey.retired_at.is_not(None)).order_by(DataKey.id)
    )
    last_job = session.scalar(
        select(Job.status)
        .where(Job.name == JobName.REENCRYPT.value)
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    job = None if last_job is None else JobStatus(last_job).value
    return KeyStatus(ring.current_id(session.connection()), counts, list(retired), job)


def reencrypt_batch(session: Session, batch_size: int) -> int:
    """Re-seal up to `batch_size` values not yet under the current key and format; returns how
    many were done. Rows another transaction is writing are skipped (and locked while re-sealed),
    so re-sealing never overwrites a newer version."""
    head = envelope.header(ring.current_id(session.connection()))
    done = 0
    for model, attribute in sealed.columns():
        column = getattr(model, attribute)
        stale = (
            select(model)
            .where(func.substr(column, 1, len(head)) != head)
            .limit(batch_size - done)
            .with_for_update(skip_locked=True)
        )
        for row in session.scalars(stale):  # loading opens each value with its own key
            flag_modified(row, attribute)  # flushing seals it again, under the current key
            done += 1
        if done >= batch_size:
            break
    session.flush()
    return done


def finish(session: Session) -> int:
    """Retire every older key if nothing is left under it; returns what is left (0 when done).

    Locks the older keys first, which waits for every transaction that read one of them as
    current (they may still seal under it), then counts again."""
    connection = session.connection()
    older = ring.lock_older_keys(connection, ring.current_id(connection))
    remaining = status(session).stale
    if not remaining:
        ring.retire(connection, older)
    return remaining


@handles(JobName.REENCRYPT)
def reencrypt_job(session: Session, settings: Settings, args: dict[str, str]) -> None:
    """One batch per run; runs again until a run finds nothing and `finish` confirms it (progress
    is logged and `spis keys status` shows what remains)."""
    done = reencrypt_batch(session, settings.reencrypt_batch_size)
    remaining = finish(session) if not done else None
    log.info(
        "re-encrypted a batch", extra={"done": done, "remaining": remaining, "key": args["key"]}
    )
    if done or remaining:
        enqueue(session, JobName.REENCRYPT, key=args["key"])
