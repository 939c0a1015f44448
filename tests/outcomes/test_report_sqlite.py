"""The embedded default (SQLite, what `spis demo` runs on) gives the same report as PostgreSQL:
the queries use only portable SQL (partners are joined with `aggregate_strings`, which is
`group_concat` there), and SQLite's naive datetimes are read as UTC."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker, unit_of_work
from referral_service.migrate import upgrade
from tests.outcomes.report_rows import evaluate, table
from tests.outcomes.test_report_funnel import funnel_rows
from tests.outcomes.test_report_social_value import with_life_satisfaction


def sqlite(tmp_path: Path, name: str) -> tuple[sessionmaker[Session], Settings]:
    url = f"sqlite:///{tmp_path / name}.sqlite3"
    upgrade(url)
    settings = Settings(environment="test", database_url=url, var_dir=tmp_path / "var")
    return make_sessionmaker(make_engine(url)), settings


def test_funnel_on_sqlite(tmp_path: Path) -> None:
    factory, settings = sqlite(tmp_path, "funnel")
    with unit_of_work(factory) as session:
        area = funnel_rows(session)
    report = evaluate(factory, settings, "spis-referral-funnel", area.board)
    cells = table(report)
    assert cells["received", "total", ""] == (25.0, None)
    assert cells["received", "month", "2026-09"] == (None, "small-count")  # the last instant
    assert [
        c.key for c in report.cells if c.figure == "received" and c.stratifier.value == "month"
    ] == [
        "2026-07",
        "2026-08",
        "2026-09",
    ]
    acceptance = report.cell("days-to-acceptance")
    assert (acceptance.value, acceptance.low, acceptance.high) == (2.0, 2.0, 5.8)


def test_coproduction_and_social_value_on_sqlite(tmp_path: Path) -> None:
    factory, settings = sqlite(tmp_path, "social")
    with unit_of_work(factory) as session:
        board = with_life_satisfaction(session, 8).board
    cells = table(evaluate(factory, settings, "spis-coproduction", board))
    assert cells["hours-given", "total", ""] == (15.0, None)
    assert cells["network-reach", "total", ""] == (2.9, None)
    assert cells["gave-time", "total", ""] == (50.0, None)
    period = (date(2026, 7, 1), date(2026, 9, 30))
    value = table(evaluate(factory, settings, "spis-social-value", board, period=period))
    assert value["social-value", "total", ""] == (208_342.0, None)
