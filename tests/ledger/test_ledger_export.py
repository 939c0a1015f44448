"""The ledger as CSV: the pure rendering (`ledger/export.py`), the rows the service streams in
ledger order, the download routes, and the export in the audit trail."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from referral_service.audit.models import AuditEvent
from referral_service.config import Settings
from referral_service.ledger import export, service
from referral_service.ledger.models import Exchange, Member
from tests.fixtures.systems import TestSystem
from tests.ledger.conftest import (
    add_member,
    context_of,
    end_membership,
    exchange,
    ledger_url,
    reverse,
)

RECORDED = datetime(2026, 11, 21, 9, 30, 15, 123456, tzinfo=UTC)


def _exchange(**fields: object) -> Exchange:
    values: dict[str, object] = {
        "id": "e1",
        "org_id": "tb",
        "giver_id": "m1",
        "receiver_id": "m2",
        "minutes": 90,
        "performed_on": date(2026, 11, 20),
        "category": "befriending",
        "created_at": RECORDED,
        "description": "Walk, then tea",
        **fields,
    }
    return Exchange(**values)


def test_exchanges_csv_is_a_header_and_one_line_per_exchange() -> None:
    original = _exchange()
    reversal = _exchange(
        id="e2", description=None, reverses_id="e1", reason="Entered twice", minutes=90
    )
    rows = [
        service.ExchangeRow(original, "Sam", "Ana", "e2"),
        service.ExchangeRow(reversal, "Sam", None, None),
    ]

    text = "".join(export.exchanges_csv(rows))

    assert text.split("\r\n") == [
        "date,giver,receiver,category,minutes,hours,description,exchange_id,giver_id,"
        "receiver_id,reverses,reversed_by,reason,recorded_at",
        '2026-11-20,Sam,Ana,befriending,90,1.50,"Walk, then tea",e1,m1,m2,,e2,,'
        "2026-11-21T09:30:15Z",
        "2026-11-20,Sam,,befriending,-90,-1.50,,e2,m1,m2,e1,,Entered twice,2026-11-21T09:30:15Z",
        "",
    ]


def test_members_csv_is_a_header_and_one_line_per_member() -> None:
    sam = Member(id="m1", org_id="tb", alias="Sam", joined_at=datetime(2026, 1, 5, 23, tzinfo=UTC))
    grace = Member(
        id="m2",
        org_id="tb",
        alias="Grace",
        joined_at=datetime(2026, 2, 1, tzinfo=UTC),
        referral_task_id="t1",
        ended_at=datetime(2026, 11, 2, 8, tzinfo=UTC),
    )
    rows = [
        service.MemberRow(sam, 20, 140, 120, 2, None),
        service.MemberRow(grace, -40, 20, 60, 1, 20 / 60),
    ]

    lines = "".join(export.members_csv(rows)).split("\r\n")

    assert lines == [
        "member_id,alias,referred,joined_on,ended_on,balance_minutes,balance_hours,"
        "given_minutes,given_hours,received_minutes,received_hours,partners,reciprocity",
        "m1,Sam,no,2026-01-05,,20,0.33,140,2.33,120,2.00,2,",
        "m2,Grace,yes,2026-02-01,2026-11-02,-40,-0.67,20,0.33,60,1.00,1,0.33",
        "",
    ]


@pytest.mark.parametrize(
    ("typed", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+44 20 7946", "'+44 20 7946"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("Tea = fine", "Tea = fine"),
        ("Sam", "Sam"),
    ],
)
def test_text_that_a_spreadsheet_would_run_is_guarded(typed: str, written: str) -> None:
    assert export.guard(typed) == written
    row = service.ExchangeRow(_exchange(description=typed), typed, "Ana", None)
    [_, line] = csv.reader(io.StringIO("".join(export.exchanges_csv([row]))))
    assert (line[1], line[6]) == (written, written)


def test_hours_are_exact_to_two_decimals() -> None:
    assert [export.hours(m) for m in (0, 1, 20, 30, 50, 60, 90, 1440, -45)] == [
        "0.00",
        "0.02",
        "0.33",
        "0.50",
        "0.83",
        "1.00",
        "1.50",
        "24.00",
        "-0.75",
    ]


def test_exchange_rows_come_in_ledger_order_across_batches(
    client: TestClient,
    settings: Settings,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    other_timebank: TestSystem,
    other_timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "Ana")
    made = [
        exchange(client, timebank_headers, timebank, sam, ana, date=day).json()["id"]
        for day in ("2026-11-03", "2026-11-01", "2026-11-02", "2026-11-01", "2026-11-03")
    ]
    kim = add_member(client, other_timebank_headers, other_timebank, "Kim")
    lee = add_member(client, other_timebank_headers, other_timebank, "Lee")
    exchange(client, other_timebank_headers, other_timebank, kim, lee, date="2026-11-01")

    with session_factory() as session:
        rows = list(service.exchange_rows(context_of(session, settings, timebank), batch_size=2))

    # By day, then in the order recorded; another time bank's exchange is not there.
    assert [row.exchange.id for row in rows] == [made[1], made[3], made[2], made[0], made[4]]
    assert {(row.giver_alias, row.receiver_alias) for row in rows} == {("Sam", "Ana")}


def test_the_exchanges_download(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "=Ana")
    kept = exchange(
        client, timebank_headers, timebank, sam, ana, minutes=45, description="Shopping"
    ).json()
    wrong = exchange(client, timebank_headers, timebank, ana, sam, minutes=20).json()
    reversal = reverse(client, timebank_headers, timebank, wrong["id"], "Wrong way round").json()

    response = client.get(ledger_url(timebank, "/exchanges.csv"), headers=timebank_headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="ledger-exchanges-')
    assert disposition.endswith('.csv"')
    stamp = {e["id"]: e["created_at"][:19] + "Z" for e in (kept, wrong, reversal)}
    assert list(csv.reader(io.StringIO(response.text)))[1:] == [
        ["2026-11-20", "Sam", "'=Ana", "befriending", "45", "0.75", "Shopping", kept["id"],
         sam, ana, "", "", "", stamp[kept["id"]]],
        ["2026-11-20", "'=Ana", "Sam", "befriending", "20", "0.33", "", wrong["id"], ana, sam,
         "", reversal["id"], "", stamp[wrong["id"]]],
        ["2026-11-20", "'=Ana", "Sam", "befriending", "-20", "-0.33", "", reversal["id"], ana,
         sam, wrong["id"], "", "Wrong way round", stamp[reversal["id"]]],
    ]  # fmt: skip
    with session_factory() as session:
        [audited] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "export")).all()
    assert (audited.action, audited.outcome, audited.detail) == ("R", 0, "ledger export: exchanges")
    assert (audited.entities, audited.tenant_org_id) == (
        f"Organization/{timebank.org_id}",
        timebank.org_id,
    )
    assert audited.actor_client_id == timebank.client_id


def test_the_members_download(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    sam = add_member(client, timebank_headers, timebank, "Sam")
    ana = add_member(client, timebank_headers, timebank, "-Ana")
    exchange(client, timebank_headers, timebank, sam, ana, minutes=90)
    end_membership(client, timebank_headers, timebank, ana, "Moved away")

    response = client.get(ledger_url(timebank, "/members.csv"), headers=timebank_headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="ledger-members-'
    )
    today = datetime.now(UTC).date().isoformat()
    assert list(csv.reader(io.StringIO(response.text))) == [
        list(export.MEMBER_HEADER),
        [sam, "Sam", "no", today, "", "90", "1.50", "90", "1.50", "0", "0.00", "1", ""],
        [ana, "'-Ana", "no", today, today, "-90", "-1.50", "0", "0.00", "90", "1.50", "1", ""],
    ]
    assert "Moved away" not in response.text  # the reason stays in SPIS
    with session_factory() as session:
        [audited] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "export")).all()
    assert audited.detail == "ledger export: members: 2 rows"


def test_only_the_time_bank_itself_may_download_its_ledger(
    client: TestClient,
    timebank: TestSystem,
    timebank_headers: dict[str, str],
    practice_headers: dict[str, str],
    other_timebank_headers: dict[str, str],
    session_factory: sessionmaker[Session],
) -> None:
    add_member(client, timebank_headers, timebank, "Sam")
    for path in ("/exchanges.csv", "/members.csv"):
        url = ledger_url(timebank, path)
        assert client.get(url).status_code == 401
        assert client.get(url, headers=practice_headers).status_code == 403
        other = client.get(url, headers=other_timebank_headers)
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/fhir+json")
    with session_factory() as session:
        assert session.scalars(select(AuditEvent).where(AuditEvent.kind == "export")).all() == []
