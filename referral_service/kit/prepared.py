"""Statements for the hottest paths (a FHIR read and its audit event): built once, sent by the
driver.

Building a Core statement for each call and executing it through SQLAlchemy (cache key,
compiled-cache look-up, execution context, result metadata) cost several times what PostgreSQL
spends on the query: it was a third of a read's CPU. A `Prepared` is a statement built once, at
import, with bind parameters; on PostgreSQL it is compiled once and psycopg sends it as a
server-side prepared statement, its rows plain tuples. Other databases (SQLite, the embedded
default) execute the same statement through SQLAlchemy as usual, so there is one statement and
one result shape, whichever way it runs.

It is seen as any other statement: the connection's `before_execute` and `before_cursor_execute`
listeners run first (rows a repository queued are sent before it, statement counters count it),
and a DB-API error comes out as SQLAlchemy's, a dropped connection invalidated, as
`Connection.execute` would raise it (503 under /fhir).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from psycopg import AsyncConnection
from sqlalchemy import Connection, Dialect, Executable, Table, bindparam, insert
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

Params = Mapping[str, Any]
# What `fetch` and `send` compile for: an engine's psycopg dialect renders the same SQL
# (tests/kit/test_kit_prepared.py compares them).
_PSYCOPG = PGDialect_psycopg()  # type: ignore[no-untyped-call]
_NAMED_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


class Prepared:
    """One statement whose bind parameters are all named (`bindparam("name")`).

    `binary`: psycopg sends the parameters in PostgreSQL's binary format. For a list (an array
    parameter) that skips quoting each element as text, which costs psycopg a regular-expression
    search per element: under a third of the time for a list of 50 strings. A binary parameter has
    the type of its Python value (a `str` is `text`, not an untyped literal), so the statement
    casts it where that matters.

    `server_prepared=False`: sent as a new statement each time, planned for its values, never
    as a server-side prepared statement (whose generic plan may ignore them: see
    store.repository.planned_for_its_values).

    `binary_rows`: PostgreSQL sends the rows in its binary format, each value of the same Python
    type as in text. A `bytea` in text is hex, which PostgreSQL writes and psycopg reads back
    character by character: a search page of 50 sealed bodies cost each side about 0.1 ms more."""

    __slots__ = ("_binary", "_binary_rows", "_prepare", "_sql", "_sql_async", "statement")

    def __init__(
        self,
        statement: Executable,
        *,
        binary: bool = False,
        server_prepared: bool = True,
        binary_rows: bool = False,
    ) -> None:
        self.statement = statement
        self._binary = binary
        self._binary_rows = binary_rows
        self._prepare = server_prepared
        self._sql: str | None = None  # compiled for psycopg on first use
        self._sql_async: str | None = None  # the same, for `fetch` and `send` (no engine there)

    def rows(self, connection: Connection, params: Params) -> Sequence[Sequence[Any]]:
        """The rows, each a tuple in the statement's column order."""
        if connection.dialect.driver != "psycopg":
            return connection.execute(self.statement, dict(params)).all()
        with self._send(connection, [params]) as cursor:
            return cursor.fetchall()  # type: ignore[no-any-return]

    def run(self, connection: Connection, params: Sequence[Params]) -> None:
        """A statement that returns no rows, once per parameter set."""
        if not params:
            return
        if connection.dialect.driver != "psycopg":
            connection.execute(self.statement, [dict(p) for p in params])
            return
        self._send(connection, params).close()

    async def fetch(self, connection: AsyncConnection[Any], params: Params) -> list[Any]:
        """`rows` on an async psycopg connection (db.AsyncReads): PostgreSQL only, no SQLAlchemy
        around it, so no listener sees it and a DB-API error comes out as psycopg's."""
        async with connection.cursor() as cursor:
            await cursor.execute(
                self._compiled_async(), params, prepare=self._prepare, binary=self._binary_rows
            )
            return await cursor.fetchall()

    async def send(self, connection: AsyncConnection[Any], params: Params) -> None:
        """`run` of one parameter set on an async psycopg connection, as `fetch`."""
        async with connection.cursor() as cursor:
            await cursor.execute(self._compiled_async(), params, prepare=self._prepare)

    def _compiled(self, connection: Connection) -> str:
        if self._sql is None:
            self._sql = self._for(connection.dialect)
        return self._sql

    def _compiled_async(self) -> str:
        if self._sql_async is None:
            self._sql_async = self._for(_PSYCOPG)
        return self._sql_async

    def _for(self, dialect: Dialect) -> str:
        assert isinstance(self.statement, ClauseElement)
        sql = compiled_sql(self.statement, dialect)
        # psycopg's placeholder for a named parameter in binary format is %(name)b.
        return _NAMED_PLACEHOLDER.sub(r"%(\1)b", sql) if self._binary else sql

    def _send(self, connection: Connection, params: Sequence[Params]) -> Any:
        sql = self._compiled(connection)
        if not connection.in_transaction():
            connection.begin()  # as `execute` would begin one
        many = len(params) > 1
        parameters: Any = params if many else params[0]
        fairy = connection.connection
        cursor = fairy.driver_connection.cursor()  # type: ignore[union-attr]
        # The private members below are what `Connection.execute` itself uses to the same ends
        # (tests/kit/test_kit_prepared.py notices an SQLAlchemy upgrade that changes them).
        if connection._has_events or connection.engine._has_events:
            # As `execute` calls them, without letting a listener rewrite the statement.
            multiparams, one = (params, {}) if many else ([], params[0])
            for before in connection.dispatch.before_execute:
                before(connection, self.statement, multiparams, one, {})
            for before_cursor in connection.dispatch.before_cursor_execute:
                before_cursor(connection, cursor, sql, parameters, None, many)
        try:
            if many:
                cursor.executemany(sql, parameters)
            else:
                cursor.execute(sql, parameters, prepare=self._prepare, binary=self._binary_rows)
        except connection.dialect.loaded_dbapi.Error as exc:
            connection._handle_dbapi_exception(exc, sql, parameters, cursor, None)
        return cursor


def inserting(table: Table) -> Prepared:
    """An INSERT of one row of `table`, every column a named parameter (its key)."""
    return Prepared(
        insert(table).values({c.key: bindparam(c.key, type_=c.type) for c in table.columns})
    )


def compiled_sql(statement: ClauseElement, dialect: Dialect) -> str:
    """The SQL the driver gets. A value fixed in the statement that SQLAlchemy renders only at
    execution (`aggregate_strings`' separator) is rendered in now; the bind parameters, given a
    stand-in value for that, stay placeholders."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    if not (compiled.literal_execute_params or compiled.post_compile_params):
        return str(compiled)
    named = [bind.key for bind in compiled.binds.values() if bind.required]
    ready = statement.params(dict.fromkeys(named))
    return str(ready.compile(dialect=dialect, compile_kwargs={"render_postcompile": True}))
