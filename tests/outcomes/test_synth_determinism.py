"""`spis synth` with the same seed and end time gives the same data, resource ids and histories
included (organisation ids apart: they are registered afresh); the same seed cannot be loaded
into the same board twice; another seed gives other data."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.demo.synth import Options, run
from referral_service.errors import Invalid
from referral_service.ledger.models import Exchange, LedgerEntry, Member
from referral_service.organisations.models import Organisation
from referral_service.store.models import (
    ResourceGrant,
    ResourceVersion,
    SearchIndex,
    StoredResource,
)
from tests.conftest import TEST_KEK, _truncate_all

END = datetime(2026, 5, 15, 12, 0, tzinfo=UTC)


def _options(seed: int) -> Options:
    return Options(
        referrals=40,
        practices=2,
        timebanks=2,
        months=6,
        seed=seed,
        observations_per_referral=15.0,
        end=END,
    )


def _settings(pg_url: str, tmp_path: Path) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_url,
        var_dir=tmp_path / "var",
        public_base_url="http://testserver",
        kek=TEST_KEK,
    )


def _snapshot(sessions: sessionmaker[Session]) -> dict[str, object]:
    """Everything loaded, with organisation ids replaced by their ODS code or name."""
    with sessions() as session:
        labels = {o.id: o.ods_code or o.name for o in session.scalars(select(Organisation))}

        def plain(value: object) -> str:
            found = value.decode() if isinstance(value, bytes) else str(value)
            for org_id, label in labels.items():
                found = found.replace(org_id, label)
            return found

        def version(
            rid: str, number: int, updated: datetime, org: str, body: bytes
        ) -> tuple[object, ...]:
            digest = hashlib.sha256(plain(body).encode()).hexdigest()
            return (rid, number, updated.isoformat(), plain(org), digest)

        versions = sorted(
            version(v.resource_id, v.version_id, v.last_updated, v.org_id, v.body)
            for v in session.scalars(select(ResourceVersion))
        ) + sorted(  # the current versions: the resource rows
            version(r.id, r.version_id, r.last_updated, r.org_id, r.body)
            for r in session.scalars(select(StoredResource))
        )
        index = sorted(
            (i.resource_id, i.name, plain(i.system), plain(i.value))
            for i in session.scalars(select(SearchIndex))
            if i.name != "identifier"  # NHS numbers: a blind index keyed per tenant (its id)
        )
        grants = sorted(
            (g.resource_id, plain(g.org_id)) for g in session.scalars(select(ResourceGrant))
        )
        members = sorted(
            (m.id, plain(m.org_id), m.alias, m.patient_id) for m in session.scalars(select(Member))
        )
        exchanges = sorted(
            (e.id, e.giver_id, e.receiver_id, e.minutes, e.performed_on)
            for e in session.scalars(select(Exchange))
        )
        entries = sorted(
            (e.id, e.member_id, e.minutes, e.procedure_id)
            for e in session.scalars(select(LedgerEntry))
        )
    return {
        "versions": versions,
        "index": index,
        "grants": grants,
        "members": members,
        "exchanges": exchanges,
        "entries": entries,
    }


def test_the_same_seed_gives_the_same_data(
    pg_url: str, pg_engine: Engine, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = _settings(pg_url, tmp_path)
    run(settings, _options(5), io.StringIO())
    first = _snapshot(session_factory)
    with pytest.raises(Invalid, match="seed 5 was loaded into board QS0005's area before"):
        run(settings, _options(5), io.StringIO())

    _truncate_all(pg_engine)
    run(settings, _options(5), io.StringIO())
    assert _snapshot(session_factory) == first
    assert len(first["versions"]) > 1000  # type: ignore[arg-type]

    _truncate_all(pg_engine)
    run(settings, _options(6), io.StringIO())
    other = _snapshot(session_factory)
    assert not set(other["versions"]) & set(first["versions"])  # type: ignore[call-overload]
