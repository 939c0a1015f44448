"""The sealer: chains committed events onto the hash chain, within about a second of their commit.

An audited request commits its events with its work and never waits for anyone else's (see
repository.py); a trigger queues each event in `audit_unsealed`. The sealer, in one transaction:
takes the sealers' lock (PostgreSQL: a transaction-level advisory lock, tried, so a second sealer
just skips its turn; SQLite: the database write lock), reads the chain's head, takes up to `limit`
queued events in `seq` order, chains them, inserts their chain rows, removes them from the queue,
and commits. Events of transactions still open are not visible yet and are chained on a later
turn, after whatever committed meanwhile. A crash or a failed turn loses nothing: the queue rows
are still there.

Each API process (app.py's lifespan) and each worker process (workers/sealer.py) runs a `Sealer`
thread, so events are chained wherever SPIS runs; the lock makes them take turns.
`spis audit verify` and `spis audit anchor` seal what is queued before they read (`seal_all`).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, Engine

from referral_service.audit import chain, repository

log = logging.getLogger("spis.audit.sealer")

BATCH = 1000  # events per turn; a full batch is followed by another turn at once
INTERVAL_S = 0.25  # between turns when the queue was drained
SEALER_THREAD = "spis-audit-sealer"  # the thread's name, as tools and tests see it


def seal(
    connection: Connection, *, limit: int = BATCH, wait: bool = False, upto: int | None = None
) -> int:
    """Chain up to `limit` queued events (none after `upto`) in the connection's transaction,
    which the caller commits; how many left the queue. 0 at once when nothing is queued, or when
    another sealer holds the lock and `wait` is off."""
    if not repository.anything_queued(connection):
        return 0
    if not repository.lock_for_sealing(connection, wait=wait):
        return 0
    found = repository.queued(connection, limit, upto)
    head = repository.chain_head(connection)
    pos, prev = (head.seq, head.hash) if head else (0, chain.GENESIS)
    links = []
    for recorded, already_chained in found:
        if already_chained:
            continue
        pos += 1
        digest = chain.link_hash(prev, pos, recorded.event)
        links.append(chain.Link(pos, recorded.seq, recorded.event, prev, digest))
        prev = digest
    repository.add_links(connection, links)
    repository.dequeue(connection, [recorded.seq for recorded, _ in found])
    return len(found)


def seal_once(
    engine: Engine, *, limit: int = BATCH, wait: bool = False, upto: int | None = None
) -> int:
    """One turn in a transaction of its own."""
    with engine.connect() as connection:
        sealed = seal(connection, limit=limit, wait=wait, upto=upto)
        connection.commit()
    return sealed


def seal_all(engine: Engine) -> int:
    """Chain every event queued now (later ones are left to the sealer threads), waiting for a
    sealer that holds the lock; how many."""
    with engine.connect() as connection:
        upto = repository.last_queued_seq(connection)
    total = 0
    while upto is not None:
        sealed = seal_once(engine, wait=True, upto=upto)
        total += sealed
        if sealed < BATCH:
            break
    return total


class Sealer:
    """A daemon thread that seals every `interval_s` (at once again after a full batch)."""

    def __init__(self, engine: Engine, *, interval_s: float = INTERVAL_S, limit: int = BATCH):
        self._engine = engine
        self._interval_s = interval_s
        self._limit = limit
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=SEALER_THREAD, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            sealed = self._turn()
            if sealed < self._limit:
                self._stopping.wait(self._interval_s)

    def _turn(self) -> int:
        try:
            sealed = seal_once(self._engine, limit=self._limit)
        except Exception as exc:
            # Logged once, then every 240th turn in a row (about a minute): a database outage
            # must not flood the log. Nothing is lost: the queue rows stay until a turn succeeds.
            if self._failures % 240 == 0:
                log.warning(
                    "audit sealing failed; retrying",
                    extra={"error_type": type(exc).__name__, "failures": self._failures + 1},
                )
            self._failures += 1
            return 0
        if self._failures:
            log.info("audit sealing recovered", extra={"failures": self._failures})
            self._failures = 0
        return sealed
