"""kit/prepared.py: a statement built once runs the same on PostgreSQL (sent by psycopg) and on
SQLite (through SQLAlchemy), is seen by the connection's listeners like any statement, and fails
as SQLAlchemy's own error when the server goes away mid-transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import (
    Column,
    Connection,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    bindparam,
    cast,
    event,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from referral_service.db import make_engine
from referral_service.kit.prepared import Prepared

_metadata = MetaData()
_probe = Table(
    "prepared_probe",
    _metadata,
    Column("id", Integer, primary_key=True),
    Column("owner", String(10)),
    Column("name", String(10)),
)
_INSERT = Prepared(insert(_probe).values(owner=bindparam("owner"), name=bindparam("name")))
# A value SQLAlchemy renders only at execution time (the separator), beside named parameters.
_NAMES = Prepared(
    select(func.aggregate_strings(_probe.c.name, ",")).where(_probe.c.owner == bindparam("owner"))
)
_BY_OWNER = Prepared(
    select(_probe.c.id, _probe.c.name)
    .where(_probe.c.owner == bindparam("owner"), _probe.c.name != bindparam("owner"))
    .order_by(_probe.c.id)
)


@pytest.fixture(params=["postgresql", "sqlite"])
def connection(request: pytest.FixtureRequest, pg_engine: Engine) -> Iterator[Connection]:
    engine = pg_engine if request.param == "postgresql" else make_engine("sqlite://")
    with engine.connect() as conn, conn.begin() as transaction:  # rolled back: nothing stays
        _metadata.create_all(conn)
        yield conn
        transaction.rollback()


def test_rows_and_runs_are_the_same_whichever_way_the_statement_is_sent(
    connection: Connection,
) -> None:
    _INSERT.run(connection, [{"owner": "a", "name": "x"}])  # one parameter set
    _INSERT.run(connection, [{"owner": "a", "name": "y"}, {"owner": "b", "name": "z"}])  # many
    _INSERT.run(connection, [])
    assert [tuple(row) for row in _BY_OWNER.rows(connection, {"owner": "a"})] == [
        (1, "x"),
        (2, "y"),
    ]
    assert _BY_OWNER.rows(connection, {"owner": "nobody"}) == []
    [(names,)] = _NAMES.rows(connection, {"owner": "a"})
    assert sorted(names.split(",")) == ["x", "y"]


def test_the_connection_listeners_see_each_statement(connection: Connection) -> None:
    before: list[Any] = []
    cursor: list[str] = []

    def on_execute(conn: Connection, statement: Any, *_: Any) -> None:
        before.append(statement)

    def on_cursor(conn: Connection, _cursor: Any, sql: str, *_: Any) -> None:
        cursor.append(sql)

    event.listen(connection, "before_execute", on_execute)
    event.listen(connection, "before_cursor_execute", on_cursor)
    try:
        _INSERT.run(connection, [{"owner": "a", "name": "x"}])
        _BY_OWNER.rows(connection, {"owner": "a"})
    finally:
        event.remove(connection, "before_execute", on_execute)
        event.remove(connection, "before_cursor_execute", on_cursor)
    assert before == [_INSERT.statement, _BY_OWNER.statement]
    assert [sql.split()[0] for sql in cursor] == ["INSERT", "SELECT"]


def test_a_server_gone_mid_transaction_is_sqlalchemys_error_and_the_connection_is_dropped(
    pg_engine: Engine,
) -> None:
    with pg_engine.connect() as conn:
        conn.begin()
        _metadata.create_all(conn)
        pid = conn.scalar(select(func.pg_backend_pid()))
        with pg_engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError):
            _BY_OWNER.rows(conn, {"owner": "a"})
        assert conn.invalidated


def test_a_statement_not_server_prepared_is_planned_for_its_values_every_time(
    pg_engine: Engine,
) -> None:
    """psycopg prepares a statement on the server once it has run it a few times; one built with
    `server_prepared=False` never is, however often it runs (its generic plan could ignore the
    values: store.repository.match_token)."""
    newest = select(_probe.c.id).where(_probe.c.owner == bindparam("owner"))
    planned = Prepared(newest.order_by(_probe.c.id.desc()), server_prepared=False)
    control = Prepared(newest.order_by(_probe.c.id.asc()))  # left to the driver
    with pg_engine.connect() as conn, conn.begin() as transaction:
        _metadata.create_all(conn)
        _INSERT.run(conn, [{"owner": "a", "name": "x"}, {"owner": "a", "name": "y"}])
        driver: Any = conn.connection.driver_connection
        for _ in range(driver.prepare_threshold * 3):
            assert [tuple(r) for r in planned.rows(conn, {"owner": "a"})] == [(2,), (1,)]
            assert [tuple(r) for r in control.rows(conn, {"owner": "a"})] == [(1,), (2,)]
        prepared = [
            str(s)
            for s in conn.scalars(text("SELECT statement FROM pg_prepared_statements"))
            if "prepared_probe.id ASC" in str(s) or "prepared_probe.id DESC" in str(s)
        ]
        assert len(prepared) == 1  # the control's: the check can fail
        assert "ASC" in prepared[0]
        transaction.rollback()


def test_on_an_async_connection_the_statement_is_the_engines_sql_and_rows(
    pg_engine: Engine, pg_url: str
) -> None:
    """`fetch` and `send` (the async reads, db.AsyncReads) compile without an engine: the SQL is
    the one the engine's dialect makes, and it runs the same."""
    for prepared in (_INSERT, _NAMES, _BY_OWNER):
        assert prepared._compiled_async() == prepared._for(pg_engine.dialect)

    async def run() -> tuple[list[Any], list[Any]]:
        conninfo = make_url(pg_url).set(drivername="postgresql").render_as_string(False)
        async with await psycopg.AsyncConnection.connect(conninfo) as conn:
            await conn.execute(
                "CREATE TEMP TABLE prepared_probe "
                "(id serial PRIMARY KEY, owner varchar(10), name varchar(10))"
            )
            await _INSERT.send(conn, {"owner": "a", "name": "x"})
            await _INSERT.send(conn, {"owner": "a", "name": "y"})
            rows = await _BY_OWNER.fetch(conn, {"owner": "a"})
            names = await _NAMES.fetch(conn, {"owner": "a"})
            await conn.rollback()
            return rows, names

    rows, [(names,)] = asyncio.run(run())
    assert rows == [(1, "x"), (2, "y")]
    assert sorted(names.split(",")) == ["x", "y"]


