"""`spis health api|worker|beat`, the container health checks, against real processes."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.fixtures.server import running_server
from tests.fixtures.spis_cli import assert_one_line_error, run_spis, spis_command, spis_env
from tests.integration.conftest import BROKER_URL

REFUSED = "http://127.0.0.1:1/readyz"


@pytest.mark.slow
def test_health_api_passes_on_a_ready_server_and_names_what_failed(
    pg_url: str, tmp_path: Path
) -> None:
    env = spis_env(tmp_path / "var")
    with running_server(pg_url) as base_url:
        ready = run_spis(["health", "api", "--url", f"{base_url}/readyz"], env, cwd=tmp_path)
    assert ready.returncode == 0, ready.stderr
    assert json.loads(ready.stdout)["status"] == "ready"

    refused = run_spis(["health", "api", "--url", REFUSED], env, cwd=tmp_path)
    assert_one_line_error(refused, REFUSED, "did not answer (ConnectError)")


@pytest.mark.slow
def test_health_api_fails_when_the_broker_is_down(pg_url: str, tmp_path: Path) -> None:
    no_broker = {"SPIS_BROKER_URL": "redis://127.0.0.1:1/0"}
    with running_server(pg_url, env=no_broker) as base_url:
        result = run_spis(
            ["health", "api", "--url", f"{base_url}/readyz"], spis_env(tmp_path), tmp_path
        )
    assert_one_line_error(result, "answered 503", "broker: unreachable (")


@pytest.mark.slow
def test_health_worker_pings_this_hosts_spis_worker(tmp_path: Path) -> None:
    env = spis_env(
        tmp_path / "var", SPIS_BROKER_URL=BROKER_URL, SPIS_QUEUE=f"spis-test-{secrets.token_hex(4)}"
    )
    before = run_spis(["health", "worker", "--timeout", "1"], env, cwd=tmp_path)
    assert_one_line_error(
        before, f"worker {env['SPIS_QUEUE']}@", "did not answer a ping within 1 s"
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            spis_command("worker"), env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            answered = wait_for_probe(["health", "worker", "--timeout", "2"], env, tmp_path, worker)
            assert json.loads(answered.stdout)["worker"].startswith(f"{env['SPIS_QUEUE']}@")
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            assert worker.wait(30) == 0, log.read_text()
    after = run_spis(["health", "worker", "--timeout", "1"], env, cwd=tmp_path)
    assert_one_line_error(after, "did not answer a ping")


def test_health_beat_reads_the_heartbeat_age(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    env = spis_env(var_dir)
    missing = run_spis(["health", "beat"], env, cwd=tmp_path)
    assert_one_line_error(missing, "no beat heartbeat at", str(var_dir / "celerybeat-heartbeat"))

    var_dir.mkdir()
    heartbeat = var_dir / "celerybeat-heartbeat"
    heartbeat.touch()
    fresh = run_spis(["health", "beat"], env, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads(fresh.stdout)["ok"] is True

    old = time.time() - 3600
    os.utime(heartbeat, (old, old))
    stale = run_spis(["health", "beat", "--max-age", "120"], env, cwd=tmp_path)
    assert_one_line_error(stale, "s old (limit 120 s)")


def wait_for_probe(
    args: list[str], env: dict[str, str], cwd: Path, process: subprocess.Popen[bytes]
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 60
    while True:
        result = run_spis(args, env, cwd=cwd)
        if result.returncode == 0:
            return result
        assert process.poll() is None, f"the process exited with {process.returncode}"
        assert time.monotonic() < deadline, result.stderr
        time.sleep(0.5)
