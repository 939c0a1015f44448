"""Every query about referral submissions; tenancy inside each query."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from referral_service.principal import Principal
from referral_service.referrals.models import Submission


def find_submission(session: Session, principal: Principal, key: str) -> Submission | None:
    stmt = select(Submission).where(Submission.org_id == principal.org_id, Submission.key == key)
    return session.scalar(stmt)


def add_submission(session: Session, submission: Submission) -> None:
    """Sent now, with Core rather than the unit of work (which costs more than the row): the
    store's queued rows (store/write_queue.py), its ServiceRequest among them, go first. The
    object is not added to the session."""
    table = cast(Table, Submission.__table__)
    values: dict[str, Any] = {
        column.key: value
        for column in table.columns
        if (value := getattr(submission, column.key)) is not None  # None: the column default
    }
    session.execute(insert(table), [values])
