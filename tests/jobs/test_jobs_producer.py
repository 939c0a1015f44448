"""What a commit sends goes to the broker in one round trip (`Producer.send_all`): the same
messages `send` publishes, in order, or, when the broker cannot take them, none of them, each
logged for the relay. Against Redis (SPIS_TEST_BROKER_URL), on a queue of the test's own."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.client import Pipeline
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.jobs.producer import Producer
from referral_service.jobs.service import PRODUCER_KEY, JobName, enqueue

BROKER_URL = os.environ.get("SPIS_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")
NOBODY = "redis://127.0.0.1:9/0"  # nothing listens there


@pytest.fixture
def queue() -> Iterator[str]:
    name = f"spis-test-{secrets.token_hex(4)}"
    yield name
    client = redis.Redis.from_url(BROKER_URL)
    client.delete(name)
    client.close()


def producer_on(queue: str, url: str = BROKER_URL) -> Producer:
    return Producer(Settings(broker_url=url, queue=queue))


def taken(queue: str) -> list[tuple[str, list[Any], dict[str, Any]]]:
    """The messages waiting on `queue`, oldest first (the order a worker takes them in): task
    name, args and kwargs, as the worker reads them."""
    client = redis.Redis.from_url(BROKER_URL)
    try:
        raw = client.lrange(queue, 0, -1)
    finally:
        client.close()
    found = []
    for message in reversed(raw):  # LPUSH, and a worker takes from the right
        envelope = json.loads(message)
        args, kwargs, _ = json.loads(base64.b64decode(envelope["body"]))
        found.append((envelope["headers"]["task"], args, kwargs))
    return found


def test_send_all_publishes_what_send_publishes_in_order_in_one_round_trip(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    producer = producer_on(queue)
    assert producer.send(JobName.ROUTE_REFERRAL.value, "job-0")
    round_trips: list[int] = []
    execute = Pipeline.execute

    def counted(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        round_trips.append(len(self))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "execute", counted)
    messages = [
        (JobName.ROUTE_REFERRAL.value, "job-1"),
        (JobName.REFRESH_OUTCOMES.value, "job-2"),
        (JobName.DELIVER.value, "subscription-3"),
    ]
    assert producer.send_all(messages) == 3
    assert round_trips == [3]  # one pipeline of the three LPUSHes
    assert taken(queue) == [
        ("spis.route_referral", ["job-0"], {}),
        ("spis.route_referral", ["job-1"], {}),
        ("spis.refresh_outcomes", ["job-2"], {}),
        ("spis.deliver", ["subscription-3"], {}),
    ]


def test_what_a_commit_enqueued_is_sent_after_it_in_one_batch(
    session_factory: sessionmaker[Session], queue: str
) -> None:
    with session_factory() as session:
        session.info[PRODUCER_KEY] = producer_on(queue)
        first = enqueue(session, JobName.ROUTE_REFERRAL, referral_task="t-1")
        second = enqueue(session, JobName.REFRESH_OUTCOMES, patient="p-1")
        session.flush()
        assert taken(queue) == []
        session.commit()
    assert taken(queue) == [
        ("spis.route_referral", [first], {}),
        ("spis.refresh_outcomes", [second], {}),
    ]


def test_a_broker_that_is_down_costs_nothing_but_the_relay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = producer_on("spis-test-nowhere", NOBODY)
    messages = [(JobName.ROUTE_REFERRAL.value, "job-1"), (JobName.REFRESH_OUTCOMES.value, "job-2")]
    with caplog.at_level(logging.WARNING, logger="spis.jobs"):
        assert producer.send_all(messages) == 0
    logged = [r for r in caplog.records if r.getMessage() == "job not sent; the relay will retry"]
    assert [r.__dict__["job_id"] for r in logged] == ["job-1", "job-2"]


def test_a_message_refused_in_a_batch_sends_none_of_it(
    queue: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing of an aborted batch reaches the broker: every message of it is the relay's, and
    logged as such, rather than some sent and some not without saying which."""
    producer = producer_on(queue)
    assert producer.send_all([]) == 0
    send_task = producer.app.send_task

    def refuse_the_second(name: str, *args: Any, **kwargs: Any) -> Any:
        if kwargs["args"] == ["job-2"]:
            raise ConnectionError("refused")
        return send_task(name, *args, **kwargs)

    monkeypatch.setattr(producer.app, "send_task", refuse_the_second)
    messages = [(JobName.ROUTE_REFERRAL.value, "job-1"), (JobName.REFRESH_OUTCOMES.value, "job-2")]
    with caplog.at_level(logging.WARNING, logger="spis.jobs"):
        assert producer.send_all(messages) == 0
    assert taken(queue) == []
    logged = [r for r in caplog.records if r.getMessage() == "job not sent; the relay will retry"]
    assert [r.__dict__["job_id"] for r in logged] == ["job-1", "job-2"]


def test_a_transport_that_cannot_batch_sends_each_on_its_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`memory://` (and the embedded `filesystem://`) publish at once: each through `send`, so
    one refused message costs only itself."""
    producer = producer_on("spis-test-memory", "memory://")
    sent: list[tuple[str, str]] = []

    def send(self: Producer, name: str, job_id: str) -> bool:
        sent.append((name, job_id))
        return job_id != "job-2"

    monkeypatch.setattr(Producer, "send", send)
    messages = [
        (JobName.ROUTE_REFERRAL.value, "job-1"),
        (JobName.REFRESH_OUTCOMES.value, "job-2"),
        (JobName.ROUTE_REFERRAL.value, "job-3"),
    ]
    assert producer.send_all(messages) == 2
    assert sent == messages
