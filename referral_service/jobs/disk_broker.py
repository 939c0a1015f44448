"""The embedded default's on-disk broker: kombu's filesystem transport with atomic hand-offs.

kombu writes a message file (and an exchange's routing table) in place, under an advisory lock its
reader never takes: under load the worker could read a half-written file and die with
"Unrecoverable error: JSONDecodeError". Here every file is written under a hidden temporary name
and renamed into place (a rename within one folder is atomic), and the worker claims a message by
renaming it into a folder beside the queue, so it only ever reads whole files that are its own.

Selected by `celery_app` for `filesystem://` URLs through Celery's `broker_transport` setting.
"""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils import json as kombu_json

TRANSPORT = "referral_service.jobs.disk_broker:Transport"
Table = list[filesystem.exchange_queue_t]
# kombu's JSON (it knows the types a message envelope can hold); typed here, untyped upstream.
dumps: Callable[[Any], str] = kombu_json.dumps
loads: Callable[[str], Any] = kombu_json.loads


def write_atomically(path: Path, data: str) -> None:
    """The file appears whole or not at all; the hidden name never matches a queue's `*.msg`."""
    temporary = path.with_name(f".{uuid.uuid4().hex}.tmp")
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialises read-modify-write of one exchange table across processes."""
    with path.open("a") as lock_file:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)


class Channel(filesystem.Channel):
    # kombu's own base classes disagree on this argument's name; the virtual channel passes it
    # by position.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        write_atomically(Path(self.data_folder_out) / name, dumps(payload))

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        folder = Path(self.data_folder_in)
        claimed = folder / "claimed"
        claimed.mkdir(exist_ok=True)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != f"{queue}.msg":
                continue
            # Whoever renames it first owns it; the others move on. A worker killed between the
            # rename and the read loses the message, not the job: the row stays pending and the
            # relay sends it again.
            try:
                os.rename(folder / name, claimed / name)
            except FileNotFoundError:
                continue
            payload = (claimed / name).read_text(encoding="utf-8")
            (claimed / name).unlink()
            return loads(payload)
        raise Empty()

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._change_table(exchange, lambda table: table if entry in table else [entry, *table])

    def _delete(
        self, queue: str, exchange: str, routing_key: str, pattern: str, *args: Any, **kwargs: Any
    ) -> None:
        # The virtual channel forgets the queue; this one's super() would rewrite the table in place.
        super(filesystem.Channel, self)._delete(  # type: ignore[no-untyped-call]
            queue, exchange, routing_key, pattern, *args, **kwargs
        )
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        self._change_table(exchange, lambda table: [e for e in table if e != entry])

    def _change_table(self, exchange: str, change: Callable[[Table], Table]) -> None:
        file: Path = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        file.parent.mkdir(parents=True, exist_ok=True)
        with _locked(file.with_name(f"{file.name}.lock")):
            table: Table = self.get_table(exchange)  # type: ignore[no-untyped-call]
            changed = change(table)
            if changed != table or not file.exists():
                write_atomically(file, dumps(changed))


class Transport(filesystem.Transport):
    Channel = Channel
