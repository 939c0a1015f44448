"""Opening the database, and the unit of work. The request (or the background task, or the CLI
command) is the unit of work."""

from __future__ import annotations

import asyncio
import logging
import select
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from anyio import CancelScope, CapacityLimiter, to_thread
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request

from referral_service.config import Settings
from referral_service.jobs.producer import BackgroundSender, Producer, Sends
from referral_service.jobs.service import PRODUCER_KEY
from referral_service.keys import ring as key_ring

T = TypeVar("T")
log = logging.getLogger("spis.db")
# A PostgreSQL host that drops packets would otherwise hold a request (or `/readyz`, or a CLI
# command) for the kernel's TCP timeout, minutes; a `connect_timeout` in the URL wins.
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Database:
    engine: Engine
    sessionmaker: sessionmaker[Session]  # each session carries the job sender (jobs/service.py)
    producer: Producer  # `/readyz` checks its broker
    sender: Sends  # the producer itself, or the API's BackgroundSender around it

    def dispose(self) -> None:
        if isinstance(self.sender, BackgroundSender):
            self.sender.close()  # what commits queued goes to the broker first
        self.engine.dispose()


def open_database(settings: Settings, *, send_in_background: bool = False) -> Database:
    """The one way the API, the workers and the CLI open SPIS's database: the engine, with the
    KEK registered so sealed columns open (keys/ring.py), and sessions that send jobs after commit:
    at once, or (`send_in_background`, the API) from a thread of their own (BackgroundSender)."""
    engine = make_engine(settings.database_url)
    key_ring.register(engine, settings.kek.get_secret_value())
    producer = Producer(settings)
    sender: Sends = BackgroundSender(producer) if send_in_background else producer
    return Database(engine, make_sessionmaker(engine, {PRODUCER_KEY: sender}), producer, sender)


@contextmanager
def opened(settings: Settings) -> Iterator[Database]:
    """`open_database` for one command: the engine's connections are closed when it ends."""
    database = open_database(settings)
    try:
        yield database
    finally:
        database.dispose()


