"""Notification latency: from an event's commit to a receiver holding the verified, decrypted
notification, through a real Celery worker on Redis. Run by `make bench`; merges its results into
bench/results.json under "deliveries". See bench/README.md.

    .venv/bin/python bench/deliveries.py [--rate 20] [--duration 20] [--subscribers 4] [--quick]

Needs PostgreSQL (SPIS_TEST_DATABASE_URL) and Redis (SPIS_TEST_BROKER_URL, default
redis://127.0.0.1:6379/0), as the tests do.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/deliveries.py` puts bench/ first
    sys.path.insert(0, str(REPO_ROOT))

from common import merge_results, percentile, scratch_database  # noqa: E402 - bench/ is on sys.path

BROKER_URL = os.environ.get("SPIS_TEST_BROKER_URL", "redis://127.0.0.1:6379/0")
RESULTS = Path(__file__).resolve().parent / "results.json"
TARGET_P99_S = 1.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="events committed per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of events")
    parser.add_argument(
        "--subscribers", type=int, default=4, help="practices, one subscription each"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="5 s of events")
    args = parser.parse_args()
    if args.quick:
        args.duration = 5.0
    return args


# -- the receiver: what an integrator runs, timing each arrival ---------------------------------


@dataclass
class Arrivals:
    spis_jwks: dict[str, Any]
    keys: dict[str, Any]  # the subscriber's number (the endpoint's last segment) -> private key
    at: dict[tuple[str, int], float] = field(default_factory=dict)  # (subscriber, n) -> time
    handshakes: set[str] = field(default_factory=set)
    refused: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, headers: dict[str, str], body: bytes, path: str) -> int:
        from referral_service.kit.clock import utcnow
        from referral_service.transit.notifications import parse_notification
        from referral_service.transit.receiver import RejectedMessage, open_sealed, verify_webhook

        sid = path.rstrip("/").rsplit("/", 1)[-1]
        try:
            verify_webhook(headers, body, self.spis_jwks, now=utcnow())
            note = parse_notification(open_sealed(body, self.keys[sid], self.spis_jwks))
        except (RejectedMessage, ValueError, KeyError) as exc:
            with self.lock:
                self.refused.append(type(exc).__name__)
            return 400
        arrived = time.time()
        with self.lock:
            if note.type == "handshake":
                self.handshakes.add(sid)
            elif note.event_number is not None:
                self.at.setdefault((sid, note.event_number), arrived)
        return 200


def serve(arrivals: Arrivals) -> tuple[ThreadingHTTPServer, int]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status = arrivals.take(headers, body, self.path)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, int(server.server_address[1])


# -- SPIS: the subscribers, a worker, the events -------------------------------------------------


def bench_settings(url: str, var_dir: Path) -> Any:
    from pydantic import SecretStr

    from referral_service.config import Settings

    return Settings(
        environment="test",
        database_url=url,
        broker_url=BROKER_URL,
        queue=f"spis-bench-{secrets.token_hex(4)}",
        var_dir=var_dir,
        public_base_url="http://bench.invalid",
        kek=SecretStr(secrets.token_urlsafe(32)),
        token_secret=SecretStr(secrets.token_urlsafe(32)),
        blind_index_key=SecretStr(secrets.token_urlsafe(32)),
        delivery_allowed_hosts="127.0.0.1",
    )


def subscribe(
    settings: Any, sessions: Any, port: int, count: int, keys: dict[str, Any]
) -> dict[str, str]:
    """`count` practices, each with a system holding an encryption key and a Task-topic
    subscription made by the Subscription service (its handshake queued). Each endpoint ends
    in the subscriber's number, so the receiver knows whose key opens it: `keys` gets each
    private key by that number. Returns the practices' org ids by it."""
    from referral_service.auth.jwks import JwksCache
    from referral_service.context import Context
    from referral_service.deliveries import service as subscriptions
    from referral_service.principal import Principal
    from tests.deliveries.sending_support import register_subscriber
    from tests.fixtures.subscription_body import subscription_body

    orgs: dict[str, str] = {}
    for n in map(str, range(count)):
        subscriber = register_subscriber(sessions)
        with sessions() as session, session.begin():
            system = subscriber.system
            principal = Principal(system.client_id, system.org_id, system.kind, frozenset())
            body = subscription_body(
                f"http://127.0.0.1:{port}/notify/{n}", payload="application/jose"
            )
            subscriptions.create(Context(session, principal, settings), body, JwksCache())
        keys[n], orgs[n] = subscriber.enc_key, subscriber.org_id
    return orgs


