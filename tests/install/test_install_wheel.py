"""Acceptance: SPIS installed the way an operator installs it, and run against PostgreSQL and Redis.

A wheel is built from the same files the Dockerfile copies, installed (not editable) into a new
virtual environment outside the checkout, and every command runs from an empty directory with
nothing of the checkout on its path: `spis migrate` on a new database, `spis transit-keys
ensure`, `spis org add` and `spis client add`, then `spis serve`, `spis worker` and `spis beat`
on a queue of their own. A practice sends a referral over HTTP; the worker routes it through
Redis to the time bank, which finds it in its inbox; beat's relay runs on the worker; the health
probes pass. Then everything is stopped with SIGTERM and must exit cleanly, leaving no process.

Dependencies come from the package index through pip's cache, so a second run is quicker.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from referral_service.organisations.models import OrgKind
from tests.conftest import new_database
from tests.fixtures.fhir import FHIR_JSON, referral_bundle
from tests.fixtures.server import access_token, free_port
from tests.fixtures.systems import TestSystem, new_key, public_jwks
from tests.integration.conftest import BROKER_URL

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("pyproject.toml", "README.md", "referral_service", "fhir_adapters", "workers")
BUILD_TIMEOUT_S = 300
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 30
# uvicorn re-raises SIGTERM once it has shut down cleanly, so the server "dies" of it.
CLEAN_EXIT = {"serve": {0, -signal.SIGTERM}, "worker": {0}, "beat": {0}}


# -- building and installing ---------------------------------------------------------------------


def _pip_env() -> dict[str, str]:
    env = _clean_env()
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _clean_env() -> dict[str, str]:
    """The parent's environment without SPIS settings or anything that points at the checkout."""
    dropped = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SPIS_") and name not in dropped
    }


def _check(command: list[str], cwd: Path, timeout: float) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=_pip_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(command)}\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


