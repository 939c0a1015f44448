"""docker-compose.yml stays valid (checked with Debian's docker-compose, which .ci/run installs)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_compose_file_is_valid() -> None:
    if shutil.which("docker-compose") is None:
        pytest.fail(
            "docker-compose is not installed, so docker-compose.yml cannot be checked: "
            "install it (`apt-get install docker-compose`, as .ci/run does)"
        )
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_the_production_shape() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for service in ("postgres:", "redis:", "migrate:", "transit-keys:", "api:", "worker:", "beat:"):
        assert f"\n  {service}" in text, service
    assert "SPIS_ENVIRONMENT: production" in text


def _compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return document


@pytest.mark.parametrize("service", ["api", "worker", "beat"])
def test_long_running_services_have_real_health_checks(service: str) -> None:
    """Each probe is a `spis health` subcommand (tests/health/test_health_probes.py runs them)."""
    check = _compose()["services"][service]["healthcheck"]
    assert check["test"][:4] == ["CMD", "spis", "health", service]
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)
    if service == "api":
        assert check["test"][4:] == ["--url", "http://127.0.0.1:8000/readyz"]


def test_the_keys_volume_is_created_in_the_image_for_the_user_spis_runs_as() -> None:
    """A new named volume copies the owner of the image folder it is mounted on."""
    services = _compose()["services"]
    for name in ("transit-keys", "api", "worker"):
        assert "transit-keys:/app/var/keys" in services[name]["volumes"], name
        assert services[name]["environment"]["SPIS_TRANSIT_KEYS_DIR"] == "/app/var/keys"
    dockerfile = (ROOT / "Dockerfile").read_text()
    before_user, _, after_user = dockerfile.partition("\nUSER spis\n")
    assert after_user, "the image runs as spis"
    assert "install -d -o spis -g spis -m 0700 /app/var/keys" in before_user
    assert "install -d -o spis -g spis -m 0750 /app/var" in before_user


def test_the_image_installs_the_wheel_built_from_what_the_wheel_test_ships() -> None:
    """The wheel acceptance test (tests/install) builds from the files the image's build stage
    copies, and the image's final stage holds the installed wheel only: no source tree in /app
    that `python -m celery -A workers.app` would import instead."""
    from tests.install.test_install_wheel import SHIPPED

    dockerfile = (ROOT / "Dockerfile").read_text()
    build, _, final = dockerfile.partition("\nFROM python:3.11-slim\n")
    assert final, "a build stage and a final stage"
    copied = [
        source
        for line in build.splitlines()
        if line.startswith("COPY ")
        for source in line.split()[1:-1]  # the last word is the destination
    ]
    assert sorted(copied) == sorted(SHIPPED)
    assert [line for line in final.splitlines() if line.startswith("COPY ")] == [
        "COPY --from=build /wheels /wheels"
    ]
    assert "pip install --no-cache-dir /wheels/*.whl" in final
