"""New store rows queued on the connection and sent as one INSERT per table (executemany) just
before the next statement of any kind runs on that connection, or the transaction commits.

The repository's writes (`repository.insert_resource`, `repository.update_resource`) queue their
`resource`, `resource_version`, `search_index` and `resource_grant` rows here instead of going
through the ORM's unit of work, which costs far more per row than the rows themselves. The rule
is the unit of work's autoflush, on the connection: whatever runs next (a query, the ORM's own
flush, a SAVEPOINT, a RELEASE) sees the rows, so no reader can tell that they were queued; a
transaction or savepoint that rolls back drops what it queued, unsent. A SAVEPOINT is itself a
statement, so the rows queued before it are sent before it, inside the enclosing transaction: the
queue never holds rows of more than the innermost transaction.

Bodies are sealed before they are queued (store/sealing.py binds each to its row), and the rows
are plain column values: no ORM events run for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Dialect, Engine, String, Table, event, insert, inspect, text
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.types import TypeEngine

from referral_service.kit.prepared import Prepared
from referral_service.store.models import (
    ResourceGrant,
    ResourceVersion,
    SearchIndex,
    StoredResource,
)

_KEY = "spis.store.queued_rows"
Row = dict[str, Any]


@dataclass(slots=True)
class Queued:
    """Rows waiting, parents first: the order they are sent in."""

    resources: list[Row] = field(default_factory=list)
    versions: list[Row] = field(default_factory=list)
    index: list[Row] = field(default_factory=list)
    grants: list[Row] = field(default_factory=list)
    # Rows of other tables that refer to the store's (`add_rows`), sent after them.
    others: dict[Table, list[Row]] = field(default_factory=dict)

    def batches(self) -> tuple[tuple[Table, list[Row]], ...]:
        return (
            (_table(StoredResource), self.resources),
            (_table(ResourceVersion), self.versions),
            (_table(SearchIndex), self.index),
            (_table(ResourceGrant), self.grants),
            *self.others.items(),
        )


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def queue(connection: Connection) -> Queued:
    """This transaction's queue (made on first use)."""
    queued: Queued | None = connection.info.get(_KEY)
    if queued is None:
        queued = connection.info[_KEY] = Queued()
    return queued


def send(connection: Connection) -> None:
    """Send what is queued now (one INSERT per table). Taken off the queue first: the INSERTs
    are statements too, and must not send it again."""
    if connection.invalidated:
        return
    queued: Queued | None = connection.info.pop(_KEY, None)
    if queued is None:
        return
    batches = [(table, rows) for table, rows in queued.batches() if rows]
    if len(batches) > 1 and connection.dialect.name == "postgresql":
        _insert_together(connection, batches)
        return
    for table, rows in batches:
        insert_rows(connection, table, rows)


def insert_rows(connection: Connection, table: Table, rows: Sequence[Row]) -> None:
    """One INSERT of rows that all have the same keys.

    PostgreSQL: `INSERT ... SELECT * FROM unnest(<one array per column>)`, one statement whatever
    the number of rows, its text the same for every batch (prepared once), its arrays sent in
    binary format (kit/prepared.py). A batch of 100 questionnaires queues 200 resource and version
    rows and some 1,500 index rows. Per row, an executemany's parameter handling in SQLAlchemy
    dominated, and a text-format array costs psycopg a quoting step per element (for bytea, an
    escape of every byte): measured for such a batch (client CPU), resource rows 3.2-3.7 ms ->
    0.9 ms, version rows 2.7-3.0 -> 0.75, index rows 7.4-7.6 -> 2.3-2.4 (text-format unnest),
    grants 0.7 -> 0.45; PostgreSQL's own time fell for the body tables and stayed for the others.
    Each array is cast to its column's type without a length: PostgreSQL then checks each value
    against the column as it stores it, refusing one too long as `INSERT ... VALUES` would
    (an explicit cast to `VARCHAR(n)[]` would silently cut it).
    A multi-row INSERT ... VALUES was slower than both (about 0.14 ms per row: a compile for
    each row count). Elsewhere: executemany. The columns take no bind processing on either path.

    Measured and not kept (issue 12): each table's rows as ONE parameter, a JSON array made by
    orjson and expanded by `json_to_recordset` (bodies as a bytea array beside it, zipped by
    `ROWS FROM`), or one JSON array per column (`json_array_elements_text`). For such a batch
    (200 resource and version rows, 1,600 index rows, 100 grants; in process, the base and the
    variant interleaved, 200 batches each, client = this process's CPU, PostgreSQL = its
    backend's): client 8.0-8.1 ms -> 3.4-4.1 (recordset) or 4.1-5.3 (columns), PostgreSQL
    58-62 ms -> 65-68 or 63-67. PostgreSQL parsing JSON text (and timestamps as text) costs it
    more than the binary arrays' receive functions, more than the client saves; with bodies in
    base64 inside the JSON, some 15 ms more, and `jsonb_to_recordset` more still. Nor was a
    hand-built binary array faster than psycopg's (its element dumpers are C: 0.2-0.3 µs an
    element)."""
    names = tuple(rows[0])
    if connection.dialect.name != "postgresql":
        connection.execute(insert(table), list(rows))
        return
    arrays = {f"c{i}": [row[name] for row in rows] for i, name in enumerate(names)}
    _unnest_insert(connection, table, names).run(connection, [arrays])


