"""`spis audit anchor` and `spis audit verify --anchor` (issue 7 item 16): a head signed and kept
outside the database catches what the chain alone cannot: a chain rewritten from N onward with
fresh hashes, and rows cut off the end."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit import chain, repository, sealer, service
from referral_service.audit.cli import AuditCommandError, anchor_command, verify_command
from referral_service.audit.models import Action, Kind, Outcome
from referral_service.config import Settings
from tests.audit.conftest import AUDIT_TABLES, a_principal
from tests.conftest import TEST_KEK

EVENTS = 12


@pytest.fixture
def trail(session_factory: sessionmaker[Session]) -> None:
    for i in range(EVENTS):
        service.record_outcome_failure(
            session_factory,
            a_principal(),
            kind=Kind.READ,
            action=Action.READ,
            entities=[f"Patient/p-{i}"],
            outcome=Outcome.MINOR_FAILURE,
            detail=f"403 forbidden #{i}",
        )


def rewrite_from(engine: Engine, pos: int, detail: str) -> None:
    """What someone who can write the tables does: change the event at `pos`, then re-hash its
    chain row and every later one so that the chain links up again."""
    sealer.seal_all(engine)
    with Session(engine) as session:
        links = repository.links_after(session, 0, 10_000)
    prev = links[pos - 2].hash if pos > 1 else chain.GENESIS
    with engine.begin() as conn:
        for table in AUDIT_TABLES:
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        for link in links[pos - 1 :]:
            assert link.event is not None
            event = replace(link.event, detail=detail) if link.pos == pos else link.event
            digest = chain.link_hash(prev, link.pos, event)
            conn.execute(
                text("UPDATE audit_event SET detail = :d WHERE seq = :s"),
                {"d": event.detail, "s": link.event_seq},
            )
            conn.execute(
                text("UPDATE audit_chain SET prev_hash = :p, hash = :h WHERE pos = :pos"),
                {"p": prev, "h": digest, "pos": link.pos},
            )
            prev = digest
        for table in AUDIT_TABLES:
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))


def run_sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for table in AUDIT_TABLES:
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER ALL"))
        for sql in statements:
            conn.execute(text(sql))
        for table in AUDIT_TABLES:
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER ALL"))


@pytest.mark.usefixtures("trail")
def test_an_anchor_catches_a_rewrite_the_chain_alone_misses(
    settings: Settings, pg_engine: Engine, tmp_path: Path
) -> None:
    anchor_file = tmp_path / "anchor.json"
    written = anchor_command(settings, anchor_file)
    assert written["seq"] == EVENTS
    assert json.loads(anchor_file.read_text()) == written

    rewrite_from(pg_engine, 5, "nothing to see")

    assert verify_command(settings)["ok"] is True  # the chain alone is fooled
    result = verify_command(settings, anchor_file=anchor_file)
    assert result["ok"] is False
    assert result["first_bad_seq"] == EVENTS
    assert result["reason"] == "hash differs from the anchored head (chain rewritten)"
    assert result["anchor"] == {
        "seq": EVENTS,
        "hash": written["hash"],
        "anchored_at": written["anchored_at"],
    }


@pytest.mark.usefixtures("trail")
def test_an_anchor_catches_rows_cut_off_the_end(
    settings: Settings, pg_engine: Engine, tmp_path: Path
) -> None:
    anchor_file = tmp_path / "anchor.json"
    anchor_command(settings, anchor_file)
    # The newest chain rows and their events both: the chain rows alone would leave their
    # events unaccounted for, which the walk shows without an anchor.
    run_sql(
        pg_engine,
        f"DELETE FROM audit_chain WHERE pos > {EVENTS - 3}",
        f"DELETE FROM audit_event WHERE seq > {EVENTS - 3}",
    )

    assert verify_command(settings)["ok"] is True
    result = verify_command(settings, anchor_file=anchor_file)
    assert (result["ok"], result["first_bad_seq"]) == (False, EVENTS - 2)
    assert result["reason"] == f"rows from this seq to {EVENTS} were removed"


@pytest.mark.usefixtures("trail")
def test_rows_after_the_anchor_may_grow_and_earlier_edits_still_show(
    settings: Settings,
    session_factory: sessionmaker[Session],
    pg_engine: Engine,
    tmp_path: Path,
) -> None:
    anchor_file = tmp_path / "anchor.json"
    anchor_command(settings, anchor_file)
    service.record_outcome_failure(
        session_factory, a_principal(), kind=Kind.READ, action=Action.READ, detail="later"
    )
    assert verify_command(settings, anchor_file=anchor_file)["ok"] is True

    run_sql(pg_engine, "UPDATE audit_event SET detail = 'edited' WHERE seq = 3")
    result = verify_command(settings, anchor_file=anchor_file)
    assert (result["ok"], result["first_bad_seq"]) == (False, 3)


def _resign_payload(token: str, **changes: object) -> str:
    """Swap the signed content but keep the old signature (a forger without the key)."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims.update(changes)
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


