"""The worker's sealer hooks (workers/sealer.py): a sealer in each process that runs tasks, never
in a prefork parent (its children would inherit the thread's engine)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import pytest
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.concurrency.solo import TaskPool as SoloPool
from sqlalchemy import Engine


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, pg_engine: Engine) -> Iterator[ModuleType]:
    from workers import sealer as worker_sealer

    monkeypatch.setattr(worker_sealer, "engine", lambda: pg_engine)
    yield worker_sealer
    worker_sealer._stop()


def ready(pool_cls: type) -> SimpleNamespace:
    return SimpleNamespace(controller=SimpleNamespace(pool_cls=pool_cls))


def test_a_prefork_parent_runs_no_sealer_its_children_do(hooks: ModuleType) -> None:
    hooks._start_in_worker(sender=ready(PreforkPool))
    assert hooks._running == []
    hooks._start_in_child()
    hooks._start_in_child()
    assert len(hooks._running) == 1


def test_a_solo_worker_runs_one_until_shutdown(hooks: ModuleType) -> None:
    hooks._start_in_worker(sender=ready(SoloPool))
    [running] = hooks._running
    hooks._stop()
    assert hooks._running == []
    assert running._thread is None
