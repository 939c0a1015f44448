"""`spis` commands, run in-process against the test database."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service import cli
from referral_service.auth.models import Client
from referral_service.config import get_settings
from referral_service.organisations.models import OrgKind
from tests.fixtures.spis_cli import InProcessSpis, in_process_spis
from tests.fixtures.systems import TestSystem, public_jwks, token_response


@pytest.fixture
def spis(
    pg_url: str,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[InProcessSpis]:
    """Run `spis ...`; returns (exit code, parsed JSON stdout or None, stderr)."""
    yield from in_process_spis(pg_url, tmp_path, monkeypatch, capsys)


def write_jwks(tmp_path: Path, document: Any) -> str:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(document))
    return str(path)


def client_count(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        return session.scalar(select(func.count()).select_from(Client)) or 0


def test_org_add_and_list(spis: Any) -> None:
    code, practice, err = spis(
        "org", "add", "practice", "--name", "Rushey Green", "--ods", "f84001"
    )
    assert (code, err) == (0, "")
    assert practice == {
        "id": practice["id"],
        "kind": "practice",
        "name": "Rushey Green",
        "ods_code": "F84001",
        "board_id": None,  # in no health board's area until placed in one
    }
    assert len(practice["id"]) == 36

    code, bank, _ = spis(
        "org",
        "add",
        "timebank",
        "--name",
        "Rushey Green Time Bank",
        "--catchment",
        "se6, SE13",
        "--offers",
        "befriending,gardening",
        "--capacity",
        "4",
    )
    assert code == 0
    assert bank["ods_code"] is None
    assert (bank["catchment"], bank["offers"], bank["capacity"]) == (
        ["SE13", "SE6"],
        ["befriending", "gardening"],
        4,
    )

    code, _, err = spis("org", "add", "timebank", "--name", "No catchment")
    assert code == 1
    assert "needs --catchment, --offers and --capacity" in err

    code, listed, _ = spis("org", "list")
    assert code == 0
    assert [org["id"] for org in listed] == [practice["id"], bank["id"]]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("org", "add", "practice", "--name", "No ODS"), "must be registered with its ODS code"),
        (("org", "add", "practice", "--name", "X", "--ods", "not valid!"), "ODS code must be"),
        (("org", "add", "healthboard", "--name", " "), "needs a name"),
    ],
)
def test_org_add_errors(spis: Any, argv: tuple[str, ...], message: str) -> None:
    code, out, err = spis(*argv)
    assert code == 1
    assert out is None
    assert err.startswith("spis: error: ")
    assert message in err
    assert err.count("\n") == 1


def test_duplicate_ods_refused(spis: Any) -> None:
    spis("org", "add", "practice", "--name", "A", "--ods", "F84001")
    code, _, err = spis("org", "add", "practice", "--name", "B", "--ods", "F84001")
    assert code == 1
    assert "already registered" in err


def test_client_add_then_token(
    spis: Any, tmp_path: Path, client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    """What an operator does for a new practice system, end to end."""
    _, org, _ = spis("org", "add", "practice", "--name", "Rushey Green", "--ods", "F84001")
    key = ECKey.generate_key("P-384")
    jwks = write_jwks(tmp_path, public_jwks(key, "gp-1", "ES384"))

    code, registered, err = spis(
        "client",
        "add",
        "--org",
        org["id"],
        "--jwks",
        jwks,
        "--scopes",
        "system/Task.rs system/Patient.read",
    )
    assert (code, err) == (0, "")
    assert registered == {
        "client_id": registered["client_id"],
        "org_id": org["id"],
        "scopes": "system/Patient.rs system/Task.rs",  # ceiling order
        "token_url": "http://127.0.0.1:8000/auth/token",
    }

    system = TestSystem(
        org["id"],
        registered["client_id"],
        OrgKind.PRACTICE,
        "F84001",
        key,
        "gp-1",
        "ES384",
        registered["scopes"],
    )
    response = token_response(client, system)
    assert response.status_code == 200
    assert response.json()["scope"] == registered["scopes"]


def test_client_add_with_jwks_url_gets_the_ceiling(spis: Any) -> None:
    _, org, _ = spis("org", "add", "healthboard", "--name", "SEL ICB", "--ods", "QKK")
    code, registered, _ = spis(
        "client", "add", "--org", org["id"], "--jwks-url", "https://board.example/jwks"
    )
    assert code == 0
    assert registered["scopes"] == (
        "system/Measure.rs system/MeasureReport.rs system/Organization.rs"
    )


def test_client_add_private_key_refused(
    spis: Any, tmp_path: Path, session_factory: sessionmaker[Session]
) -> None:
    _, org, _ = spis(
        "org",
        "add",
        "timebank",
        "--name",
        "Bank",
        "--catchment",
        "SE6",
        "--offers",
        "music",
        "--capacity",
        "1",
    )
    leaked = {"keys": [{**ECKey.generate_key("P-384").as_dict(private=True), "kid": "k"}]}
    code, out, err = spis(
        "client", "add", "--org", org["id"], "--jwks", write_jwks(tmp_path, leaked)
    )
    assert code == 1
    assert out is None
    assert "private key material" in err
    assert leaked["keys"][0]["d"] not in err  # never echo key material
    assert client_count(session_factory) == 0


@pytest.mark.parametrize("problem", ["missing-file", "not-json", "unknown-org", "beyond-ceiling"])
def test_client_add_errors(spis: Any, tmp_path: Path, problem: str) -> None:
    _, org, _ = spis("org", "add", "healthboard", "--name", "SEL ICB")
    jwks = write_jwks(tmp_path, public_jwks(ECKey.generate_key("P-384"), "k", "ES384"))
    argv = ["client", "add", "--org", org["id"], "--jwks", jwks]
    expected = {
        "missing-file": "cannot read",
        "not-json": "is not JSON",
        "unknown-org": "No organisation",
        "beyond-ceiling": "beyond what a healthboard may hold",
    }[problem]
    if problem == "missing-file":
        argv[-1] = str(tmp_path / "nope.json")
    elif problem == "not-json":
        Path(jwks).write_text("{not json")
    elif problem == "unknown-org":
        argv[3] = "00000000-0000-0000-0000-000000000000"
    else:
        argv += ["--scopes", "system/Patient.rs"]
    code, _, err = spis(*argv)
    assert code == 1
    assert expected in err


def test_client_add_needs_exactly_one_key_source(spis: Any) -> None:
    with pytest.raises(SystemExit) as exited:
        spis("client", "add", "--org", "x", "--jwks", "a.json", "--jwks-url", "https://x.example/j")
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        spis("client", "add", "--org", "x")


def test_unreachable_database_is_one_line(spis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPIS_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    get_settings.cache_clear()
    code, _, err = spis("org", "list")
    assert code == 1
    assert err.startswith(
        'spis: error: cannot connect to PostgreSQL database "none" on 127.0.0.1:1 as user '
        '"postgres": the connection was refused'
    )
    assert err.count("\n") == 1


def test_migrate_runs_on_an_empty_sqlite_database(
    spis: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPIS_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    get_settings.cache_clear()
    code, out, err = spis("migrate")
    assert (code, out) == (0, {"migrated": True}), err


def test_every_command_is_registered() -> None:
    parser = cli.build_parser()
    for argv in (["serve", "--port", "9000", "--workers", "2"], ["migrate"], ["org", "list"]):
        args = parser.parse_args(argv)
        assert callable(args.handler)
    serve = parser.parse_args(["serve", "--port", "9000", "--workers", "2"])
    assert (serve.host, serve.port, serve.workers) == ("127.0.0.1", 9000, 2)


def test_client_list_and_deactivate(spis: Any, tmp_path: Path, client: TestClient) -> None:
    _, org, _ = spis("org", "add", "practice", "--name", "Practice", "--ods", "F84077")
    key = ECKey.generate_key("P-384", private=True)
    jwks = {"keys": [key.as_dict(private=False, kid="k1", alg="ES384", use="sig")]}
    _, registered, _ = spis(
        "client", "add", "--org", org["id"], "--jwks", write_jwks(tmp_path, jwks)
    )

    code, listed, _ = spis("client", "list", "--org", org["id"])
    assert code == 0
    assert [(c["client_id"], c["active"], c["keys"]) for c in listed] == [
        (registered["client_id"], True, "jwks")
    ]

    code, deactivated, _ = spis("client", "deactivate", "--client", registered["client_id"])
    assert (code, deactivated["active"]) == (0, False)
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES384", "kid": "k1", "typ": "JWT"},
        {
            "iss": registered["client_id"],
            "sub": registered["client_id"],
            "aud": "http://testserver/auth/token",
            "exp": now + 120,
            "iat": now,
            "jti": str(uuid.uuid4()),
        },
        key,
        algorithms=["ES384"],
    )
    refused = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Task.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
    )
    assert refused.status_code == 401
    assert refused.json()["error"] == "invalid_client"
    code, _, err = spis("client", "deactivate", "--client", "no-such-client")
    assert code == 1
    assert "No client with this id" in err


def test_timebank_set_changes_only_what_is_given(spis: Any) -> None:
    _, bank, _ = spis(
        "org",
        "add",
        "timebank",
        "--name",
        "Bank",
        "--catchment",
        "SE6",
        "--offers",
        "music",
        "--capacity",
        "2",
    )
    code, changed, _ = spis("timebank", "set", "--org", bank["id"], "--capacity", "7")
    assert code == 0
    assert (changed["catchment"], changed["offers"], changed["capacity"]) == (["SE6"], ["music"], 7)
    code, _, err = spis("timebank", "set", "--org", bank["id"], "--offers", "juggling")
    assert code == 1
    assert "Offers must be some of" in err
    code, _, err = spis("timebank", "set", "--org", "nope", "--capacity", "1")
    assert code == 1
    assert "no time bank directory profile" in err
