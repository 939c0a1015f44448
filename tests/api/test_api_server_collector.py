"""A server process (`create_app(whole_process=True)`, as `spis serve` makes it) collects the
youngest generation of cyclic garbage less often than Python's default, and freezes what start-up
built; an app sharing its process (the tests, the demo) changes neither."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from referral_service.app import GEN0_THRESHOLD, create_app
from referral_service.config import Settings


@pytest.fixture
def collector_restored() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    try:
        yield before
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def test_a_server_process_collects_the_youngest_generation_less_often(
    settings: Settings, collector_restored: tuple[int, int, int]
) -> None:
    assert collector_restored[0] < GEN0_THRESHOLD
    with TestClient(create_app(settings, whole_process=True)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == (GEN0_THRESHOLD, *collector_restored[1:])
        assert gc.get_freeze_count() > 0


def test_an_app_sharing_its_process_leaves_the_collector_alone(
    settings: Settings, collector_restored: tuple[int, int, int]
) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_threshold() == collector_restored
