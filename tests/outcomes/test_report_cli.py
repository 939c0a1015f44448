"""`spis outcomes report` and `spis outcomes cost`, in process against PostgreSQL, and the plain
text table a terminal shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from fhir_adapters.measures import (
    COPRODUCTION,
    SOCIAL_VALUE,
    Assumption,
    Cell,
    Report,
    Stratifier,
    Suppression,
)
from referral_service import cli
from referral_service.audit.models import AuditEvent
from referral_service.config import get_settings
from referral_service.db import unit_of_work
from referral_service.outcomes import service
from referral_service.outcomes.text import render_table
from tests.conftest import TEST_KEK
from tests.outcomes.report_rows import Area
from tests.outcomes.test_report_funnel import funnel_rows
from tests.outcomes.test_report_social_value import with_life_satisfaction

Q3 = ("--start", "2026-07-01", "--end", "2026-09-30")


class Spis(Protocol):
    def __call__(self, *argv: str) -> tuple[int, str, str]: ...


@pytest.fixture
def spis(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Spis]:
    monkeypatch.setenv("SPIS_DATABASE_URL", pg_url)
    monkeypatch.setenv("SPIS_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SPIS_ENVIRONMENT", "test")
    monkeypatch.setenv("SPIS_KEK", TEST_KEK)
    get_settings.cache_clear()

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    yield run
    get_settings.cache_clear()


def block(text: str, title: str) -> list[list[str]]:
    """The words of each line of one figure's table."""
    lines = text.split(f"\n{title}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split() for line in lines]


@pytest.fixture
def funnel_area(session_factory: sessionmaker[Session]) -> Area:
    with unit_of_work(session_factory) as session:
        return funnel_rows(session)


def test_report_as_json_and_audited(
    spis: Spis, funnel_area: Area, session_factory: sessionmaker[Session]
) -> None:
    code, out, err = spis(
        "outcomes", "report", "--board", funnel_area.board, "--measure", "spis-referral-funnel",
        *Q3, "--focus", f"Organization/{funnel_area.p1}", "--format", "json",
    )  # fmt: skip
    assert (code, err) == (0, "")
    report = json.loads(out)
    assert report["measure"] == "spis-referral-funnel"
    assert report["board"] == {"id": funnel_area.board, "name": "South East London"}
    assert report["period"] == {"start": "2026-07-01", "end": "2026-09-30"}
    assert report["focus"] == f"Organization/{funnel_area.p1}"
    received = report["cells"][0]
    assert received == {
        "figure": "received",
        "figure_title": "Referred",
        "kind": "count",
        "unit": "{people}",
        "stratifier": "total",
        "stratum": "",
        "stratum_label": "Total",
        "value": 10.0,
        "low": None,
        "high": None,
        "n": None,
        "suppressed": None,
    }
    median = next(c for c in report["cells"] if c["figure"] == "days-to-acceptance")
    assert (median["value"], median["low"], median["high"], median["n"]) == (5.5, 3.3, 7.8, 10)
    with session_factory() as session:
        [event] = session.scalars(select(AuditEvent).where(AuditEvent.kind == "export")).all()
    assert (event.actor_org_id, event.tenant_org_id) == ("spis", funnel_area.board)


def test_report_as_a_table(spis: Spis, funnel_area: Area) -> None:
    code, out, err = spis(
        "outcomes", "report", "--board", funnel_area.board, "--measure", "spis-referral-funnel", *Q3
    )  # fmt: skip
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Social prescribing referrals: from referral to completion"
    assert f"Health board: South East London ({funnel_area.board})" in lines
    assert "Period: 1 July 2026 to 30 September 2026 (inclusive, UTC)" in lines
    received = block(out, "Referred [{people}]")
    assert received[:3] == [
        ["Stratum", "Value"],
        ["Total", "25"],
        ["Practice:", "Hill", "Surgery", "(P11111)", "10"],
    ]
    assert "Time bank: Not placed with a time bank  masked (small count)" in out
    assert "Time bank: Lewisham Time Bank" in out
    assert "masked (secondary)" in out
    assert "Month: September 2026" in out
    acceptance = block(out, "Days from referral to acceptance [d]")
    assert acceptance[:2] == [
        ["Stratum", "Value", "IQR", "n"],
        ["Total", "2.0", "2.0", "to", "5.8", "20"],
    ]
    assert "Disclosure control" in out
    assert "Counts of 1 to 7 are masked (small count)" in out
    assert "Assumptions" not in out


def test_cost_then_the_social_value_table(
    spis: Spis, session_factory: sessionmaker[Session]
) -> None:
    with unit_of_work(session_factory) as session:
        board = with_life_satisfaction(session, 8).board
    code, out, err = spis("outcomes", "cost", "--board", board, *Q3, "--amount", "40000.00")
    assert (code, err) == (0, "")
    assert json.loads(out) == {
        "board_id": board,
        "period_start": "2026-07-01",
        "period_end": "2026-09-30",
        "amount_pence": 4_000_000,
    }
    with session_factory() as session:
        assert service.programme_cost(session, board, date(2026, 7, 1), date(2026, 9, 30)) == (
            4_000_000
        )
    code, out, err = spis(
        "outcomes", "report", "--board", board, "--measure", "spis-social-value", *Q3
    )
    assert (code, err) == (0, "")
    assert block(out, "Social value (estimate) [[GBP]]") == [
        ["Stratum", "Value"],
        ["Total", "£208,342"],
    ]
    assert block(out, "Social value per pound spent [1]") == [
        ["Stratum", "Value"],
        ["Total", "5.21"],
    ]
    assert "Assumptions (this is an estimate)" in out
    assert "  Value of an hour given or received: £12.21 (National Living Wage, April 2025)" in out
    assert "HM Treasury Green Book supplementary guidance: wellbeing (2021)" in out


def test_refusals_are_one_line_errors(spis: Spis, funnel_area: Area) -> None:
    code, out, err = spis(
        "outcomes", "report", "--board", funnel_area.p1, "--measure", "spis-coproduction", *Q3
    )
    assert (code, out) == (1, "")
    assert err == "spis: error: No health board has this id\n"
    code, out, err = spis(
        "outcomes", "report", "--board", funnel_area.board, "--measure", "spis-coproduction",
        "--start", "2026-09-30", "--end", "2026-07-01",
    )  # fmt: skip
    assert (code, err) == (1, "spis: error: periodEnd is before periodStart\n")
    code, out, err = spis("outcomes", "cost", "--board", funnel_area.board, *Q3, "--amount", "0")
    assert code == 1
    assert "programme cost must be more than £0" in err


@pytest.mark.parametrize(
    "argv",
    [
        ("cost", "--amount", "40,000"),
        ("cost", "--amount", "12.345"),
        ("cost", "--amount", "40000", "--start", "1 July 2026"),
        ("report", "--measure", "spis-nothing"),
    ],
)
def test_arguments_are_checked_before_anything_runs(
    spis: Spis, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    command, *rest = argv
    base = ["outcomes", command, "--board", "b", *Q3]
    if command == "report" and "--measure" not in rest:
        base += ["--measure", "spis-coproduction"]
    with pytest.raises(SystemExit) as exited:
        spis(*base, *rest)
    assert exited.value.code == 2
    assert "error: argument --" in capsys.readouterr().err


def cell(figure: str, value: float | None, **more: object) -> Cell:
    return Cell(figure, Stratifier.TOTAL, "", "Total", value, **more)  # type: ignore[arg-type]


def test_the_table_writes_each_kind_at_its_precision() -> None:
    report = Report(
        measure=COPRODUCTION,
        board_id="b",
        board_name="A board",
        period_start=date(2026, 7, 1),
        period_end=date(2026, 9, 30),
        generated_at=datetime(2026, 11, 29, 10, 4, tzinfo=UTC),
        cells=(
            cell("active-members", 1234.0),
            Cell(
                "active-members",
                Stratifier.MONTH,
                "2026-07",
                "July 2026",
                None,
                suppressed=Suppression.SMALL_COUNT,
            ),
            cell("hours-given", 12.5, n=1235),
            cell("hours-received", None, n=0),
            cell("reciprocity", 1.1, n=1235),
            cell("network-reach", 2.9, low=2.49, high=3.3, n=1235),
            cell("gave-time", 50.0, n=20),
            cell("days-to-first-gift", None, suppressed=Suppression.SMALL_N),
        ),
        focus="Organization/p",
    )
    text = render_table(report)
    assert "Narrowed to: Organization/p" in text
    assert "Generated: 29 November 2026 10:04 UTC" in text
    assert (
        "Referred members taking part [{people}]\n"
        "  Stratum                          Value\n"
        "  Total                             1234\n"
        "  Month: July 2026  masked (small count)\n"
    ) in text
    assert "Hours given [h]\n  Stratum  Value     n\n  Total     12.5  1235\n" in text
    assert "  Total        -  0\n" in text  # hours received: nothing to report
    assert "  Total     1.10  1235\n" in text
    assert "  Total     2.90  2.49 to 3.30  1235\n" in text
    assert "  Total      50%  20\n" in text
    assert "  Total    masked (small n)" in text


def test_money_in_the_table() -> None:
    report = Report(
        measure=SOCIAL_VALUE,
        board_id="b",
        board_name="A board",
        period_start=date(2026, 7, 1),
        period_end=date(2026, 9, 30),
        generated_at=datetime(2026, 11, 29, tzinfo=UTC),
        cells=(
            cell("value-of-hours", 1234567.0),
            cell("value-of-wellbeing", -2000.0),
            cell("social-value", None, suppressed=Suppression.INPUTS),
            cell("programme-cost", None),
        ),
        assumptions=(Assumption("x", "An assumption", "its value"),),
    )
    text = render_table(report)
    assert "  Total    £1,234,567\n" in text
    assert "  Total    -£2,000\n" in text
    assert "  Total    masked (inputs masked)\n" in text
    assert (
        "Programme cost (entered by the board) [[GBP]]\n  Stratum  Value\n  Total        -\n"
        in text
    )
    assert text.endswith("Assumptions (this is an estimate)\n  An assumption: its value\n")