def build_wheel(work: Path) -> Path:
    """`pip wheel` of a copy of the shipped files, so that the build leaves the checkout alone."""
    source, dist = work / "source", work / "dist"
    for name in SHIPPED:
        origin = REPO_ROOT / name
        if origin.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            source.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist)]
    _check([*pip_wheel, str(source)], cwd=work, timeout=BUILD_TIMEOUT_S)
    [wheel] = dist.glob("spis-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> Path:
    """A new virtual environment holding the wheel and its dependencies; its `bin` folder."""
    _check([sys.executable, "-m", "venv", str(venv)], cwd=venv.parent, timeout=BUILD_TIMEOUT_S)
    python = venv / "bin" / "python"
    # --no-compile: modules are compiled when first imported, which is all the test needs.
    pip_install = [str(python), "-m", "pip", "install", "--quiet", "--no-compile", str(wheel)]
    _check(pip_install, cwd=venv.parent, timeout=INSTALL_TIMEOUT_S)
    return venv / "bin"


# -- the deployment ------------------------------------------------------------------------------


@dataclass
class Deployment:
    bin: Path
    cwd: Path
    env: dict[str, str]
    base_url: str
    port: int

    def spis(self, *args: str) -> Any:
        """Run a one-off `spis` command and return its JSON result."""
        result = subprocess.run(
            [str(self.bin / "spis"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, f"spis {' '.join(args)}: {result.stderr[-3000:]}"
        return json.loads(result.stdout) if result.stdout.strip() else None

    @contextmanager
    def process(self, *args: str) -> Iterator[Process]:
        log = self.cwd / f"{args[0]}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen(
                [str(self.bin / "spis"), *args],
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: pool children are found too
            )
            running = Process(args[0], popen, log)
            try:
                yield running
            finally:
                running.stop()


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    exit_code: int | None = None

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return f"--- {self.name} ---\n{self.log.read_text(errors='replace')[-4000:]}"

    def stop(self) -> None:
        """SIGTERM, as an orchestrator stops a container; SIGKILL the group only if it hangs."""
        if self.exit_code is not None:
            return
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.exit_code = self.popen.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.exit_code = self.popen.wait()
            raise AssertionError(f"{self.name} ignored SIGTERM\n{self.output()}") from None

    def group_is_gone(self) -> bool:
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return True
        return False


def wait_for(what: str, check: Callable[[], Any], processes: list[Process]) -> Any:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for process in processes:
            assert process.alive(), (
                f"{process.name} exited while waiting for {what}\n{process.output()}"
            )
        found = check()
        if found:
            return found
        time.sleep(0.3)
    logs = "\n".join(process.output() for process in processes)
    raise AssertionError(f"timed out waiting for {what}\n{logs}")


def deployment_env(database_url: str, port: int, var_dir: Path, queue: str) -> dict[str, str]:
    env = _clean_env()
    env.update(
        {
            "SPIS_ENVIRONMENT": "production",
            "SPIS_DATABASE_URL": database_url,
            "SPIS_BROKER_URL": BROKER_URL,
            "SPIS_QUEUE": queue,
            "SPIS_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "SPIS_VAR_DIR": str(var_dir),  # does not exist yet: the commands make what they need
            "SPIS_TRANSIT_KEYS_DIR": str(var_dir / "keys"),
            "SPIS_TOKEN_SECRET": secrets.token_urlsafe(48),
            "SPIS_BLIND_INDEX_KEY": secrets.token_urlsafe(48),
            "SPIS_KEK": secrets.token_urlsafe(48),
            "SPIS_RELAY_INTERVAL_S": "1",
        }
    )
    return env


def register(deployment: Deployment, kind: OrgKind, org_args: list[str]) -> TestSystem:
    """`spis org add` and `spis client add --jwks FILE`, as an operator registers a system."""
    org = deployment.spis("org", "add", kind.value, *org_args)
    key, kid = new_key("ES384"), f"{kind.value}-{secrets.token_hex(4)}"
    jwks_file = deployment.cwd / f"{kid}.jwks.json"
    jwks_file.write_text(json.dumps(public_jwks(key, kid, "ES384")))
    client = deployment.spis("client", "add", "--org", org["id"], "--jwks", str(jwks_file))
    return TestSystem(
        org["id"], client["client_id"], kind, org["ods_code"], key, kid, "ES384", client["scopes"]
    )


# -- the test ------------------------------------------------------------------------------------


def test_a_wheel_installed_in_a_new_venv_migrates_serves_and_routes_on_postgres_and_redis(
    tmp_path: Path,
) -> None:
    started = time.monotonic()
    wheel = build_wheel(tmp_path / "build")
    built = time.monotonic()
    bin_dir = install(wheel, tmp_path / "venv")
    print(f"wheel built in {built - started:.0f} s, installed in {time.monotonic() - built:.0f} s")
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    queue = f"spis-install-{secrets.token_hex(4)}"
    with new_database("spis_install") as database_url, ExitStack() as stack:
        port = free_port()
        env = deployment_env(database_url, port, run_dir / "var", queue)
        deployment = Deployment(bin_dir, run_dir, env, f"http://127.0.0.1:{port}", port)
        try:
            check_the_deployment(deployment, stack)
        finally:
            stack.close()
            _drop_queue(queue)


def check_the_deployment(deployment: Deployment, stack: ExitStack) -> None:
    assert deployment.spis("migrate") == {"migrated": True}
    keys = deployment.spis("transit-keys", "ensure")
    assert len(keys["public_jwks"]["keys"]) == 3
    practice = register(
        deployment, OrgKind.PRACTICE, ["--name", "Acceptance Practice", "--ods", "A81001"]
    )
    timebank = register(
        deployment,
        OrgKind.TIMEBANK,
        ["--name", "Acceptance Time Bank", "--catchment", "SE6", "--offers", "befriending", "--capacity", "2"],
    )  # fmt: skip

    server = stack.enter_context(
        deployment.process("serve", "--host", "127.0.0.1", "--port", str(deployment.port))
    )
    worker = stack.enter_context(deployment.process("worker"))
    beat = stack.enter_context(deployment.process("beat"))
    everyone = [server, worker, beat]

    base = deployment.base_url
    wait_for("GET /healthz", lambda: _status(f"{base}/healthz") == 200, everyone)
    ready = httpx.get(f"{base}/readyz", timeout=10)
    assert (ready.status_code, ready.json()["failed"]) == (200, []), ready.text
    assert deployment.spis("health", "api", "--url", f"{base}/readyz")["status"] == "ready"
    check_the_web_files(base)

    referral_task = send_referral(base, practice)
    routed = wait_for("the worker to route the referral", lambda: inbox(base, timebank), everyone)
    assert [task["partOf"][0]["reference"] for task in routed] == [referral_task]

    relayed = "Task spis.relay_jobs["
    wait_for(
        "beat's relay to run on the worker", lambda: relayed in worker.log.read_text(), everyone
    )
    assert deployment.spis("health", "worker")["ok"] is True
    assert deployment.spis("health", "beat")["ok"] is True

    for process in (beat, worker, server):  # the order an operator would stop them in
        process.stop()
        assert process.exit_code in CLEAN_EXIT[process.name], process.output()
        assert process.group_is_gone(), f"{process.name} left processes behind"
    assert "Finished server process" in server.log.read_text(), server.output()
    for process in everyone:
        assert "Traceback" not in process.log.read_text(), process.output()


def check_the_web_files(base_url: str) -> None:
    """The web workspace's templates and static files are package data: in the wheel too."""
    signin = httpx.get(f"{base_url}/signin", timeout=10)
    assert signin.status_code == 200, signin.text[-2000:]
    assert 'name="csrf_token"' in signin.text
    for path, media_type in (("spis.css", "text/css"), ("htmx.min.js", "text/javascript")):
        static = httpx.get(f"{base_url}/static/{path}", timeout=10)
        assert static.status_code == 200, path
        assert static.headers["content-type"].startswith(media_type)


def send_referral(base_url: str, practice: TestSystem) -> str:
    """POST a referral transaction; the referral Task SPIS opened for it."""
    headers = {"Authorization": f"Bearer {access_token(base_url, practice)}", **FHIR_JSON}
    bundle = referral_bundle(practice.org_id)
    sent = httpx.post(f"{base_url}/fhir", json=bundle, headers=headers, timeout=30)
    assert sent.status_code == 200, sent.text
    service_request = next(
        entry["response"]["location"]
        for entry in sent.json()["entry"]
        if entry["response"]["location"].startswith("ServiceRequest/")
    )
    focus = "/".join(service_request.split("/")[:2])
    tasks = httpx.get(f"{base_url}/fhir/Task", params={"focus": focus}, headers=headers, timeout=30)
    [task] = [entry["resource"] for entry in tasks.json()["entry"]]
    return f"Task/{task['id']}"


def inbox(base_url: str, timebank: TestSystem) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {access_token(base_url, timebank)}"}
    params = {"owner": f"Organization/{timebank.org_id}", "status": "requested"}
    found = httpx.get(f"{base_url}/fhir/Task", params=params, headers=headers, timeout=30)
    assert found.status_code == 200, found.text
    return [entry["resource"] for entry in found.json().get("entry", [])]


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def _drop_queue(queue: str) -> None:
    """Beat may have queued a relay message after the worker stopped; leave Redis as found."""
    import redis

    client = redis.Redis.from_url(BROKER_URL)
    try:
        client.delete(queue)
    finally:
        client.close()
