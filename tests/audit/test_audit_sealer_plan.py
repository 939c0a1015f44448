"""The sealer's read of the queue costs what the queue holds, never what the trail holds.

The queue churns: its statistics can say it is as large as audit_event just after a backlog was
drained. PostgreSQL then walked audit_event from its first event, probing the queue for each,
before finding the few queued ones (~1 s a turn with 280,000 events in the trail), so the sealer
fell further behind the more there was to seal."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import repository

_EVENTS = text(
    "INSERT INTO audit_event (id, recorded, action, kind, actor_client_id, actor_org_id, "
    "tenant_org_id, patient_id, entities, purpose, outcome, detail) "
    "SELECT gen_random_uuid()::text, now(), 'E', 'search', 'client', 'org', 'org', "
    "gen_random_uuid()::text, 'Task/' || gen_random_uuid()::text, 'TREAT', 0, NULL "
    "FROM generate_series(1, :n)"
)


LIMIT = 100  # a turn's batch, small beside the trail as in production (BATCH beside millions)
TRAIL = 40_000
_CHAIN_ALL = text(
    "INSERT INTO audit_chain (pos, event_seq, prev_hash, hash) "
    "SELECT seq, seq, repeat('0', 64), repeat('0', 64) FROM audit_event"
)


def _rows_read(plan: dict[str, Any], relation: str) -> int:
    """Rows the plan's nodes read from `relation`, over all their loops."""
    own = plan.get("Relation Name") == relation
    rows = int(plan["Actual Rows"]) * int(plan["Actual Loops"]) if own else 0
    return rows + sum(_rows_read(child, relation) for child in plan.get("Plans", []))


def _loops(plan: dict[str, Any], relation: str) -> list[int]:
    """The loops of each node that reads `relation`."""
    own = [int(plan["Actual Loops"])] if plan.get("Relation Name") == relation else []
    return own + [n for child in plan.get("Plans", []) for n in _loops(child, relation)]


def test_reading_the_queue_does_not_walk_the_trail_when_its_statistics_are_stale(
    session_factory: sessionmaker[Session], pg_engine: Engine
) -> None:
    with pg_engine.begin() as connection:
        connection.execute(_EVENTS, {"n": TRAIL})
    with pg_engine.connect() as connection:
        connection.execute(text("ANALYZE audit_unsealed"))  # the backlog, as autovacuum saw it
        connection.execute(text("ANALYZE audit_event"))
        connection.commit()
    with pg_engine.begin() as connection:  # drained (the chain's hashes do not matter here)
        connection.execute(_CHAIN_ALL)
        connection.execute(text("DELETE FROM audit_unsealed"))
    with pg_engine.begin() as connection:
        connection.execute(_EVENTS, {"n": 10})
    with pg_engine.connect() as connection:
        stmt = repository.queued_statement(LIMIT)
        sql = stmt.compile(connection, compile_kwargs={"literal_binds": True})
        [[explained]] = connection.execute(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).all()
        found = repository.queued(connection, LIMIT)
        connection.rollback()
    plan = (json.loads(explained) if isinstance(explained, str) else explained)[0]["Plan"]
    assert len(found) == 10
    # The queue is read once, up to the batch, and only its rows are joined to their events.
    assert _rows_read(plan, "audit_event") <= LIMIT, json.dumps(plan, indent=1)
    assert _loops(plan, "audit_unsealed") == [1], json.dumps(plan, indent=1)
    assert _rows_read(plan, "audit_unsealed") <= LIMIT, json.dumps(plan, indent=1)
