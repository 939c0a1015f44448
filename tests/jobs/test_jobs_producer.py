"""What a commit sends goes to the broker in one round trip (`Producer.send_all`): the same
messages `send` publishes, in order, or, when the broker cannot take them, none of them, each
logged for the relay. Against Redis (SPIS_TEST_BROKER_URL), on a queue of the test's own."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
import redis
from redis.client import Pipeline
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.db import open_database
from referral_service.jobs.producer import SENDER_THREAD, BackgroundSender, Producer
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


# What differs from one message to the next, or from one sender to another.
_OWN_HEADERS = {"id", "root_id", "origin"}
_OWN_PROPERTIES = {"correlation_id", "delivery_tag", "reply_to"}


def _envelope(raw: bytes) -> dict[str, Any]:
    """A message as the worker reads it, less what is its own (ids, the sender's name)."""
    envelope = json.loads(raw)
    envelope["body"] = json.loads(base64.b64decode(envelope["body"]))
    envelope["headers"] = {k: v for k, v in envelope["headers"].items() if k not in _OWN_HEADERS}
    envelope["properties"] = {
        k: v for k, v in envelope["properties"].items() if k not in _OWN_PROPERTIES
    }
    return envelope


@pytest.mark.parametrize("batched", [False, True])
def test_the_worker_is_sent_what_celerys_send_task_sends(queue: str, batched: bool) -> None:
    """The producer builds its messages with Celery's `create_task_message` and publishes them
    with kombu, skipping `send_task`'s routing and bookkeeping (producer.py): a worker must get
    the very message `send_task` would have sent, field for field, once or in a batch."""
    producer = producer_on(queue)
    producer.app.send_task(JobName.ROUTE_REFERRAL.value, args=["job-1"], retry=False)
    if batched:
        assert producer.send_all([(JobName.ROUTE_REFERRAL.value, "job-1")] * 2) == 2
    else:
        assert producer.send(JobName.ROUTE_REFERRAL.value, "job-1")
    client = redis.Redis.from_url(BROKER_URL)
    try:
        raw = client.lrange(queue, 0, -1)
        full = json.loads(raw[0])
    finally:
        client.close()
    by_send_task, *ours = reversed(raw)
    assert len(ours) == (2 if batched else 1)
    expected = _envelope(by_send_task)
    assert expected["headers"]["task"] == "spis.route_referral"
    assert expected["body"][0] == ["job-1"]
    for message in ours:
        assert _envelope(message) == expected
    # Its own ids are its own: a task id, and the same as its correlation id.
    assert (
        full["headers"]["id"] == full["properties"]["correlation_id"] == full["headers"]["root_id"]
    )
    assert len({json.loads(m)["headers"]["id"] for m in raw}) == len(raw)


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
    publish = Producer._publish

    def refuse_the_second(self: Producer, kombu_producer: Any, name: str, job_id: str) -> None:
        if job_id == "job-2":
            raise ConnectionError("refused")
        publish(self, kombu_producer, name, job_id)

    monkeypatch.setattr(Producer, "_publish", refuse_the_second)
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


def test_the_queue_is_declared_where_the_broker_needs_it(queue: str) -> None:
    """On AMQP (RabbitMQ) a message for a queue nobody declared yet is dropped, so the producer
    declares the queue as `send_task` does; kombu's virtual transports (Redis, the embedded
    broker) push to the queue the message names, so there it declares nothing."""
    for url, declared in [
        (BROKER_URL, []),
        ("memory://", []),
        ("amqp://guest@127.0.0.1:9//", [queue]),
    ]:
        producer = producer_on(queue, url)
        with kombu.Connection(url) as connection:  # not connected: only its transport is asked
            chosen = producer._declare(connection.Producer(auto_declare=False))
        assert [q.name for q in chosen] == declared


# --- the API's background sender ------------------------------------------------------------------


def test_the_background_sender_sends_what_commits_hand_it_in_order(queue: str) -> None:
    sender = BackgroundSender(producer_on(queue))
    try:
        for i in range(20):
            handed = [(JobName.ROUTE_REFERRAL.value, f"job-{i}"), (JobName.DELIVER.value, f"s-{i}")]
            assert sender.send_all(handed) == 2
        assert sender.send_all([]) == 0
        assert sender.wait_sent()
    finally:
        sender.close()
    expected = []
    for i in range(20):
        expected += [("spis.route_referral", [f"job-{i}"], {}), ("spis.deliver", [f"s-{i}"], {})]
    assert taken(queue) == expected


def test_commits_that_queue_while_a_batch_is_sent_go_together_in_the_next(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The thread takes all that waits: while one batch is on its way, what later commits hand
    over piles up and goes in one `send_all` (one round trip), not one each."""
    sent: list[list[str]] = []
    first_on_its_way, release = threading.Event(), threading.Event()
    send_all = Producer.send_all

    def held(self: Producer, messages: Any) -> int:
        sent.append([job_id for _, job_id in messages])
        if len(sent) == 1:
            first_on_its_way.set()
            assert release.wait(10)
        return send_all(self, messages)

    monkeypatch.setattr(Producer, "send_all", held)
    sender = BackgroundSender(producer_on(queue))
    try:
        sender.send_all([(JobName.ROUTE_REFERRAL.value, "job-0")])
        assert first_on_its_way.wait(10)
        for i in range(1, 6):
            sender.send_all([(JobName.ROUTE_REFERRAL.value, f"job-{i}")])
        assert not sender.wait_sent(timeout=0.05)  # held: nothing after the first has gone
        release.set()
        assert sender.wait_sent()
    finally:
        release.set()
        sender.close()
    assert sent == [["job-0"], ["job-1", "job-2", "job-3", "job-4", "job-5"]]
    assert [args for _, args, _ in taken(queue)] == [[f"job-{i}"] for i in range(6)]


def test_closing_the_sender_sends_what_is_queued_and_later_commits_send_at_once(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API's shutdown closes it (db.Database.dispose): nothing queued is left behind."""
    first_on_its_way, release = threading.Event(), threading.Event()
    send_all = Producer.send_all

    def held(self: Producer, messages: Any) -> int:
        if not first_on_its_way.is_set():
            first_on_its_way.set()
            assert release.wait(10)
        return send_all(self, messages)

    monkeypatch.setattr(Producer, "send_all", held)
    sender = BackgroundSender(producer_on(queue))
    sender.send_all([(JobName.ROUTE_REFERRAL.value, "job-0")])
    assert first_on_its_way.wait(10)
    sender.send_all([(JobName.ROUTE_REFERRAL.value, "job-1")])
    threading.Timer(0.1, release.set).start()
    sender.close()
    assert [args for _, args, _ in taken(queue)] == [["job-0"], ["job-1"]]
    assert sender.send_all([(JobName.ROUTE_REFERRAL.value, "job-2")]) == 1  # sent, not queued
    assert [args for _, args, _ in taken(queue)] == [["job-0"], ["job-1"], ["job-2"]]
    sender.close()  # twice is harmless


def test_a_broker_that_is_down_leaves_the_background_senders_messages_to_the_relay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sender = BackgroundSender(producer_on("spis-test-nowhere", NOBODY))
    messages = [(JobName.ROUTE_REFERRAL.value, "job-1"), (JobName.REFRESH_OUTCOMES.value, "job-2")]
    with caplog.at_level(logging.WARNING, logger="spis.jobs"):
        assert sender.send_all(messages) == 2  # taken: the request does not wait
        assert sender.wait_sent()
        sender.close()
    logged = [r for r in caplog.records if r.getMessage() == "job not sent; the relay will retry"]
    assert [r.__dict__["job_id"] for r in logged] == ["job-1", "job-2"]
    assert not sender._thread.is_alive()
    assert sender._thread.name == SENDER_THREAD


def test_the_apis_sessions_send_from_the_background_and_the_cli_sends_at_once(
    settings: Settings,
) -> None:
    api = open_database(settings, send_in_background=True)
    cli = open_database(settings)
    try:
        assert isinstance(api.sessionmaker.kw["info"][PRODUCER_KEY], BackgroundSender)
        assert cli.sessionmaker.kw["info"][PRODUCER_KEY] is cli.producer
    finally:
        api.dispose()
        cli.dispose()
    assert isinstance(api.sender, BackgroundSender)
    assert not api.sender._thread.is_alive()


def test_a_broker_that_does_not_answer_does_not_let_the_queue_grow_without_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each attempt takes what piled up while the last one waited (up to MAX_BATCH): while a
    broker holds every attempt for its timeout, the queue drains far faster than commits fill
    it, rather than a few messages an attempt."""
    attempts: list[int] = []
    first_on_its_way, release = threading.Event(), threading.Event()

    def unanswered(self: Producer, messages: Any) -> int:
        attempts.append(len(messages))
        if len(attempts) == 1:
            first_on_its_way.set()
            assert release.wait(10)
        return 0  # each of them logged for the relay, as send_all does

    monkeypatch.setattr(Producer, "send_all", unanswered)
    sender = BackgroundSender(producer_on("spis-test-nowhere", NOBODY))
    try:
        sender.send_all([(JobName.ROUTE_REFERRAL.value, "job-0")])
        assert first_on_its_way.wait(10)
        for i in range(12_000):  # 6,000 intakes' worth, queued during one attempt
            sender.send_all([(JobName.ROUTE_REFERRAL.value, f"job-{i}")])
        release.set()
        assert sender.wait_sent()
    finally:
        release.set()
        sender.close()
    assert attempts == [1, BackgroundSender.MAX_BATCH, BackgroundSender.MAX_BATCH, 2_000]


def test_the_commits_that_follow_within_the_linger_go_in_the_same_batch(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch waits LINGER_S after its first commit: without the wait the thread sent every
    commit's messages alone, and paid a batch's cost (a pooled producer, a pipeline, a round
    trip) for each. Here the wait is made long, so that the test cannot race it."""
    sent: list[list[str]] = []
    send_all = Producer.send_all

    def recorded(self: Producer, messages: Any) -> int:
        sent.append([job_id for _, job_id in messages])
        return send_all(self, messages)

    monkeypatch.setattr(Producer, "send_all", recorded)
    monkeypatch.setattr(BackgroundSender, "LINGER_S", 0.5)
    sender = BackgroundSender(producer_on(queue))
    try:
        sender.send_all([(JobName.ROUTE_REFERRAL.value, "a-1"), (JobName.DELIVER.value, "a-2")])
        time.sleep(0.1)  # the next commit, a while later: the thread has taken the first
        sender.send_all([(JobName.ROUTE_REFERRAL.value, "b-1")])
        assert sender.wait_sent()
    finally:
        sender.close()
    assert sent == [["a-1", "a-2", "b-1"]]
    assert [args for _, args, _ in taken(queue)] == [["a-1"], ["a-2"], ["b-1"]]
