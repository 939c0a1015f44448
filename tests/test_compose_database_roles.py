"""docker-compose.yml: api, worker and beat connect as a role that does not own the tables, so
they cannot disable the audit trail's append-only triggers; only the one-shot migration connects
as the owner, and it creates and grants that role (issue 7 item 16). Checked on the file as
docker-compose resolves it (anchors and merges applied)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("api", "worker", "beat")


def resolved_environment() -> dict[str, dict[str, str]]:
    """`docker-compose config`, as {service: {variable: value}} (its output is normalised YAML:
    services at two spaces, environment entries at six)."""
    output = subprocess.run(
        ["docker-compose", "config"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    services: dict[str, dict[str, str]] = {}
    section, current, in_env = "", "", False
    for line in output.splitlines():
        if re.match(r"^\S", line):
            section = line.rstrip(":")
        elif section == "services" and (name := re.match(r"^  ([\w-]+):$", line)):
            current, in_env = name[1], False
            services[current] = {}
        elif section == "services" and current:
            if re.match(r"^    \S", line):
                in_env = line.strip() == "environment:"
            elif in_env and (pair := re.match(r"^      (\w+): (.*)$", line)):
                services[current][pair[1]] = pair[2].strip("'\"")
    return services


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose is not installed"
)
def test_the_application_does_not_connect_as_the_table_owner() -> None:
    env = resolved_environment()
    owner = env["postgres"]["POSTGRES_USER"]
    migrate = env["migrate"]
    assert make_url(migrate["SPIS_DATABASE_URL"]).username == owner
    app_role = migrate["SPIS_APP_DATABASE_ROLE"]
    assert app_role != owner
    assert migrate["SPIS_APP_DATABASE_PASSWORD"]
    for service in APP_SERVICES:
        url = make_url(env[service]["SPIS_DATABASE_URL"])
        assert url.username == app_role, service
        assert url.password == migrate["SPIS_APP_DATABASE_PASSWORD"], service
        assert "SPIS_APP_DATABASE_PASSWORD" not in env[service], service
