"""Keeping the reports boards pull computed: the beat runs `warm` every
`outcome_report_warm_interval_s` (60 s), so that a board's next pull of a report it pulled before
is served from the cache (report_cache.py) even when its figures changed in between.

Each cached report is checked as a pull would check it (its board's data version and its
fingerprint) and computed again, in a transaction of its own, when either moved on. A report no
one has pulled for `outcome_report_keep_days` (7) is forgotten instead, and so is one that could no
longer be asked for (its focus left the board's area). Nothing here is a pull: no audit event, and
`pulled_at` stays as the board left it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from referral_service.config import Settings
from referral_service.context import Context
from referral_service.errors import ServiceError
from referral_service.kit.clock import utcnow
from referral_service.outcomes import report_repository as repository
from referral_service.outcomes import service
from referral_service.principal import Principal

UnitOfWork = Callable[[], AbstractContextManager[Session]]  # one transaction, committed at exit


@dataclass
class Warmed:
    checked: int = 0
    computed: int = 0
    forgotten: int = 0


def warm(sessions: UnitOfWork, settings: Settings, now: datetime | None = None) -> Warmed:
    now = now or utcnow()
    done = Warmed()
    with sessions() as session:
        done.forgotten = repository.drop_unpulled(
            session, now - timedelta(days=settings.outcome_report_keep_days)
        )
        keys = repository.cached_keys(session)
    for key in keys:
        done.checked += 1
        with sessions() as session:
            try:
                done.computed += service.keep_computed(
                    Context(session, Principal.spis(), settings), key
                )
            except ServiceError:
                repository.drop_cached(session, key)
                done.forgotten += 1
    return done