def test_rows_in_binary_are_the_values_and_types_they_are_in_text(pg_engine: Engine) -> None:
    """`binary_rows`: PostgreSQL sends the rows in its binary format; each value (bytes, a
    timestamp with its zone, a number, text, NULL) comes back as it does in text."""
    columns = select(
        cast(bindparam("b", type_=LargeBinary), LargeBinary),
        cast(bindparam("t", type_=DateTime(timezone=True)), DateTime(timezone=True)),
        cast(bindparam("n", type_=Integer), Integer),
        cast(bindparam("s", type_=String), String),
        cast(bindparam("none", type_=String), String),
    )
    when = datetime(2026, 11, 29, 17, 0, 0, 123456, tzinfo=UTC)
    params = {"b": b"\x00\xff\x02sealed", "t": when, "n": 1234567, "s": "Task", "none": None}
    with pg_engine.connect() as connection:
        in_text = [tuple(row) for row in Prepared(columns).rows(connection, params)]
        binary = Prepared(columns, binary_rows=True)
        in_binary = [tuple(row) for row in binary.rows(connection, params)]
    assert in_binary == in_text
    [(body, at, number, name, nothing)] = in_binary
    assert (bytes(body), number, name, nothing) == (b"\x00\xff\x02sealed", 1234567, "Task", None)
    assert at == when
    assert [type(v) for v in in_binary[0]] == [type(v) for v in in_text[0]]
