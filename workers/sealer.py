"""The audit sealer in the worker (referral_service/audit/sealer.py): a thread in each process
that runs tasks, so events recorded by jobs, the CLI or an API that is down are still chained
within about a second.

With the prefork pool the tasks run in child processes: each starts its sealer after the fork
(`worker_process_init`), never in the parent, whose engine and thread a later fork would copy.
The solo and thread pools run tasks in the worker process itself (`worker_ready`).
"""

from __future__ import annotations

from typing import Any

from celery import signals
from celery.concurrency.prefork import TaskPool as PreforkPool

from referral_service.audit.sealer import Sealer
from workers.session import engine

_running: list[Sealer] = []


def _start() -> None:
    if not _running:
        sealer = Sealer(engine())
        sealer.start()
        _running.append(sealer)


def _stop(**_: Any) -> None:
    while _running:
        _running.pop().stop()


def _start_in_child(**_: Any) -> None:
    _start()


def _start_in_worker(sender: Any = None, **_: Any) -> None:
    pool_cls = getattr(getattr(sender, "controller", None), "pool_cls", None)
    if not (isinstance(pool_cls, type) and issubclass(pool_cls, PreforkPool)):
        _start()


signals.worker_process_init.connect(_start_in_child)
signals.worker_ready.connect(_start_in_worker)
signals.worker_process_shutdown.connect(_stop)
signals.worker_shutdown.connect(_stop)