@pytest.mark.usefixtures("trail")
def test_an_anchor_not_signed_by_spis_is_refused(
    settings: Settings, pg_engine: Engine, tmp_path: Path
) -> None:
    anchor_file = tmp_path / "anchor.json"
    written = anchor_command(settings, anchor_file)
    rewrite_from(pg_engine, 2, "rewritten")
    with Session(pg_engine) as session:
        new_head = repository.head(session)
    assert new_head is not None

    # A forger points the anchor at the rewritten head: the clear fields are not believed, and
    # a changed signed payload no longer verifies.
    anchor_file.write_text(json.dumps({**written, "hash": new_head.hash}))
    assert verify_command(settings, anchor_file=anchor_file)["ok"] is False
    anchor_file.write_text(
        json.dumps({**written, "jws": _resign_payload(written["jws"], hash=new_head.hash)})
    )
    with pytest.raises(AuditCommandError, match="signature does not verify"):
        verify_command(settings, anchor_file=anchor_file)
    other_keys = settings.model_copy(update={"transit_keys_dir": tmp_path / "other-keys"})
    anchor_command(other_keys, anchor_file)  # well-formed, but signed by a key SPIS lacks
    with pytest.raises(AuditCommandError, match="a key this SPIS does not hold"):
        verify_command(settings, anchor_file=anchor_file)
    anchor_file.write_text("{not json")
    with pytest.raises(AuditCommandError, match="is not JSON"):
        verify_command(settings, anchor_file=anchor_file)


@pytest.mark.usefixtures("trail")
def test_the_commands_as_an_operator_runs_them(
    settings: Settings, pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "SPIS_ENVIRONMENT": "test",
        "SPIS_DATABASE_URL": pg_url,
        "SPIS_VAR_DIR": str(settings.var_dir),
        "SPIS_KEK": TEST_KEK,
    }
    anchor_file = tmp_path / "kept-by-the-board.json"

    def spis(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "referral_service.cli", *argv],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    made = spis("audit", "anchor", "--out", str(anchor_file))
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["seq"] == EVENTS
    assert spis("audit", "verify", "--anchor", str(anchor_file)).returncode == 0

    rewrite_from(pg_engine, 7, "rewritten")
    assert spis("audit", "verify").returncode == 0
    caught = spis("audit", "verify", "--anchor", str(anchor_file))
    assert caught.returncode == 1
    assert (
        f"spis: error: the audit chain is broken at seq {EVENTS}: "
        "hash differs from the anchored head (chain rewritten)"
    ) in caught.stderr
    missing = spis("audit", "verify", "--anchor", str(tmp_path / "nope.json"))
    assert missing.returncode == 1
    assert "cannot read the anchor file" in missing.stderr
    assert "Traceback" not in missing.stderr
