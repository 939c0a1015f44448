"""One engine per worker process; each task is one unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from referral_service.db import open_database, unit_of_work
from workers.app import settings


@cache
def _factory() -> sessionmaker[Session]:
    return open_database(settings).sessionmaker


@contextmanager
def session_scope() -> Iterator[Session]:
    with unit_of_work(_factory()) as session:
        yield session
