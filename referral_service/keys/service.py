"""Rotating the data key: a new current key at once, then background re-encryption in batches.

Every batch is its own short transaction, so the service stays up and keeps serving; values sealed
with an older key stay readable until the job has re-sealed them (the key ring keeps every key).
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

from referral_service.config import Settings
from referral_service.jobs.service import JobName, enqueue, handles
from referral_service.keys import ring
from referral_service.ledger.models import Member, Offer, Request
from referral_service.store.models import ResourceVersion, StoredResource

log = logging.getLogger("spis.keys")
# Every sealed column: (model, attribute).
SEALED: tuple[tuple[Any, str], ...] = (
    (StoredResource, "body"),
    (ResourceVersion, "body"),
    (Member, "alias"),
    (Offer, "description"),
    (Request, "description"),
)


@dataclass(frozen=True)
class KeyStatus:
    current: int
    rows_by_key: dict[int, int]

    @property
    def stale(self) -> int:
        return sum(n for key_id, n in self.rows_by_key.items() if key_id != self.current)


def rotate(session: Session) -> int:
    """A new current data key, and the job that re-seals everything under it."""
    key_id = ring.add_key(session.connection())
    enqueue(session, JobName.REENCRYPT, key=str(key_id))
    return key_id


def status(session: Session) -> KeyStatus:
    connection = session.connection()
    current, _ = ring.current(connection)
    counts: dict[int, int] = {}
    for model, attribute in SEALED:
        prefix = func.substr(getattr(model, attribute), 1, 5)
        for head, n in session.execute(select(prefix, func.count()).group_by(prefix)):
            key_id = struct.unpack(">BI", bytes(head))[1]
            counts[key_id] = counts.get(key_id, 0) + int(n)
    return KeyStatus(current, counts)


def reencrypt_batch(session: Session, batch_size: int) -> int:
    """Re-seal up to `batch_size` values still under an older key; returns how many were done."""
    connection = session.connection()
    current, _ = ring.current(connection)
    head = struct.pack(">BI", 1, current)
    done = 0
    for model, attribute in SEALED:
        column = getattr(model, attribute)
        stale = select(model).where(func.substr(column, 1, 5) != head).limit(batch_size - done)
        for row in session.scalars(stale):  # loading opens each value with its own key
            flag_modified(row, attribute)  # flushing seals it again, under the current key
            done += 1
        if done >= batch_size:
            break
    session.flush()
    return done


@handles(JobName.REENCRYPT)
def reencrypt_job(session: Session, settings: Settings, args: dict[str, str]) -> None:
    """One batch per job run; the next batch is enqueued until nothing is left (progress is logged
    and `spis keys status` shows what remains)."""
    done = reencrypt_batch(session, settings.reencrypt_batch_size)
    remaining = status(session).stale
    log.info(
        "re-encrypted a batch", extra={"done": done, "remaining": remaining, "key": args["key"]}
    )
    if done and remaining:
        enqueue(session, JobName.REENCRYPT, key=args["key"])
