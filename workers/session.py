"""One engine per worker process; each task is one unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

from sqlalchemy.orm import Session, sessionmaker

from referral_service.db import make_engine, make_sessionmaker, unit_of_work
from referral_service.jobs.producer import Producer
from referral_service.jobs.service import PRODUCER_KEY
from referral_service.keys import ring as key_ring
from workers.app import settings


@cache
def _factory() -> sessionmaker[Session]:
    engine = make_engine(settings.database_url)
    key_ring.register(engine, settings.kek.get_secret_value())
    return make_sessionmaker(engine, {PRODUCER_KEY: Producer(settings)})


@contextmanager
def session_scope() -> Iterator[Session]:
    with unit_of_work(_factory()) as session:
        yield session
