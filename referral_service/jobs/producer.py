"""Sending job messages to the Celery broker by task name (this package never imports `workers`)."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from celery import Celery
from celery.utils.nodenames import anon_nodename
from kombu.entity import Queue
from kombu.messaging import Producer as KombuProducer
from kombu.transport import virtual
from kombu.utils.uuid import uuid

from referral_service.config import Settings
from referral_service.jobs import disk_broker

log = logging.getLogger("spis.jobs")
PERSISTENT = 2  # AMQP's delivery mode, as Celery sets it on every task message
SENDER_THREAD = "spis-job-sender"  # the thread's name, as tools and tests see it
Messages = Sequence[tuple[str, str]]  # (task name, job or entity id), in order


def broker_transport_options(settings: Settings) -> dict[str, Any]:
    if settings.broker_url.startswith("filesystem://"):
        folder = (settings.var_dir / "broker").resolve()
        (folder / "control").mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder),
            "data_folder_out": str(folder),
            "control_folder": str(folder / "control"),
            "polling_interval": 0.01,
        }
    # Longer than any job can take, so Redis never redelivers a job that is still running.
    return {"visibility_timeout": 3600}


def celery_app(settings: Settings, name: str) -> Celery:
    app = Celery(name, broker=settings.broker_url)
    if settings.broker_url.startswith("filesystem://"):
        (settings.var_dir / "broker").mkdir(parents=True, exist_ok=True)
        app.conf.broker_transport = disk_broker.TRANSPORT  # atomic hand-offs (see disk_broker)
    app.conf.update(
        broker_transport_options=broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_default_queue=settings.queue,
    )
    return app


class Producer:
    """Publishes `name(job_id)`; a failure is logged and left to the relay, never raised."""

    def __init__(self, settings: Settings) -> None:
        self.app = celery_app(settings, "spis-producer")
        self._queue = settings.queue
        self._origin = anon_nodename()  # what Celery works out again for every message
        self._batching: bool | None = None  # known once the first batch is sent
        self._declared: list[Queue] | None = None  # known once the first message is sent

    def send(self, name: str, job_id: str) -> bool:
        try:
            with self.app.producer_or_acquire() as producer:
                self._publish(producer, name, job_id)
        except Exception as exc:
            log.warning(
                "job not sent; the relay will retry",
                extra={"job_id": job_id, "error": type(exc).__name__},
            )
            return False
        return True

    def send_all(self, messages: Messages) -> int:
        """Publish each `name(job_id)`, in order, as `send` would; how many were sent. On Redis,
        two or more go through one producer from the app's pool in one round trip (kombu's
        publish batch: one pipeline of LPUSHes): what a commit sends, an intake's routing job
        and its outcomes refresh, cost two `send_task`s, each acquiring a producer, building a
        Redis client and waiting for its own reply.

        A failure leaves every message of the batch to the relay, each logged as `send` logs it:
        a refused message aborts the batch before any of it is sent, and a pipeline that fails
        part-way may have delivered some, which the relay sends again (running a job is
        idempotent; a delivery's rows are its own outbox). A transport that cannot batch
        (`filesystem://`, `memory://`) publishes each with `send`."""
        if len(messages) < 2 or not self._batches():
            return sum(self.send(name, job_id) for name, job_id in messages)
        try:
            with self.app.producer_or_acquire() as producer, producer.batch():
                for name, job_id in messages:
                    self._publish(producer, name, job_id)
        except Exception as exc:
            for _, job_id in messages:
                log.warning(
                    "job not sent; the relay will retry",
                    extra={"job_id": job_id, "error": type(exc).__name__},
                )
            return 0
        return len(messages)

    def _publish(self, producer: KombuProducer, name: str, job_id: str) -> None:
        """The message `send_task(name, args=[job_id])` sends, built by Celery's own
        `create_task_message` and published by kombu, without what `send_task` does around them
        that SPIS never uses: no task routes (every job goes to the one queue, `settings.queue`),
        no publish signals, no parent task, no result object, and on Redis no queue declaration
        per message (`_declare`). That was most of a message's cost: about 380 microseconds of
        CPU each when a commit sent two, against 210 now (570 against 360 for one alone, 250
        against 100 in tens). tests/jobs/test_jobs_producer.py checks that the worker is sent
        the message `send_task` sends."""
        task_id = uuid()
        args = [job_id]
        headers, properties, body, _ = self.app.amqp.create_task_message(
            task_id,
            name,
            args,
            None,
            reply_to=self.app.thread_oid,
            argsrepr=repr(args),  # what Celery's `saferepr` gives for one short string
            kwargsrepr="{}",
            origin=self._origin,
            ignore_result=None,  # as send_task leaves it: the app's `task_ignore_result` decides
        )
        producer.publish(  # type: ignore[no-untyped-call]
            body,
            exchange="",
            routing_key=self._queue,
            serializer="json",
            headers=headers,
            delivery_mode=PERSISTENT,
            declare=self._declare(producer),
            retry=False,
            **properties,
        )

    def _declare(self, producer: KombuProducer) -> list[Queue]:
        """The queue to declare before publishing: none on kombu's virtual transports (Redis, the
        embedded `filesystem://`, `memory://`), where a message for the default exchange goes
        straight to the queue it names; on AMQP the queue, as `send_task` declares it (once per
        connection: kombu remembers), or a message sent before any worker declared it would be
        dropped."""
        if self._declared is None:
            direct = isinstance(producer.connection.transport, virtual.Transport)
            self._declared = [] if direct else [self.app.amqp.queues[self._queue]]
        return self._declared

    def _batches(self) -> bool:
        """Whether the broker's transport publishes in batches (kombu >= 5.7, Redis)."""
        if self._batching is None:
            try:
                with self.app.producer_or_acquire() as producer:
                    self._batching = bool(getattr(producer, "supports_batch_publish", False))
            except Exception:
                return False  # asked again next time; `send` logs what it cannot send
        return self._batching


