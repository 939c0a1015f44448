"""`spis user add|list|disable|link`, in-process against the test database, and one operator
error as an operator sees it (a subprocess)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.db import unit_of_work
from referral_service.people import service
from tests.conftest import TEST_KEK
from tests.fixtures.spis_cli import (
    InProcessSpis,
    assert_one_line_error,
    in_process_spis,
    run_spis,
    spis_env,
)
from tests.people.conftest import PASSWORD, Orgs, audit_rows, token_of


@pytest.fixture
def spis(
    pg_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[InProcessSpis]:
    """Run `spis ...`; returns (exit code, parsed JSON stdout or None, stderr)."""
    yield from in_process_spis(
        pg_url,
        tmp_path,
        monkeypatch,
        capsys,
        SPIS_PUBLIC_BASE_URL="https://spis.example.org/",
    )


def test_user_add_list_link_disable(
    spis: Any, orgs: Orgs, session_factory: sessionmaker[Session], settings: Settings
) -> None:
    code, added, err = spis(
        "user", "add", "--org", orgs.timebank, "--email", "Ann@Example.org", "--role", "broker"
    )
    assert (code, err) == (0, "")
    assert set(added) == {"id", "email", "role", "org", "setup_url", "expires_at"}
    assert (added["email"], added["role"], added["org"]) == (
        "ann@example.org",
        "broker",
        orgs.timebank,
    )
    assert added["setup_url"].startswith("https://spis.example.org/setup/")
    first_token = token_of(added["setup_url"])

    code, listed, _ = spis("user", "list")
    assert code == 0
    [ann] = listed
    assert ann["id"] == added["id"]
    assert (ann["active"], ann["set_up"], ann["second_factor"]) == (True, False, False)
    assert not {"password_hash", "totp_secret", "totp_pending_secret"} & set(ann)
    assert spis("user", "list", "--org", orgs.practice)[1] == []

    code, relinked, _ = spis("user", "link", "--email", "ANN@example.org")
    assert code == 0
    assert relinked["setup_url"] != added["setup_url"]
    with unit_of_work(session_factory) as session:
        with pytest.raises(service.SetupLinkInvalid):
            service.setup_link_person(session, first_token)
        service.complete_setup(session, settings, token_of(relinked["setup_url"]), PASSWORD)
    assert spis("user", "list")[1][0]["set_up"] is True

    code, disabled, _ = spis("user", "disable", "--email", "ann@example.org")
    assert (code, disabled["active"]) == (0, False)
    assert disabled["disabled_at"] is not None
    details = [e.detail for e in audit_rows(session_factory, "person-account")]
    assert details == ["added as broker", "new set-up link issued", "disabled"]


def test_user_errors_are_one_line(spis: Any, orgs: Orgs) -> None:
    code, _, err = spis(
        "user", "add", "--org", orgs.practice, "--email", "ann@example.org", "--role", "broker"
    )
    assert code == 1
    assert err == (
        "spis: error: The broker role belongs to a time bank; this organisation is a GP practice\n"
    )
    assert spis("user", "disable", "--email", "nobody@example.org")[2] == (
        "spis: error: No person with this email address is registered\n"
    )
    spis("user", "add", "--org", orgs.practice, "--email", "ann@example.org", "--role", "practice")
    assert spis(
        "user", "add", "--org", orgs.practice, "--email", "ANN@example.org", "--role", "practice"
    )[2] == ("spis: error: A person with this email address already exists\n")


def test_an_unknown_role_is_refused_by_the_parser(spis: Any, orgs: Orgs) -> None:
    with pytest.raises(SystemExit) as exited:
        spis("user", "add", "--org", orgs.practice, "--email", "a@b.org", "--role", "admin")
    assert exited.value.code == 2


def test_as_an_operator_runs_it(pg_url: str, tmp_path: Path, orgs: Orgs) -> None:
    env = spis_env(tmp_path / "var", SPIS_DATABASE_URL=pg_url, SPIS_KEK=TEST_KEK)
    done = run_spis(
        ["user", "add", "--org", orgs.healthboard, "--email", "x@y.org", "--role", "analyst"],
        env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["role"] == "analyst"
    assert_one_line_error(
        run_spis(["user", "link", "--email", "nobody@y.org"], env, cwd=tmp_path),
        "No person with this email address is registered",
    )
