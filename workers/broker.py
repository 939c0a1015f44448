"""The worker's Redis transport: kombu's, with one guard so that a broker outage only delays work.

Seen with kombu 5.7.0 (and reported against kombu since 3.0, celery/kombu#582 and #970): when the
broker goes away, Celery's consumer first collects the lost connection, which detaches kombu's
transport from it, then closes it. A channel that was waiting on Redis (BRPOP) when the socket
died fails its first close before it counts as closed; if it also holds a message it has not
acknowledged (a retry waiting for its countdown, a job whose acknowledgement failed), the second
close tries to put that message back, needs a new Redis connection pool, and reads the host name
from the detached connection: `AttributeError: 'NoneType' object has no attribute 'hostname'`.
That is not a connection error, so Celery calls it unrecoverable and the worker exits.

The guard turns that one case into what it is, a connection error: the channel's connection is
closed, so there is no broker to reach through it. Celery then ignores it while cleaning up and
reconnects as it does for any outage. Nothing is dropped that was not already out of reach: the
message stays in Redis's unacknowledged set (Redis hands it out again after the visibility
timeout), and every job and delivery is a database row the relay and the sweep send again.

Selected by workers.app for `redis://` URLs through Celery's `broker_transport` setting. Remove it
once kombu checks for a detached connection itself; tests/integration/test_integration_broker_outage
fails without it while kombu does not.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

TRANSPORT = "workers.broker:Transport"


class Channel(kombu_redis.Channel):
    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        # self.connection is the transport; its client is the kombu Connection, None once
        # Connection.collect() or close() has detached it.
        if self.connection is None or self.connection.client is None:
            raise RedisConnectionError("the broker connection of this channel is closed")
        params: dict[str, Any] = super()._connparams(asynchronous=asynchronous)  # type: ignore[no-untyped-call]
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
