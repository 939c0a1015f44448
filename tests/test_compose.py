"""docker-compose.yml stays valid (checked with Debian's docker-compose when it is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_compose_file_is_valid() -> None:
    result = subprocess.run(
        ["docker-compose", "config", "-q"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_compose_runs_the_production_shape() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    for service in ("postgres:", "redis:", "migrate:", "transit-keys:", "api:", "worker:", "beat:"):
        assert f"\n  {service}" in text, service
    assert "SPIS_ENVIRONMENT: production" in text
