"""The jti replay store is the database, so it holds across processes and concurrent requests."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.auth import repository
from referral_service.auth.assertion import authenticate
from referral_service.auth.jwks import JwksCache
from referral_service.auth.models import UsedAssertion
from referral_service.auth.oauth import OAuthError
from referral_service.config import Settings
from tests.fixtures.systems import TestSystem

TOKEN_URL = "http://testserver/auth/token"


def test_concurrent_use_of_one_assertion_admits_exactly_one(
    session_factory: sessionmaker[Session], settings: Settings, practice: TestSystem
) -> None:
    """Two "processes" (separate sessions, separate connections) present the same assertion.
    The second waits on the first's uncommitted row and then fails on the primary key."""
    assertion = practice.assertion(TOKEN_URL)
    cache = JwksCache()
    outcome: list[str] = []

    def second() -> None:
        with session_factory() as session:
            try:
                authenticate(session, assertion, settings, cache)
                session.commit()
                outcome.append("accepted")
            except OAuthError as exc:
                outcome.append(exc.description)

    with session_factory() as first:
        assert authenticate(first, assertion, settings, cache).client_id == practice.client_id
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)  # the second is now blocked on our uncommitted insert
        assert outcome == []
        first.commit()
    thread.join(timeout=10)
    assert outcome == ["This assertion (jti) has already been used"]


def test_expired_rows_are_purged_only_after_the_leeway(
    session_factory: sessionmaker[Session], settings: Settings, practice: TestSystem
) -> None:
    now = datetime.now(UTC)
    with session_factory.begin() as session:
        for jti, age in [("long-gone", 120), ("within-leeway", 30)]:
            repository.record_assertion(
                session, practice.client_id, jti, now - timedelta(seconds=age)
            )
    with session_factory.begin() as session:
        authenticate(session, practice.assertion(TOKEN_URL), settings, JwksCache())
    with session_factory() as session:
        left = set(session.scalars(select(UsedAssertion.jti)))
    # "within-leeway" could still be accepted (exp + 60 s skew), so it must still block replays.
    assert "long-gone" not in left
    assert "within-leeway" in left
    assert len(left) == 2


def test_replay_within_leeway_still_refused(
    session_factory: sessionmaker[Session], settings: Settings, practice: TestSystem
) -> None:
    assertion = practice.assertion(TOKEN_URL, exp=int(time.time()) - 30)
    with session_factory.begin() as session:
        authenticate(session, assertion, settings, JwksCache())
    with session_factory.begin() as session, pytest.raises(OAuthError, match="already been used"):
        authenticate(session, assertion, settings, JwksCache())


def test_global_purge(session_factory: sessionmaker[Session], practice: TestSystem) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    with session_factory.begin() as session:
        repository.record_assertion(session, practice.client_id, "a", old)
        repository.record_assertion(session, "another-client", "b", old)
    with session_factory.begin() as session:
        assert repository.purge_assertions(session, datetime.now(UTC)) == 2
