"""Every query about referral submissions; tenancy inside each query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from referral_service.principal import Principal
from referral_service.referrals.models import Submission


@dataclass(frozen=True, slots=True)
class Previous:
    """What a resend is answered from: the first answer's references and its content digest."""

    response: bytes
    digest: str | None


def find_submission(session: Session, principal: Principal, key: str) -> Previous | None:
    """Core, not the ORM: a resend needs two columns, and every intake asks."""
    stmt = select(Submission.response, Submission.digest).where(
        Submission.org_id == principal.org_id, Submission.key == key
    )
    found = session.execute(stmt).first()
    return None if found is None else Previous(found.response, found.digest)


def add_submission(session: Session, values: dict[str, Any]) -> None:
    """Sent now, with Core rather than the unit of work (which costs more than the row): the
    store's queued rows (store/write_queue.py), its ServiceRequest among them, go first. Columns
    left out take their defaults."""
    session.execute(insert(cast(Table, Submission.__table__)), [values])
