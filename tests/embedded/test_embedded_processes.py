"""Every process `spis serve` starts ends with it, however it ends, and only one beat ever runs.

`spis serve` runs on the embedded default in a subprocess; its descendants are found in /proc by the
SPIS_VAR_DIR they inherit (unique to each test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.embedded.test_embedded_demo import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; Linux only"),
]


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    argv: list[str]

    @property
    def role(self) -> str:
        for role in ("worker", "beat", "serve"):
            if role in self.argv:
                return role
        if any("spawn_main" in arg for arg in self.argv):
            return "api"  # one of uvicorn's worker processes
        if any("resource_tracker" in arg for arg in self.argv):
            return "tracker"  # multiprocessing's helper beside them
        return " ".join(self.argv)


def ours(var_dir: Path) -> list[Proc]:
    """Every live process carrying this test's SPIS_VAR_DIR."""
    marker = f"SPIS_VAR_DIR={var_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        if stat.rpartition(")")[2].split()[0] == "Z":  # a zombie has ended; only not reaped
            continue
        found.append(Proc(int(entry.name), int(stat.rpartition(")")[2].split()[1]), argv))
    return found


def wait_until(check: Callable[[], bool], what: str, timeout: float = 45.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting: {what}"
        time.sleep(0.2)


def roles(var_dir: Path) -> list[str]:
    return sorted(p.role for p in ours(var_dir))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., tuple[subprocess.Popen[bytes], Path]]]:
    started: list[subprocess.Popen[bytes]] = []
    var_dir = tmp_path / "var"

    def start(*extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SPIS_")}
        env["SPIS_VAR_DIR"] = str(var_dir)
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-m", "referral_service.cli", "serve", "--port", str(port), *extra],
            env=env,
            cwd=tmp_path,
        )
        started.append(process)
        wait_until(lambda: _answers(port), "the API")
        return process, var_dir

    yield start
    for process in started:
        process.kill()
        process.wait()
    for leftover in ours(var_dir):  # never leave a process behind, even when the test failed
        os.kill(leftover.pid, signal.SIGKILL)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/fhir/metadata", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def descends_from(proc: Proc, ancestor: int, procs: list[Proc]) -> bool:
    parents = {p.pid: p.ppid for p in procs}
    pid = proc.pid
    while pid in parents and pid != ancestor:
        pid = parents[pid]
    return pid == ancestor


def test_a_killed_worker_is_restarted_and_only_one_beat_runs(
    serve: Callable[..., tuple[subprocess.Popen[bytes], Path]],
) -> None:
    server, var_dir = serve()
    wait_until(lambda: len(ours(var_dir)) >= 3, "the API, a worker and a beat")
    [worker] = [p for p in ours(var_dir) if p.role == "worker" and p.ppid == server.pid]

    os.kill(worker.pid, signal.SIGKILL)
    wait_until(
        lambda: any(p.role == "worker" and p.pid != worker.pid for p in ours(var_dir)),
        "the supervisor to start the worker again",
    )
    time.sleep(3)  # a second beat, if one were started, would be up by now

    found = ours(var_dir)
    orphans = [p for p in found if not descends_from(p, server.pid, found)]
    assert orphans == [], "processes that outlived their parent"
    assert roles(var_dir) == ["beat", "serve", "worker"]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_descendant_ends_when_serve_is_killed(
    serve: Callable[..., tuple[subprocess.Popen[bytes], Path]], workers: int
) -> None:
    server, var_dir = serve("--workers", str(workers))
    # the API, a worker and a beat; with several API processes also multiprocessing's tracker
    expected = 3 if workers == 1 else 4 + workers
    wait_until(lambda: len(ours(var_dir)) >= expected, f"{expected} processes")

    server.kill()
    server.wait()

    wait_until(lambda: ours(var_dir) == [], "every descendant of `spis serve` to end", 30)
