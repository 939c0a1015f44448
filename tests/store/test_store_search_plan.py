"""Every search parameter is a correlated EXISTS on search_index. It must be one index seek per
candidate resource, by resource id too: without that, SQLite (the embedded default) walked every
index row with the value for each resource, so counting a time bank's open Tasks during routing
grew with the square of its referrals (0.59 s at 640) and intake answered 503s under load."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.orm import Session

from referral_service.db import make_engine
from referral_service.migrate import upgrade
from referral_service.principal import Principal
from referral_service.store import repository
from referral_service.store.repository import TokenMatch


def test_a_search_parameter_is_one_index_seek_per_resource_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'spis.sqlite3'}"
    upgrade(url)  # the schema as migrations build it, not as the models say
    engine = make_engine(url)
    statements: list[tuple[str, object]] = []
    event.listen(
        engine,
        "before_cursor_execute",
        lambda _c, _cur, sql, params, _ctx, _many: statements.append((sql, params)),
    )
    query = [
        [TokenMatch("owner", "Organization/tb")],
        [TokenMatch("status", "requested"), TokenMatch("status", "accepted")],
    ]
    with Session(engine) as session:
        assert repository.count(session, Principal.spis(), "Task", query) == 0
        [(sql, params)] = statements
        explained = session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
        plan = [row[3] for row in explained]
    engine.dispose()
    lookups = [step for step in plan if "search_index" in step]
    assert len(lookups) == 3, plan  # owner, and each status
    assert all("resource_id=?" in step for step in lookups), plan
