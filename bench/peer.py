"""The peer: fhirstarter (bench/peer/peer_fhirstarter.py) with 2 uvicorn workers, in a venv of its
own (bench/.peer-venv: made on the first run from PyPI, then reused), creating ServiceRequests.

    with peer_server() as peer:            # PeerUnavailable when the venv cannot be made
        run = wrk("post.lua", f"{peer.base_url}/ServiceRequest", 10, peer_env())
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

BENCH = Path(__file__).resolve().parent
PEER_DIR = BENCH / "peer"
VENV = BENCH / ".peer-venv"
STAMP = VENV / ".installed"
PACKAGES = ["fhirstarter", "uvicorn[standard]", "orjson"]
BODY = PEER_DIR / "servicerequest.json"
READY_TIMEOUT_S = 60.0


class PeerUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Served:
    """A uvicorn server the bench started (the peer, the floor app)."""

    base_url: str
    pid: int  # uvicorn's supervisor: the session id its workers share


def ensure_venv() -> Path:
    """bench/.peer-venv with fhirstarter, made once; its python."""
    python = VENV / "bin" / "python"
    if STAMP.exists() and python.exists():
        return python
    print(f"peer: making {VENV} (pip install {' '.join(PACKAGES)}) ...", file=sys.stderr)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)  # noqa: S603
        subprocess.run(  # noqa: S603 - the venv just made, fixed package names
            [str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
            check=True,
            timeout=900,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        raise PeerUnavailable(f"could not make {VENV}: {exc}") from None
    STAMP.touch()
    return python


@contextmanager
def peer_server(port: int, workers: int = 2) -> Iterator[Served]:
    python = ensure_venv()
    log = open(BENCH / ".peer-venv" / "peer.log", "wb")  # noqa: SIM115 - closed below
    command = [
        str(python), "-m", "uvicorn", "peer_fhirstarter:app", "--host", "127.0.0.1",
        "--port", str(port), "--workers", str(workers), "--no-access-log",
    ]  # fmt: skip
    proc = start_server(command, PEER_DIR, log)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(proc, base_url)
        yield Served(base_url, proc.pid)
    finally:
        stop_server(proc)
        log.close()


def _wait_until_ready(proc: subprocess.Popen[bytes], base_url: str) -> None:
    """Ready when a ServiceRequest create answers 201 (from at least one worker: warm up)."""
    body = BODY.read_bytes()
    headers = {"Content-Type": "application/fhir+json"}
    wait_until_ready(
        proc,
        lambda: httpx.post(f"{base_url}/ServiceRequest", content=body, headers=headers),
        201,
        PeerUnavailable("the peer"),
        lambda: f"see {VENV}/peer.log",
    )


def wait_until_ready(
    proc: subprocess.Popen[bytes],
    probe: Callable[[], httpx.Response],
    good: int,
    unavailable: Exception,
    log: Callable[[], str],
) -> None:
    """Until `probe` answers `good`; `unavailable` (its message naming the server), with what
    `log` tells, when the server exits first, answers anything else, or not within 60 s."""
    what = str(unavailable)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise type(unavailable)(f"{what} exited with {proc.returncode}: {log()}")
        try:
            answer = probe()
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if answer.status_code == good:
            return
        raise type(unavailable)(
            f"{what} answered {answer.status_code}: {answer.text[:300]} {log()}"
        )
    raise type(unavailable)(f"{what} did not answer within {READY_TIMEOUT_S:.0f} s")


def start_server(
    command: list[str], cwd: Path, log: IO[bytes], env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """A uvicorn server in a session of its own (so `stop_server` can end its workers too), its
    output to `log`."""
    return subprocess.Popen(  # noqa: S603 - the bench's own commands, fixed arguments
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a uvicorn supervisor, and its whole session if it does not stop in 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def peer_env() -> dict[str, str]:
    """post.lua's settings for the peer: the same ServiceRequest each time, no token."""
    return {"BODY_FILE": str(BODY), "PATH_": "/ServiceRequest", "TOKEN": ""}
