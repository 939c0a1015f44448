"""The members list with every figure (`service.member_rows`, the broker's members page and
`GET /members`): known numbers on a small ledger, and a number of queries that does not grow
with the number of members."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from itertools import pairwise
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.sealer import SEALER_THREAD
from referral_service.config import Settings
from referral_service.ledger import service
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import (
    Routed,
    add_member,
    context_of,
    end_membership,
    enrol,
    exchange,
    ledger_url,
    reverse,
)


def test_member_rows_add_up_the_ledger(
    client: TestClient,
    settings: Settings,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    routed_referral: Routed,
    session_factory: sessionmaker[Session],
) -> None:
    sam, ana, bo = (add_member(client, timebank_headers, timebank, a) for a in ("Sam", "Ana", "Bo"))
    grace = enrol(client, timebank_headers, timebank, routed_referral.child_task_id).json()
    grace_id = grace["member"]["id"]
    for giver, receiver, minutes in [
        (sam, ana, 60),
        (ana, sam, 30),
        (sam, bo, 45),
        (sam, grace_id, 120),
        (grace_id, ana, 60),
    ]:
        made = exchange(client, timebank_headers, timebank, giver, receiver, minutes=minutes)
        assert made.status_code == 201, made.text
    wrong = exchange(client, timebank_headers, timebank, grace_id, bo, minutes=30).json()
    assert reverse(client, timebank_headers, timebank, wrong["id"]).status_code == 201
    assert end_membership(client, timebank_headers, timebank, bo).status_code == 200

    with session_factory() as session:
        listed = service.member_rows(context_of(session, settings, timebank))

    assert listed.left_out == []
    figures = {
        row.member.id: (
            row.balance,
            row.given,
            row.received,
            row.partners,
            row.reciprocity,
            row.referred,
            row.ended,
        )
        for row in listed.items
    }
    assert figures == {
        sam: (195, 225, 30, 3, None, False, False),
        ana: (-90, 30, 120, 2, None, False, False),
        bo: (-45, 0, 45, 1, None, False, True),  # the reversed 30 minutes and partner are gone
        grace_id: (-60, 60, 120, 2, 0.5, True, False),
    }
    assert [row.member.id for row in listed.items] == [sam, ana, bo, grace_id]  # oldest first
    answered = client.get(ledger_url(timebank, "/members"), headers=timebank_headers).json()
    assert {m["id"]: _api_figures(m) for m in answered} == {
        member: (balance, given, received, partners, reciprocity, ended)
        for member, (balance, given, received, partners, reciprocity, _, ended) in figures.items()
    }


def _api_figures(member: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        member[key]
        for key in (
            "balance_minutes",
            "given_minutes",
            "received_minutes",
            "partners",
            "reciprocity",
            "ended",
        )
    )


def test_member_rows_costs_the_same_queries_for_any_number_of_members(
    settings: Settings,
    timebank: TestSystem,
    session_factory: sessionmaker[Session],
    pg_engine: Engine,
) -> None:
    small = _ledger_of(session_factory, settings, timebank, 3)
    with _counted(pg_engine) as statements, session_factory() as session:
        rows = service.member_rows(context_of(session, settings, timebank)).items
    few = len(statements)
    assert len(rows) == small

    larger = small + _ledger_of(session_factory, settings, timebank, 15)
    with _counted(pg_engine) as statements, session_factory() as session:
        rows = service.member_rows(context_of(session, settings, timebank)).items
    assert len(rows) == larger

    assert len(statements) == few, statements
    ledger_queries = [s for s in statements if "ledger_" in s]
    assert len(ledger_queries) == 2  # totals for every member, partners for every member


def _ledger_of(
    session_factory: sessionmaker[Session], settings: Settings, tb: TestSystem, n: int
) -> int:
    """`n` members, each giving time to the next."""
    with session_factory() as session, session.begin():
        ctx = context_of(session, settings, tb)
        members = [service.add_member(ctx, f"Member {i}").id for i in range(n)]
        for giver, receiver in pairwise(members):
            new = service.NewExchange(giver, receiver, 30, date(2026, 11, 20), "befriending")
            service.record_exchange(ctx, new)
    return n


@contextmanager
def _counted(engine: Engine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(*args: Any) -> None:
        if threading.current_thread().name != SEALER_THREAD:  # the app's audit sealer
            statements.append(str(args[2]))  # (conn, cursor, statement, parameters, context, many)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)
