"""Operator errors say what to do: which setting, which database server and why, which port.

Each runs `spis` as an operator does (a subprocess, settings from the environment only).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from referral_service.cli import build_parser
from referral_service.cli_errors import public_url_warning
from referral_service.config import Settings
from tests.conftest import ADMIN_URL
from tests.embedded.test_embedded_demo import free_port

PASSWORD = "s3cret-Pa55word"


def spis(tmp_path: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SPIS_")}
    environment.update({"SPIS_VAR_DIR": str(tmp_path / "var"), **env})
    return subprocess.run(
        [sys.executable, "-m", "referral_service.cli", *argv],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.strip().splitlines()  # no traceback
    assert line.startswith("spis: error: ")
    return line


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("SPIS_ENVIRONMENT", "prod", "'development', 'test' or 'production'"),
        ("SPIS_BROKER_SLA", "five", "valid integer"),
        ("SPIS_MAX_BODY_BYTES", "1MB", "valid integer"),
        ("SPIS_DATABASE_URL", "mysql://u@h/db", "PostgreSQL (postgresql://"),
    ],
)
def test_a_setting_error_names_its_variable(
    tmp_path: Path, variable: str, value: str, says: str
) -> None:
    line = one_error_line(spis(tmp_path, "org", "list", **{variable: value}))
    assert f"configuration: {variable}: " in line
    assert says in line


def test_a_url_without_a_scheme_is_refused_without_being_quoted(tmp_path: Path) -> None:
    line = one_error_line(spis(tmp_path, "org", "list", SPIS_DATABASE_URL=f"spis:{PASSWORD}@db/x"))
    assert "SPIS_DATABASE_URL" in line
    assert "not a URL" in line
    assert PASSWORD not in line


def pg(database: str, *, host: str = "127.0.0.1", port: int = 5432, user: str = "postgres") -> str:
    return f"postgresql://{user}:{PASSWORD}@{host}:{port}/{database}"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (pg("spis", port=free_port()), "the connection was refused"),
        (pg("spis_no_such_database"), "that database does not exist on the server"),
        (pg("spis", host="no-such-host.invalid"), "the host name is unknown"),
    ],
)
def test_a_database_error_names_server_and_database_and_says_why(
    tmp_path: Path, url: str, says: str
) -> None:
    line = one_error_line(spis(tmp_path, "org", "list", SPIS_DATABASE_URL=url))
    parsed = make_url(url)
    assert f'PostgreSQL database "{parsed.database}" on {parsed.host}:{parsed.port}' in line
    assert says in line
    assert PASSWORD not in line


def test_an_unmigrated_database_says_run_migrate(tmp_path: Path) -> None:
    url = make_url(ADMIN_URL).render_as_string(hide_password=False)  # the server's own database
    line = one_error_line(spis(tmp_path, "org", "list", SPIS_DATABASE_URL=url))
    assert "has no SPIS tables yet: run `spis migrate`" in line


@pytest.fixture
def postgres_scheme_url(pg_url: str) -> str:
    url = make_url(pg_url)
    return f"postgres://{url.username}@{url.host}:{url.port}/{url.database}"


def test_a_postgres_scheme_url_is_accepted(tmp_path: Path, postgres_scheme_url: str) -> None:
    done = spis(tmp_path, "org", "list", SPIS_DATABASE_URL=postgres_scheme_url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("[")


@pytest.mark.parametrize(
    ("argv", "how"),
    [
        (["serve"], "`spis serve --port "),
        (["demo", "--no-serve"], "`make demo PORT="),
    ],
)
def test_a_busy_port_says_how_to_choose_another(tmp_path: Path, argv: list[str], how: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = one_error_line(spis(tmp_path, *argv, "--port", str(port)))
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert how in line
    assert not (tmp_path / "var" / "logs").exists()  # refused before starting anything


def all_parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from all_parsers(child)


def test_every_option_has_help_and_shows_its_default() -> None:
    for parser in all_parsers(build_parser()):
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            assert action.help, f"{parser.prog} {action.dest} has no help"
            optional_value = action.option_strings and not action.required and action.nargs != 0
            if optional_value and action.default is None:  # conditionally required, or a default
                assert "default" in action.help or "required" in action.help, (
                    f"{parser.prog} {action.dest}: say what happens without it"
                )
            if action.default not in (None, False):
                assert f"(default: {action.default})" in " ".join(text.split()), parser.prog


def test_serve_help_shows_defaults(tmp_path: Path) -> None:
    done = spis(tmp_path, "serve", "--help")
    assert done.returncode == 0
    flat = " ".join(done.stdout.split())
    assert "--port PORT port to listen on" in flat
    assert "(default: 8000)" in flat
    assert "(default: 127.0.0.1)" in flat


def test_a_var_dir_that_cannot_be_made_is_one_line_naming_the_setting(
    tmp_path: Path,
) -> None:
    in_the_way = tmp_path / "not-a-folder"
    in_the_way.write_text("a file where SPIS_VAR_DIR should be")
    var_dir = in_the_way / "var"
    line = one_error_line(spis(tmp_path, "migrate", SPIS_VAR_DIR=str(var_dir)))
    assert line == (
        f"spis: error: {var_dir / 'secrets'}: cannot create the folder for local secrets: "
        f"Not a directory (SPIS_VAR_DIR is {var_dir}: set it to a folder SPIS can write)"
    )


def test_a_sqlite_database_folder_that_cannot_be_made_is_named(tmp_path: Path) -> None:
    in_the_way = tmp_path / "not-a-folder"
    in_the_way.write_text("a file where the database's folder should be")
    url = f"sqlite:///{in_the_way}/spis.sqlite3"
    line = one_error_line(spis(tmp_path, "migrate", SPIS_DATABASE_URL=url))
    assert line == (
        f"spis: error: {in_the_way}: cannot create the SQLite database's folder: File exists"
    )


@pytest.mark.parametrize(
    ("environment", "port", "warns"),
    [
        ({}, 8000, False),
        ({}, 18480, True),
        ({"public_base_url": "https://spis.example.net"}, 18480, False),  # a proxy in front
    ],
)
def test_serving_on_another_port_than_the_public_url_warns(
    environment: dict[str, str], port: int, warns: bool
) -> None:
    warning = public_url_warning(Settings(**environment), port)
    if not warns:
        assert warning is None
        return
    assert warning == (
        "SPIS_PUBLIC_BASE_URL is not set, so clients must name http://127.0.0.1:8000/auth/token "
        f"as their token audience; serving on port {port}, set "
        f"SPIS_PUBLIC_BASE_URL=http://<this host>:{port}"
    )