def start_worker(settings: Any) -> subprocess.Popen[bytes]:
    from referral_service.embedded import worker_command, worker_env

    env = worker_env(settings)
    env["SPIS_DELIVERY_ALLOWED_HOSTS"] = "127.0.0.1"
    log = (settings.var_dir / "worker.log").open("ab")
    return subprocess.Popen(  # noqa: S603 - our own worker command, no shell
        worker_command(settings, beat=True),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def commit_events(
    settings: Any, sessions: Any, orgs: dict[str, str], rate: float, duration: float
) -> dict[tuple[str, int], float]:
    """A new referral Task per event, round robin over the practices, at a steady rate; the
    time each commit returned, by (subscriber, event number)."""
    from referral_service.context import Context
    from referral_service.principal import Principal
    from referral_service.store import service as resources

    committed: dict[tuple[str, int], float] = {}
    numbers = dict.fromkeys(orgs, 0)
    order = list(orgs)
    interval = 1.0 / rate
    started = time.monotonic()
    for i in range(int(rate * duration)):
        time.sleep(max(0.0, started + i * interval - time.monotonic()))
        sid = order[i % len(order)]
        with sessions() as session, session.begin():
            ctx = Context(session, Principal.spis(), settings)
            task = {"resourceType": "Task", "status": "requested", "intent": "order"}
            resources.create(ctx, "Task", task, tenant=orgs[sid])
        numbers[sid] += 1
        committed[(sid, numbers[sid])] = time.time()
    return committed


def wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.05)


# -- the run -------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    from referral_service.db import open_database
    from referral_service.keys.jose import KeyStore, keys_dir

    with scratch_database() as url, tempfile.TemporaryDirectory() as tmp:
        settings = bench_settings(url, Path(tmp) / "var")
        # As the API opens it: sessions that send the delivery message after commit.
        database = open_database(settings)
        sessions = database.sessionmaker
        spis_jwks = KeyStore(keys_dir(settings), generate=True).public_jwks()
        arrivals = Arrivals(spis_jwks, {})
        server, port = serve(arrivals)
        orgs = subscribe(settings, sessions, port, args.subscribers, arrivals.keys)
        worker = start_worker(settings)
        try:
            wait_until(lambda: arrivals.handshakes == set(orgs), 60, "the handshakes")
            committed = commit_events(settings, sessions, orgs, args.rate, args.duration)
            wait_until(lambda: set(committed) <= set(arrivals.at), 120, "every notification")
        finally:
            worker.terminate()
            worker.wait(timeout=20)
            server.shutdown()
            database.dispose()
    latencies = [arrivals.at[key] - committed[key] for key in committed]
    results = build_results(args, latencies, arrivals)
    merge_results(args.output, "deliveries", results)
    print_table(results)
    return 0 if not arrivals.refused else 1


def build_results(
    args: argparse.Namespace, latencies: list[float], arrivals: Arrivals
) -> dict[str, Any]:
    ms = [1000 * value for value in latencies]
    p99 = percentile(ms, 99)
    return {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "events": len(ms),
        "rate_per_s": args.rate,
        "subscribers": args.subscribers,
        "latency_ms": {
            "p50": round(percentile(ms, 50), 1),
            "p95": round(percentile(ms, 95), 1),
            "p99": round(p99, 1),
            "max": round(max(ms), 1),
            "mean": round(statistics.fmean(ms), 1),
        },
        "target_p99_ms": TARGET_P99_S * 1000,
        "meets_target": p99 <= TARGET_P99_S * 1000,
        "refused_by_receiver": len(arrivals.refused),
        "setup": [
            "events: a referral Task created and committed in this process (the Task topic), "
            "round robin over the subscribing practices, at a steady rate",
            "one spis worker (solo pool) with beat, on Redis; PostgreSQL; a fresh database",
            "payload id-only, application/jose: signed, encrypted to the subscriber's key; the "
            "receiver checks the webhook signature, decrypts and verifies before it counts",
            "latency: the commit returning -> the receiver holding the opened notification",
        ],
    }


def print_table(results: dict[str, Any]) -> None:
    latency = results["latency_ms"]
    verdict = "meets" if results["meets_target"] else "MISSES"
    print(
        f"\nnotification latency, {results['events']} events at {results['rate_per_s']:g}/s to "
        f"{results['subscribers']} subscribers (commit -> receiver has it):\n"
        f"  p50 {latency['p50']:.0f} ms   p95 {latency['p95']:.0f} ms   p99 {latency['p99']:.0f} ms"
        f"   max {latency['max']:.0f} ms   ({verdict} the p99 target of "
        f"{results['target_p99_ms']:.0f} ms)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
