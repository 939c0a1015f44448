"""Group commit for the async reads' audit events (db.AsyncReads): the events of the reads and
searches in flight in one process go in together, one INSERT and one commit for all of them (the
search pages' merged events, with their group rows, in one INSERT of their own in the same
transaction).

Each read hands its event to `GroupCommit.store` and waits. One INSERT is in flight at a time:
while it runs, the events that arrive queue, and the next INSERT takes them all. A lone read
waits for nothing but its own INSERT; under load each commit carries several events, and
PostgreSQL's work per event (a statement, a commit, its WAL flush) and the client's are shared.

Nothing changes for the chain: the events are inserted as `repository.insert_events` inserts
several (one statement, `seq` in their order; the trigger queues them for the sealer), and
each read answers only after the commit that holds its event. A failed INSERT stored none of
its events (one statement in autocommit, or one transaction): each of its reads gets the error,
and takes the ordinary path, which records its event itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from psycopg import AsyncConnection

from referral_service.audit import chain, repository

Connect = Callable[[], AbstractAsyncContextManager[AsyncConnection[Any]]]


class GroupCommit:
    """One per process and event loop, beside the pool it takes its connections from."""

    def __init__(self, connect: Connect) -> None:
        self._connect = connect
        self._queued: list[tuple[chain.Event, asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def store(self, event: chain.Event) -> None:
        """Stored and committed when this returns; a psycopg error when it was not."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queued.append((event, done))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        try:
            await asyncio.shield(done)  # a read that stops waiting leaves the others' alone
        except asyncio.CancelledError:
            done.add_done_callback(_seen)
            raise

    async def _flush(self) -> None:
        try:
            while self._queued:
                batch, self._queued = self._queued, []
                try:
                    async with self._connect() as connection:
                        await repository.insert_events_known(connection, [e for e, _ in batch])
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                except BaseException:
                    for _, done in batch:
                        done.cancel()
                    raise
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._flushing = None


def _seen(done: asyncio.Future[None]) -> None:
    """Nobody waits for this event any more: its outcome is not an unhandled error."""
    if not done.cancelled():
        done.exception()