_UNNEST: dict[tuple[str, tuple[str, ...]], Prepared] = {}


def _unnest_insert(connection: Connection, table: Table, names: tuple[str, ...]) -> Prepared:
    key = (table.name, names)
    statement = _UNNEST.get(key)
    if statement is None:
        sql = _unnest_sql(connection.dialect, table, names, "c")
        statement = _UNNEST[key] = Prepared(text(sql), binary=True)
    return statement


def _unnest_sql(dialect: Dialect, table: Table, names: tuple[str, ...], prefix: str) -> str:
    """`INSERT ... SELECT * FROM unnest(...)` of `names`, the array of column i bound as
    `<prefix><i>`."""
    quote = dialect.identifier_preparer.quote
    columns = ", ".join(quote(name) for name in names)
    arrays = ", ".join(
        f"CAST(:{prefix}{i} AS {_unbounded(table.c[name].type).compile(dialect=dialect)}[])"
        for i, name in enumerate(names)
    )
    # Names and types from the models, quoted; the values are bound parameters.
    return f"INSERT INTO {quote(table.name)} ({columns}) SELECT * FROM unnest({arrays})"  # noqa: S608


_TOGETHER: dict[tuple[tuple[str, tuple[str, ...]], ...], Prepared] = {}


def _insert_together(
    connection: Connection, batches: Sequence[tuple[Table, Sequence[Row]]]
) -> None:
    """PostgreSQL: the rows of several tables in one statement, each table's INSERT (as
    `insert_rows` sends it) but the last in a WITH clause, the last the main statement: one
    round trip where an intake's Patient, Consent, ServiceRequest and Task took three (resource,
    version and index rows). The statement is atomic as each INSERT was, and the foreign keys of
    the versions and grants on their resources are checked at its end, when every row of it is
    in (index rows have none: models.SearchIndex). Its text is the same for every write of the
    same tables (prepared once)."""
    shape = tuple((table.name, tuple(rows[0])) for table, rows in batches)
    statement = _TOGETHER.get(shape)
    if statement is None:
        dialect = connection.dialect
        parts = [
            _unnest_sql(dialect, table, names, f"t{j}c")
            for j, ((_, names), (table, _)) in enumerate(zip(shape, batches, strict=True))
        ]
        sql = "WITH " + ", ".join(f"i{j} AS ({part})" for j, part in enumerate(parts[:-1]))
        statement = _TOGETHER[shape] = Prepared(text(f"{sql} {parts[-1]}"), binary=True)
    arrays = {
        f"t{j}c{i}": [row[name] for row in rows]
        for j, ((_, names), (_, rows)) in enumerate(zip(shape, batches, strict=True))
        for i, name in enumerate(names)
    }
    statement.run(connection, [arrays])


