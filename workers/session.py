"""One engine per worker process; each task is one unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from referral_service.db import Database, open_database, unit_of_work
from workers.app import settings


@cache
def _database() -> Database:
    return open_database(settings)


def _factory() -> sessionmaker[Session]:
    return _database().sessionmaker


def engine() -> Engine:
    return _database().engine


@contextmanager
def session_scope() -> Iterator[Session]:
    with unit_of_work(_factory()) as session:
        yield session
