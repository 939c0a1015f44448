"""Placing practices and time banks in a health board's area: `spis org add --board`,
`spis org set-board`, the refusals, and Organization.partOf over FHIR."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from referral_service.db import unit_of_work
from referral_service.organisations import repository, service
from referral_service.organisations.models import OrgKind
from tests.fixtures.spis_cli import InProcessSpis, in_process_spis


@pytest.fixture
def spis(
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[InProcessSpis]:
    yield from in_process_spis(pg_url, tmp_path, monkeypatch, capsys)


def test_org_add_with_board_and_set_board_later(
    spis: Any, session_factory: sessionmaker[Session]
) -> None:
    code, board, _ = spis(
        "org", "add", "healthboard", "--name", "South East London", "--ods", "QKK"
    )
    assert code == 0
    assert board["board_id"] is None
    code, practice, err = spis(
        "org",
        "add",
        "practice",
        "--name",
        "Hilly Fields",
        "--ods",
        "G85001",
        "--board",
        board["id"],
    )
    assert (code, err) == (0, "")
    assert practice["board_id"] == board["id"]

    code, bank, _ = spis(
        "org", "add", "timebank", "--name", "Catford Time Bank", "--catchment", "SE6",
        "--offers", "befriending", "--capacity", "5",
    )  # fmt: skip
    assert code == 0
    assert bank["board_id"] is None
    code, moved, err = spis("org", "set-board", "--org", bank["id"], "--board", board["id"])
    assert (code, err, moved["board_id"]) == (0, "", board["id"])
    with unit_of_work(session_factory) as session:
        practices = repository.in_board_area(session, board["id"], OrgKind.PRACTICE)
        banks = repository.in_board_area(session, board["id"], OrgKind.TIMEBANK)
        assert [p.id for p in practices] == [practice["id"]]
        assert [b.id for b in banks] == [bank["id"]]
        fhir = service.as_fhir(session, practice["id"])
        assert fhir["partOf"] == {"reference": f"Organization/{board['id']}"}

    code, out, err = spis("org", "set-board", "--org", bank["id"], "--none")
    assert (code, err, out["board_id"]) == (0, "", None)
    with unit_of_work(session_factory) as session:
        assert "partOf" not in service.as_fhir(session, bank["id"])


def test_board_refusals_change_nothing(spis: Any, session_factory: sessionmaker[Session]) -> None:
    _, board, _ = spis("org", "add", "healthboard", "--name", "A board", "--ods", "QKL")
    _, practice, _ = spis("org", "add", "practice", "--name", "P", "--ods", "G85002")

    # A practice is not a board; a board is not placed in a board; an unknown id is refused.
    code, out, err = spis("org", "set-board", "--org", board["id"], "--board", practice["id"])
    assert code != 0
    assert out is None
    assert "health board" in err
    _, other, _ = spis("org", "add", "healthboard", "--name", "B board", "--ods", "QKM")
    code, out, err = spis("org", "set-board", "--org", board["id"], "--board", other["id"])
    assert code != 0
    assert "Only a practice or a time bank" in err
    code, out, err = spis("org", "set-board", "--org", "no-such-org", "--board", board["id"])
    assert code != 0
    assert "No organisation" in err
    code, out, err = spis(
        "org", "add", "practice", "--name", "Q", "--ods", "G85003", "--board", "nope"
    )
    assert code != 0
    assert "--board" in err
    with unit_of_work(session_factory) as session:
        assert repository.by_ods(session, "G85003") is None
        unchanged = repository.get(session, practice["id"])
        assert unchanged is not None
        assert unchanged.board_id is None