def _unbounded(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    return String() if isinstance(column_type, String) else column_type


def _drop(connection: Connection, *_: Any) -> None:
    if not connection.invalidated:
        connection.info.pop(_KEY, None)


@event.listens_for(Engine, "before_execute")
def _before_execute(connection: Connection, *_: Any) -> None:
    if not connection.invalidated and _KEY in connection.info:
        send(connection)


@event.listens_for(Engine, "commit")
def _before_commit(connection: Connection) -> None:
    # Sessions send the queue before they commit (repository.py); this is for a bare connection.
    if not connection.invalidated and _KEY in connection.info:
        send(connection)


event.listen(Engine, "begin", _drop)
event.listen(Engine, "rollback", _drop)
event.listen(Engine, "rollback_savepoint", _drop)


# --- what a session queued -----------------------------------------------------------------------

# Called for each resource version queued, with its search index rows: what used to watch the
# unit of work's new rows (outcomes/triggers.py) watches these instead.
Observer = Callable[[Session, str, str, Sequence[Row]], None]  # session, type, id, index rows
_OBSERVERS: list[Observer] = []


def on_queued(observer: Observer) -> Observer:
    """Register an observer (idempotent)."""
    if observer not in _OBSERVERS:
        _OBSERVERS.append(observer)
    return observer


def observed(observer: Observer) -> bool:
    return observer in _OBSERVERS


def add_rows(session: Session, table: Table, rows: Sequence[Row]) -> None:
    """New rows of another table, every column given, queued with the store's and sent as they
    are (with them, after them): for a row written with a resource that refers to it (an
    intake's submission, its ServiceRequest's), which then costs no statement of its own."""
    queue(session.connection()).others.setdefault(table, []).extend(rows)
    session.info[_QUEUED] = True


def queued_version(session: Session, rtype: str, rid: str, index: Sequence[Row]) -> None:
    """A resource version and its index rows were queued by this session."""
    session.info[_QUEUED] = True
    for observer in _OBSERVERS:
        observer(session, rtype, rid, index)


_QUEUED = "spis.store.queued"  # this session queued rows since it last sent them
_HELD = "spis.store.held"  # (row, innermost savepoint when inserted): kept in the identity map


def hold(session: Session, row: StoredResource) -> None:
    """A new row, queued: persistent in the session without the unit of work, and strongly
    referenced until the transaction ends (the identity map's own references are weak), so that
    reading it back by id needs no query.

    A row with no history (`repository.new_row`'s) is attached as a query attaches a row it
    loads: its identity key set, into the identity map (which refuses a second row of the same
    key, as `Session.add` does), its session noted. `make_transient_to_detached` and
    `Session.add` did that too, and also reset the history (there is none), cascaded along
    relationships (a resource row has none), ran attach events (nothing listens; if something
    does, they still run) and began the session's transaction (it has begun): measured in
    process, 13-29 µs a row against 2.5-4.5 µs, some 2-5 ms less for a batch of 100
    questionnaires (200 rows; py-spy had put `hold` at 3.6% of the batch's server CPU)."""
    state = instance_state(row)
    if state.key or state.session_id or state.modified or _attach_listened(session):
        make_transient_to_detached(row)  # refuses a row that is not transient
        session.add(row)
    else:
        state.key = _RESOURCE.identity_key_from_primary_key((row.id,))
        session.identity_map.add(state)
        state.session_id = session.hash_key
    session.info.setdefault(_HELD, []).append((row, session.get_nested_transaction()))


_RESOURCE = inspect(StoredResource)


def _attach_listened(session: Session) -> bool:
    """Something listens to attach events, or the session has not begun (`Session.add` would
    begin it): `hold` takes the long way."""
    dispatch = session.dispatch
    listened = dispatch.before_attach or dispatch.after_attach or dispatch.detached_to_persistent
    return bool(listened) or not session.in_transaction()


@event.listens_for(Session, "before_commit")
def _send_before_commit(session: Session) -> None:
    if session.info.pop(_QUEUED, False):
        send(session.connection())


@event.listens_for(Session, "after_soft_rollback")
def _expunge_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """Rows inserted in what rolled back were never sent: out of the identity map, as the unit
    of work takes out the rows it inserted."""
    held: list[tuple[StoredResource, SessionTransaction | None]] = session.info.get(_HELD, [])
    gone = [pair for pair in held if not previous.nested or _inside(pair[1], previous)]
    for row, _ in gone:
        if row in session:
            session.expunge(row)
    held[:] = [pair for pair in held if pair not in gone]


def _inside(scope: SessionTransaction | None, savepoint: SessionTransaction) -> bool:
    while scope is not None:
        if scope is savepoint:
            return True
        scope = scope.parent
    return False


@event.listens_for(Session, "after_transaction_end")
def _release(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None and not transaction.nested:
        session.info.pop(_HELD, None)
        session.info.pop(_QUEUED, None)
