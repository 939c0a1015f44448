"""A broker outage only delays work: the worker (a real process on a Redis of this test's own)
stays up while Redis is gone and takes jobs again once it is back, even when the outage catches
it holding a message it has not acknowledged (a retry waiting out its backoff)."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from referral_service.config import Settings
from referral_service.embedded import worker_env
from referral_service.jobs.producer import celery_app
from referral_service.jobs.service import JobName
from tests.integration.conftest import PrivateRedis, Worker, wait_for

pytestmark = pytest.mark.slow

# kombu's Redis transport keeps each message a consumer holds, until it is acknowledged, here.
UNACKED = "unacked"


@pytest.fixture
def on_private(settings: Settings, private_redis: PrivateRedis) -> Settings:
    return settings.model_copy(update={"broker_url": private_redis.url})


@pytest.fixture
def broker(private_redis: PrivateRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()


def send(sender: Celery, countdown: float | None = None) -> None:
    """A job message for a job that does not exist: the worker takes it and has nothing to do."""
    sender.send_task(JobName.ROUTE_REFERRAL.value, args=[str(uuid.uuid4())], countdown=countdown)


def test_a_worker_holding_an_unacknowledged_retry_survives_a_broker_outage(
    on_private: Settings, private_redis: PrivateRedis, broker: redis.Redis
) -> None:
    worker = Worker(on_private, beat=False)
    sender = celery_app(on_private, "spis-test-sender")
    try:
        worker.start()
        # A retry due in ten minutes: the worker holds it unacknowledged and keeps listening for
        # more, which is the moment kombu 5.7 could not survive losing the broker.
        send(sender, countdown=600)
        wait_for(lambda: broker.hlen(UNACKED) == 1, what="the worker to hold the retry")

        private_redis.stop()
        time.sleep(3)  # the worker notices within a second; give it time to die if it would
        assert worker.process is not None
        assert worker.process.poll() is None, "the worker exited when the broker went away"

        private_redis.start()
        send(sender)
        wait_for(
            lambda: broker.llen(on_private.queue) == 0 and broker.hlen(UNACKED) == 0,
            timeout=60,
            what="the worker to take and acknowledge a job once the broker is back",
        )
        assert worker.process.poll() is None
    finally:
        sender.close()
        worker.stop()


def test_the_worker_never_stops_trying_to_reach_the_broker(on_private: Settings) -> None:
    """Celery's default gives up reconnecting after 100 tries, about 50 minutes, and the worker
    exits: an outage that long is not simulated here, so the worker's own setting is read, as the
    worker process loads it."""
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from workers.app import app; print(repr(app.conf.broker_connection_max_retries))",
        ],
        env=worker_env(on_private),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert found.stdout.strip() == "None"
