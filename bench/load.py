"""HTTP load with wrk (`apt-get install wrk`): a C load generator, so that on two cores the load
costs far less CPU than the server it measures. The Lua scripts are in bench/wrk/. For a few long
requests a second (the batch phase), `closed_loop`, which waits for the answers in flight.

    run = wrk("get.lua", url, 10.0, {"TOKEN": token, "COUNT": '"mode":"match"', "EXPECT": "50"})
    run.good, run.per_s, run.p50_ms, run.bad, run.errors
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from common import percentile

SCRIPTS = Path(__file__).resolve().parent / "wrk"
THREADS = 2
CONNECTIONS = 16
TIMEOUT = (
    "60s"  # a batch of 100 entries under 16 connections takes seconds, and must not count as lost
)
RESULT = re.compile(r"^RESULT (.*)$", re.MULTILINE)
FIRST_BAD = re.compile(r"^FIRST_BAD (.*)$", re.MULTILINE)
INSTALL = "apt-get install wrk"


class WrkMissing(RuntimeError):
    pass


@dataclass
class WrkRun:
    """One wrk run: `requests` answered, of which `bad` failed the script's check; `counted` is
    the sum of what the check counted in the good answers (e.g. 201 entries)."""

    requests: int
    duration_s: float
    bad: int
    counted: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: dict[str, int]
    first_bad: str = ""
    cpu: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def good(self) -> int:
        return self.requests - self.bad

    @property
    def per_s(self) -> float:
        return self.good / self.duration_s if self.duration_s else 0.0

    @property
    def counted_per_s(self) -> float:
        return self.counted / self.duration_s if self.duration_s else 0.0

    @property
    def failures(self) -> int:
        """Answers that failed the check, and requests that got no answer (socket errors and
        timeouts; HTTP error statuses are among `bad` already)."""
        e = self.errors
        return self.bad + e["connect"] + e["read"] + e["write"] + e["timeout"]

    def summary(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "good": self.good,
            "bad": self.bad,
            "counted": self.counted,
            "seconds": round(self.duration_s, 2),
            "per_s": round(self.per_s, 1),
            "p50_ms": self.p50_ms,
            "p90_ms": self.p90_ms,
            "p99_ms": self.p99_ms,
            "errors": self.errors,
            **({"first_bad": self.first_bad} if self.first_bad else {}),
            "cpu": self.cpu,
            "memory": self.memory,
        }


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing(f"bench: wrk is needed for the HTTP load; install it with: {INSTALL}")
    return found


def wrk(
    script: str, url: str, duration: float, env: dict[str, str], connections: int = CONNECTIONS
) -> WrkRun:
    """Run wrk -t2 -c16 for `duration` seconds with bench/wrk/<script>; the RESULT it prints."""
    command = [
        wrk_path(), f"-t{THREADS}", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--timeout", TIMEOUT, "-s", str(SCRIPTS / script), url,
    ]  # fmt: skip
    done = subprocess.run(  # noqa: S603 - wrk from PATH, our own scripts
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=duration + 120,
        check=False,
    )
    found = RESULT.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr}")
    values = dict(part.split("=", 1) for part in found.group(1).split())
    errors = dict(
        zip(
            ("connect", "read", "write", "timeout", "status"),
            (int(n) for n in values["errors"].split("/")),
            strict=True,
        )
    )
    first_bad = FIRST_BAD.search(done.stdout)
    return WrkRun(
        requests=int(values["requests"]),
        duration_s=int(values["duration_us"]) / 1e6,
        bad=int(values["bad"]),
        counted=int(values["counted"]),
        p50_ms=float(values["p50_ms"]),
        p90_ms=float(values["p90_ms"]),
        p99_ms=float(values["p99_ms"]),
        errors=errors,
        first_bad=first_bad.group(1) if first_bad else "",
    )


def closed_loop(
    url: str,
    body: bytes,
    headers: dict[str, str],
    connections: int,
    duration: float,
    check: Callable[[int, bytes], int | None],
) -> WrkRun:
    """`connections` clients POST `body` one after the other until `duration` has passed, and the
    requests in flight then are waited for and counted (the run lasts until the last answer).

    For the batch phase: a few long requests a second, so a Python client costs the server next
    to nothing, and unlike wrk it does not drop the answers unfinished at the end (with answers
    seconds long, wrk's rate would miss a large share). `check(status, body)` returns what the
    answer counts (e.g. its entries answered 201), or None when it is bad.
    """
    lock = threading.Lock()
    latencies: list[float] = []
    tally = {"requests": 0, "bad": 0, "counted": 0, "read": 0}
    first_bad: list[str] = []
    began = time.perf_counter()
    deadline = began + duration

    def client() -> None:
        with httpx.Client(timeout=float(TIMEOUT.rstrip("s"))) as http:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                try:
                    answer = http.post(url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    with lock:
                        tally["read"] += 1
                        first_bad.append(f"{type(exc).__name__}: {exc}")
                    continue
                counted = check(answer.status_code, answer.content)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    tally["requests"] += 1
                    if counted is None:
                        tally["bad"] += 1
                        first_bad.append(f"{answer.status_code} {answer.text[:300]}")
                    else:
                        tally["counted"] += counted

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    ms = sorted(1000 * value for value in latencies) or [0.0]
    return WrkRun(
        requests=tally["requests"],
        duration_s=elapsed,
        bad=tally["bad"],
        counted=tally["counted"],
        p50_ms=round(percentile(ms, 50), 2),
        p90_ms=round(percentile(ms, 90), 2),
        p99_ms=round(percentile(ms, 99), 2),
        errors={"connect": 0, "read": tally["read"], "write": 0, "timeout": 0, "status": 0},
        first_bad=first_bad[0] if first_bad else "",
    )