def make_engine(url: str, **kwargs: Any) -> Engine:
    # Errors never quote bound values: they can be patient data.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            _make_folder_of(parsed.database)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_recycle", 1800)
    if "connect_timeout" not in parsed.query:
        kwargs.setdefault("connect_args", {"connect_timeout": CONNECT_TIMEOUT_S})
    engine = create_engine(parsed, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        event.listen(engine, "checkout", _replace_if_server_left)
    return engine


def _replace_if_server_left(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled connection is checked before each checkout, so that a database restart while the
    process was idle costs nobody a request; during an outage the request answers 503 (see
    fhir/errors.py).

    The check costs no round trip (SQLAlchemy's `pool_pre_ping` sends a query every time): an idle
    connection has nothing to read unless the server spoke, and a server that ends a session
    (restart, shutdown, `pg_terminate_backend`, `idle_session_timeout`) says so and closes the
    socket. Then the connection is replaced by a new one (SQLAlchemy retries the checkout); a
    rare false alarm (a setting the server reports unasked) costs only a reconnect.
    """
    if dbapi_connection.closed or _readable(dbapi_connection.fileno()):
        raise DisconnectionError("the database server ended this pooled connection")


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _make_folder_of(database: str) -> None:
    from pathlib import Path

    folder = Path(database).parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # an operator's path, not patient data: name it and say what to do
        raise OSError(
            exc.errno,
            f"cannot create the SQLite database's folder: {exc.strerror}",
            str(folder),
        ) from None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_sessionmaker(engine: Engine, info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    """`info` is copied into every session (the job producer lives there)."""
    return sessionmaker(engine, expire_on_commit=False, info=info or {})


async def get_session(request: Request) -> AsyncIterator[Session]:
    """Request-scoped session: committed when the endpoint returns, before the response is sent.

    Declared with `Depends(get_session, scope="function")` so the commit (and any error it raises)
    happens before FastAPI writes the response.

    Async, so that opening the session (which touches no connection yet) costs no threadpool hop;
    the commit or rollback, which do I/O, run in a worker thread, shielded from cancellation, with
    a limiter of their own as FastAPI does for `yield` dependencies: ending a unit of work never
    waits for a thread that a request waiting for a pooled connection holds.
    """
    session = request.app.state.sessionmaker()
    try:
        yield session
    except BaseException:
        with CancelScope(shield=True):
            await to_thread.run_sync(_roll_back, session, limiter=CapacityLimiter(1))
        raise
    with CancelScope(shield=True):
        await to_thread.run_sync(_commit, session, limiter=CapacityLimiter(1))


def _commit(session: Session) -> None:
    with session:
        try:
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _roll_back(session: Session) -> None:
    with session:
        session.rollback()


async def in_unit_of_work(
    factory: sessionmaker[Session], work: Callable[[Session], T], *, autocommit: bool = False
) -> T:
    """`work` and its commit in one worker thread: one threadpool hop for the whole unit of work,
    where a sync endpoint on `get_session` makes two (the endpoint, then the commit). For the
    reads, whose whole work is a query or two and the audit event. Committed before it returns,
    so before the response is sent.

    `autocommit`, on PostgreSQL: each statement is its own transaction, so a read costs two round
    trips (its SELECT, its audit INSERT) where BEGIN and COMMIT made four. Only for work that
    writes nothing but one audit event (a read of one resource, a search page): that INSERT
    commits the event itself, before the work returns, as the commit would have; a failure is
    still written apart (audit/pending.py). Reads lose nothing either: under READ COMMITTED each statement of a
    transaction sees a snapshot of its own anyway. SQLite, which chains the events in the
    transaction that inserts them, keeps its transaction."""

    def run() -> T:
        with unit_of_work(factory) as session:
            if autocommit and session.get_bind().dialect.name == "postgresql":
                session.connection(execution_options=_AUTOCOMMIT)
            return work(session)

    return await asyncio.get_running_loop().run_in_executor(_UNITS_OF_WORK, run)


_AUTOCOMMIT = {"isolation_level": "AUTOCOMMIT"}
# The threads `in_unit_of_work` runs in: as many as anyio's default thread limiter, which the
# reads used before. The event loop's own executor hop costs about a third of anyio's
# (`to_thread.run_sync`: a cancel scope, a limiter, a checkpoint and its thread bookkeeping, a
# tenth of a read's CPU). Nothing here reads a context variable, which anyio would have copied
# into the thread. A cancelled request stops waiting, while its unit of work runs to its end
# (commit or rollback) in the thread, as it did under anyio.
_UNITS_OF_WORK = ThreadPoolExecutor(max_workers=40, thread_name_prefix="spis-unit-of-work")


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One transaction: committed when the block ends normally, rolled back on any error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


class AsyncReads:
    """A read of one resource on PostgreSQL, on the event loop: async psycopg connections from a
    pool of their own, no Session and no worker thread. Its SELECT and its audit INSERT each
    commit alone (autocommit), as `in_unit_of_work(autocommit=True)` runs them, the INSERT
    shared with the other reads in flight (audit/grouped.py), so the event is committed before
    the response. The worker thread and the ORM Session around those two statements were about a
    third of a read's server CPU (bench: 2.1 ms a read before, about 1.3 after, on a loaded
    machine).

    Only a path's first try: `attempt` answers None whenever the ordinary path must answer (the
    work says so: a data key not yet cached, a body that does not open), or the database fails
    it, and the caller then takes that path, which answers each case as it always has (a
    logged integrity failure and its audit event; 503). A database error after the event was
    committed therefore records the read twice: never less than once. Any other error (a
    ServiceError such as NotFound) is the answer, as the ordinary path would raise it.

    Its connections count towards the server's `max_connections` beside the engine's pool
    (docs/operations.md)."""

    NAME = "spis-reads"
    MAX_SIZE = 10
    # How long a read waits for one of its connections before taking the ordinary path: under
    # load a connection is free within milliseconds; during an outage the read answers 503 that
    # much later, not a connect timeout later.
    WAIT_S = 1.0

    def __init__(self, engine: Engine, pool: AsyncConnectionPool) -> None:
        self.engine = engine
        self._pool = pool

    @classmethod
    async def open(cls, engine: Engine) -> AsyncReads | None:
        """For the engine's database; None on anything but PostgreSQL (SQLite's reads chain their
        events in the transaction: audit/pending.py)."""
        if engine.dialect.name != "postgresql":
            return None
        url = engine.url.set(drivername="postgresql")
        connect: dict[str, Any] = {"autocommit": True}
        if "connect_timeout" not in url.query:
            connect["connect_timeout"] = CONNECT_TIMEOUT_S
        if "application_name" not in url.query:
            connect["application_name"] = cls.NAME  # in pg_stat_activity
        pool: AsyncConnectionPool = AsyncConnectionPool(
            url.render_as_string(hide_password=False),
            kwargs=connect,
            min_size=1,
            max_size=cls.MAX_SIZE,
            open=False,
            check=_still_there,
            timeout=cls.WAIT_S,
            name=cls.NAME,
        )
        await pool.open(wait=False)
        return cls(engine, pool)

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[Any]]:
        """One of the pool's connections, for the block."""
        return self._pool.connection()

    async def attempt(
        self, work: Callable[[psycopg.AsyncConnection[Any]], Awaitable[T | None]]
    ) -> T | None:
        """`work` on one of the pool's connections, or None (see the class)."""

        async def on_a_connection() -> T | None:
            async with self._pool.connection() as connection:
                return await work(connection)

        return await self.guarded(on_a_connection())

    async def guarded(self, work: Awaitable[T | None]) -> T | None:
        """`work`'s answer, or None when the database fails it (see the class)."""
        try:
            return await work
        except psycopg.Error as exc:  # PoolTimeout is one too
            # The class only: a database's message can quote a value.
            log.warning("a read takes the ordinary path: %s", type(exc).__name__)
            return None

    async def close(self) -> None:
        await self._pool.close()


async def _still_there(connection: psycopg.AsyncConnection[Any]) -> None:
    """`_replace_if_server_left` for the pool: a connection the server ended is closed, so that
    the pool, which would otherwise take it back as idle, discards it and hands out another."""
    if connection.closed or _readable(connection.fileno()):
        await connection.close()
        raise psycopg.OperationalError("the database server ended this pooled connection")
