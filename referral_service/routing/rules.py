"""Pure routing rules: ranking candidates, working days for the broker SLA."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from referral_service.kit.refs import OrgId


@dataclass(frozen=True, slots=True)
class Candidate:
    org_id: OrgId
    name: str
    fit: int  # how many of the referral's needs it offers
    spare: int  # open slots left


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best fit first, then most spare capacity; the id keeps the order stable."""
    return sorted(candidates, key=lambda c: (-c.fit, -c.spare, c.org_id))


def add_working_days(start: datetime, days: int) -> datetime:
    """`days` working days (Monday to Friday) after `start`. Bank holidays are not modelled."""
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5:
            left -= 1
    return current