class Sends(Protocol):
    """What a session sends its commit's messages with (jobs/service.py)."""

    def send_all(self, messages: Messages) -> int: ...


class BackgroundSender:
    """What the API's commits send, published by one thread of the process: a request does not
    wait for the broker, and what several commits send goes in one round trip.

    The thread takes everything queued (up to MAX_BATCH messages) and publishes it as
    `Producer.send_all` does, in one Redis pipeline, in the order the commits handed it over.
    A batch waits LINGER_S (20 ms) after its first commit for the commits that follow, so a
    message reaches the broker at most about that much later than it would have been sent from
    the request. The producer's cost per batch (a producer from the pool, a Redis pipeline
    built, a round trip) was about half of what sending an intake's two messages cost; without
    the wait, the thread sent each commit's messages alone and paid it every time (the thread's
    share of an intake's CPU in the profile: 16.5% without, 10.3% with).

    Nothing is lost that was committed: every message stands for a committed job row, which the
    relay sends again, or a delivery row, which the sweep finds again (jobs/service.py). A
    broker that is down costs what it costs `send_all`: each message logged for the relay. A
    process that dies with messages still queued leaves them to the relay in the same way.
    `close` sends what is queued and stops the thread; a commit after that sends at once."""

    # A broker that does not answer holds each attempt for the connection timeout (2 s) while
    # commits queue more: an attempt must take far more than they queue meanwhile (an intake
    # queues two), or the queue, and the process's memory, would grow for as long as it is down.
    MAX_BATCH = 5_000
    # How long a batch waits for more after its first commit. Without it the thread woke for
    # every commit and sent its two messages alone: the batch's own cost (a producer from the
    # pool, a Redis pipeline, a round trip) was still paid once a commit, in this thread.
    LINGER_S = 0.02

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self._queue: queue.SimpleQueue[list[tuple[str, str]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._queued = 0  # messages handed over and not yet sent (or given up on)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=SENDER_THREAD, daemon=True)
        self._thread.start()

    def send_all(self, messages: Messages) -> int:
        """Queue the messages for the thread; how many were taken (all of them)."""
        if not messages:
            return 0
        with self._lock:
            if not self._closed:
                self._queued += len(messages)
                self._queue.put(list(messages))
                return len(messages)
        return self.producer.send_all(messages)

    def wait_sent(self, timeout: float = 10.0) -> bool:
        """Whether everything queued so far was sent (or left to the relay) within `timeout`."""
        with self._idle:
            return self._idle.wait_for(lambda: self._queued == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is queued, then stop the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            time.sleep(self.LINGER_S)  # what the next commits hand over goes in the same batch
            batch = first
            while len(batch) < self.MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                batch.extend(more)
            try:
                self.producer.send_all(batch)
            except Exception as exc:  # send_all logs its own failures; this is a bug's
                log.error(
                    "job messages not sent; the relay will retry",
                    extra={"count": len(batch), "error": type(exc).__name__},
                )
            with self._idle:
                self._queued -= len(batch)
                self._idle.notify_all()
