"""Outcome reports: how fast a health board's report for one quarter answers over a data set of
at least a million Observations. Run by `make bench`; merges its results into bench/results.json
under "outcomes". See bench/README.md.

    .venv/bin/python bench/outcomes.py [--quick] [--fresh] [--runs 200] [--no-http]

Needs PostgreSQL (SPIS_TEST_DATABASE_URL, as for the tests). The data set is made by `spis synth`
into a database kept between runs (spis_bench_outcomes_v1, or ..._quick_v1 for --quick), marked
with the synth parameters; it is reused when the marker matches, rebuilt with --fresh.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/outcomes.py` puts bench/ first
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
from common import merge_results  # noqa: E402 - bench/ is on sys.path
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

ADMIN_URL = os.environ.get(
    "SPIS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).resolve().parent / "results.json"
MARKER_VERSION = 1
TARGET_P50_MS = 50.0
# The cached database's data keys are wrapped with this KEK: every run must use the same one.
BENCH_KEK = "bench-outcomes-key-encryption-key-not-for-production"
BENCH_BLIND_INDEX_KEY = "bench-outcomes-blind-index-key-not-for-production"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--referrals", type=int, help="default 25,000 (1,000 with --quick)")
    parser.add_argument("--observations-per-referral", type=float, default=40.5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--runs", type=int, help="timed runs per measure (200; 50 with --quick)")
    parser.add_argument(
        "--cold-runs", type=int, help="timed runs computed after a change (30; 10 with --quick)"
    )
    parser.add_argument("--warmup", type=int, help="untimed runs per measure first (20; 5)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached data set")
    parser.add_argument("--no-http", action="store_true", help="skip $evaluate-measure over HTTP")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="1,000 referrals: a rough answer")
    args = parser.parse_args()
    if args.referrals is None:
        args.referrals = 1_000 if args.quick else 25_000
    if args.runs is None:
        args.runs = 50 if args.quick else 200
    if args.cold_runs is None:
        args.cold_runs = 10 if args.quick else 30
    if args.warmup is None:
        args.warmup = 5 if args.quick else 20
    args.database = f"spis_bench_outcomes{'_quick' if args.quick else ''}_v{MARKER_VERSION}"
    return args


def settings_for(url: str, var_dir: Path) -> Any:
    from referral_service.config import Settings

    return Settings(
        environment="test",
        database_url=url,
        var_dir=var_dir,
        kek=BENCH_KEK,
        blind_index_key=BENCH_BLIND_INDEX_KEY,
        public_base_url="http://127.0.0.1",
    )


# -- the cached data set -------------------------------------------------------------------------


def wanted(args: argparse.Namespace) -> dict[str, Any]:
    from referral_service.demo.synth import GENERATOR

    return {
        "version": MARKER_VERSION,
        "generator": GENERATOR,
        "referrals": args.referrals,
        "observations_per_referral": args.observations_per_referral,
        "seed": args.seed,
        "practices": 6,
        "timebanks": 3,
        "months": 12,
    }


def read_marker(admin: Any, name: str) -> dict[str, Any] | None:
    with admin.connect() as conn:
        comment = conn.execute(
            text(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = :name"
            ),
            {"name": name},
        ).first()
    if comment is None:
        return None
    try:
        return dict(json.loads(comment[0] or "{}"))
    except ValueError:
        return {}


def data_set(args: argparse.Namespace, var_dir: Path) -> tuple[str, dict[str, Any]]:
    """The database URL and its marker: the cached data set, or a new one."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        url = make_url(ADMIN_URL).set(database=args.database).render_as_string(hide_password=False)
        marker = read_marker(admin, args.database)
        params = wanted(args)
        if not args.fresh and marker and marker.get("params") == params and marker.get("loaded"):
            print(f"outcomes: reusing {args.database} (loaded {marker['loaded']})", file=sys.stderr)
            migrate(url)  # a later schema adds tables (the report cache) without a reload
            return url, marker
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{args.database}"'))
        marker = load(url, args, var_dir)
        with admin.connect() as conn:
            literal = json.dumps(marker).replace("'", "''")
            conn.execute(text(f"COMMENT ON DATABASE \"{args.database}\" IS '{literal}'"))
        return url, marker
    finally:
        admin.dispose()


def migrate(url: str) -> None:
    from referral_service.migrate import upgrade

    upgrade(url)


def load(url: str, args: argparse.Namespace, var_dir: Path) -> dict[str, Any]:
    from referral_service.demo.synth import Options, run

    print(
        f"outcomes: loading {args.referrals:,} synthetic referrals (spis synth) ...",
        file=sys.stderr,
    )
    options = Options(
        referrals=args.referrals,
        practices=6,
        timebanks=3,
        months=12,
        seed=args.seed,
        observations_per_referral=args.observations_per_referral,
    )
    began = time.perf_counter()
    summary = run(settings_for(url, var_dir), options, sys.stderr).as_json()
    seconds = time.perf_counter() - began
    return {
        "params": wanted(args),
        "loaded": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "end": summary["period"]["end"],
        "board_id": summary["board"]["id"],
        "load_seconds": round(seconds, 1),
        "synth": {k: summary[k] for k in ("referrals", "resources", "observations", "rows")},
    }


def sizes(url: str) -> dict[str, Any]:
    """What the database holds, counted now."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            by_type = dict(
                conn.execute(text("SELECT type, count(*) FROM resource GROUP BY type")).all()
            )

            def count(table: str) -> int:  # our own table names
                return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())  # noqa: S608

            return {
                "resources": sum(by_type.values()),
                "observations": by_type.get("Observation", 0),
                "resources_by_type": dict(sorted(by_type.items())),
                "referrals": count("outcome_referral"),
                "resource_versions": count("resource_version"),
                "search_index_rows": count("search_index"),
                "ledger_exchanges": count("ledger_exchange"),
                "outcome_score_rows": count("outcome_score"),
                "outcome_activity_rows": count("outcome_activity"),
                "database_bytes": conn.execute(
                    text("SELECT pg_database_size(current_database())")
                ).scalar_one(),
            }
    finally:
        engine.dispose()


def quarter_before(end: dt.date) -> tuple[dt.date, dt.date]:
    """The last whole calendar quarter before the one `end` falls in."""
    first_month = (end.month - 1) // 3 * 3 + 1
    start_of_this = dt.date(end.year, first_month, 1)
    last = start_of_this - dt.timedelta(days=1)
    return dt.date(last.year, (last.month - 1) // 3 * 3 + 1, 1), last


# -- timing --------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values]
    return {
        "p50": round(percentile(ms, 50), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2),
        "runs": len(ms),
    }


def timed(call: Callable[[], None], runs: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        call()
    spent = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        spent.append(time.perf_counter() - began)
    return spent


def measure_service(
    url: str,
    var_dir: Path,
    board_id: str,
    period: tuple[dt.date, dt.date],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """`outcomes.service.evaluate` as the board itself calls it, each run in its own unit of work:

    - computed: the board's rows changed just before each run (`repository.rows_changed` in a
      transaction of its own, as every refresh does), so the report is computed from the outcome
      rows: the first pull after a change;
    - served: nothing changed since the last pull, so the report cached then is served: every
      other pull (`evaluate_ms`, the issue's figure); with_commit_ms adds the commit, which
      appends the audit event of the report pulled.

    Both must give the same cells, or the bench fails."""
    from fhir_adapters.measures import MEASURES
    from referral_service.context import Context
    from referral_service.db import opened
    from referral_service.organisations.models import OrgKind
    from referral_service.outcomes.repository import rows_changed
    from referral_service.outcomes.service import evaluate
    from referral_service.principal import Principal

    settings = settings_for(url, var_dir)
    board = Principal(
        "bench", board_id, OrgKind.HEALTHBOARD, frozenset({"system/MeasureReport.rs"})
    )
    found: dict[str, Any] = {}
    with opened(settings) as database:
        practice = practice_of(database, board_id)

        def change() -> None:
            with database.sessionmaker() as session, session.begin():
                rows_changed(session, practice)

        for measure_id in MEASURES:
            computed: list[float] = []
            served: list[float] = []
            cells: dict[str, tuple[Any, ...]] = {}

            def once(
                into: list[float], kind: str, measure: str = measure_id, seen: Any = cells
            ) -> None:
                with database.sessionmaker() as session, session.begin():
                    began = time.perf_counter()
                    report = evaluate(Context(session, board, settings), measure, *period, board_id)
                    into.append(time.perf_counter() - began)
                    assert report.cells, measure
                    seen.setdefault(kind, report.cells)

            def cold(into: list[float] = computed) -> None:
                change()
                once(into, "computed")

            def warm(into: list[float] = served) -> None:
                once(into, "served")

            timed(cold, args.cold_runs, min(args.warmup, 3))
            total = timed(warm, args.runs, args.warmup)
            if cells["computed"] != cells["served"]:
                raise RuntimeError(f"{measure_id}: the served report is not the computed one")
            found[measure_id] = {
                "evaluate_ms": summary_ms(served[args.warmup :]),
                "with_commit_ms": summary_ms(total),
                "computed_ms": summary_ms(computed[min(args.warmup, 3) :]),
                "cells": len(cells["served"]),
            }
            print(
                f"  evaluate {measure_id}: served p50 {found[measure_id]['evaluate_ms']['p50']} ms,"
                f" computed p50 {found[measure_id]['computed_ms']['p50']} ms",
                file=sys.stderr,
            )
    return found


def practice_of(database: Any, board_id: str) -> str:
    from sqlalchemy import select

    from referral_service.organisations.models import Organisation, OrgKind

    with database.sessionmaker() as session:
        return str(
            session.scalars(
                select(Organisation.id).where(
                    Organisation.board_id == board_id, Organisation.kind == OrgKind.PRACTICE
                )
            ).first()
        )


class Token:
    """The board's access token, fetched again a minute before it expires (5-minute tokens;
    a slow Measure's 220 runs take longer than that)."""

    def __init__(self, base_url: str, system: Any) -> None:
        self.base_url, self.system = base_url, system
        self.value, self.expires_at = "", 0.0

    def header(self) -> dict[str, str]:
        if time.monotonic() > self.expires_at - 60:
            from tests.fixtures.server import token_response

            asked = time.monotonic()
            answer = token_response(self.base_url, self.system)
            if answer.status_code != 200:
                raise RuntimeError(f"token request failed: {answer.status_code} {answer.text}")
            body = answer.json()
            self.value = body["access_token"]
            self.expires_at = asked + float(body.get("expires_in", 300))
        return {"Authorization": f"Bearer {self.value}"}


def measure_http(
    url: str, board_id: str, period: tuple[dt.date, dt.date], args: argparse.Namespace
) -> dict[str, Any]:
    """GET /fhir/Measure/<id>/$evaluate-measure with the board's own token, against
    `spis serve` (one worker) on the same database."""
    from fhir_adapters.measures import MEASURES
    from referral_service.auth.service import register_client
    from referral_service.db import make_engine, make_sessionmaker
    from referral_service.organisations.models import OrgKind
    from tests.fixtures.server import fhir_base, server_process
    from tests.fixtures.systems import TestSystem, new_key, public_jwks

    key = new_key("ES384")
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            client = register_client(session, board_id, public_jwks(key, "bench", "ES384"), None)
            system = TestSystem(
                board_id, client.id, OrgKind.HEALTHBOARD, None, key, "bench", "ES384", client.scopes
            )
    finally:
        engine.dispose()
    env = {"SPIS_KEK": BENCH_KEK, "SPIS_BLIND_INDEX_KEY": BENCH_BLIND_INDEX_KEY}
    found: dict[str, Any] = {}
    with server_process(url, workers=1, env=env) as server:
        token = Token(server.base_url, system)
        query = {
            "periodStart": period[0].isoformat(),
            "periodEnd": period[1].isoformat(),
            "subject": f"Organization/{board_id}",
        }
        with httpx.Client(base_url=fhir_base(server.base_url), timeout=60) as http:
            probe = http.get(
                f"Measure/{next(iter(MEASURES))}/$evaluate-measure",
                params=query,
                headers=token.header(),
            )
            if probe.status_code == 404 and "MeasureReport" not in probe.text:
                return {"skipped": "GET /fhir/Measure/<id>/$evaluate-measure is not served yet"}
            for measure_id in MEASURES:
                path = f"Measure/{measure_id}/$evaluate-measure"

                def once(path: str = path) -> None:
                    response = http.get(path, params=query, headers=token.header())
                    if response.status_code != 200 or b'"MeasureReport"' not in response.content:
                        raise RuntimeError(
                            f"{path}: HTTP {response.status_code} {response.text[:300]}"
                        )

                found[measure_id] = {"request_ms": summary_ms(timed(once, args.runs, args.warmup))}
                print(
                    f"  HTTP {measure_id}: p50 {found[measure_id]['request_ms']['p50']} ms",
                    file=sys.stderr,
                )
    return found


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    import tempfile

    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="spis-bench-outcomes-") as tmp:
        var_dir = Path(tmp) / "var"
        url, marker = data_set(args, var_dir)
        counted = sizes(url)
        end = dt.datetime.fromisoformat(marker["end"]).date()
        period = quarter_before(end)
        print(
            f"outcomes: {counted['observations']:,} Observations; board {marker['board_id']}, "
            f"{period[0]} to {period[1]}",
            file=sys.stderr,
        )
        service = measure_service(url, var_dir, marker["board_id"], period, args)
        results = build_results(args, counted, marker, period, service, {"skipped": "running"})
        merge_results(args.output, "outcomes", results)  # kept should the HTTP part fail
        http = (
            {"skipped": "--no-http"}
            if args.no_http
            else measure_http(url, marker["board_id"], period, args)
        )
    results = build_results(args, counted, marker, period, service, http)
    merge_results(args.output, "outcomes", results)
    print_table(results)
    print(f'\nwrote {args.output} ("outcomes")', file=sys.stderr)
    slow = [m for m, v in service.items() if v["evaluate_ms"]["p50"] > TARGET_P50_MS]
    if slow:  # reported, as bench/api.py reports its rates: a bench measures, it does not gate
        print(f"outcomes: p50 above {TARGET_P50_MS:g} ms for {', '.join(slow)}", file=sys.stderr)
    return 0


def build_results(
    args: argparse.Namespace,
    counted: dict[str, Any],
    marker: dict[str, Any],
    period: tuple[dt.date, dt.date],
    service: dict[str, Any],
    http: dict[str, Any],
) -> dict[str, Any]:
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "database": args.database,
        "data_set": {
            **counted,
            "load_seconds": marker["load_seconds"],
            "loaded": marker["loaded"],
            "synth_params": marker["params"],
        },
        "period": {
            "start": period[0].isoformat(),
            "end": period[1].isoformat(),
            "board_id": marker["board_id"],
        },
        "target_p50_ms": TARGET_P50_MS,
        "evaluate": service,
        "http": http,
        "notes": [
            "evaluate_ms: outcomes.service.evaluate(ctx, measure, start, end, board) as the board, "
            "one quarter, after warm-up, nothing changed since the last pull: the report cached "
            "then is served; with_commit_ms adds the unit of work's commit (the audit event of "
            "the report pulled)",
            "computed_ms: the same, with the board's rows changed just before each run (its data "
            "version moved on, as every refresh does): the report computed from the outcome rows",
            "http: GET /fhir/Measure/<id>/$evaluate-measure with the board's token, spis serve "
            "--workers 1, one client in sequence, nothing changed since the last pull",
            "the data set: spis synth (store/bulk.py), kept between runs in the named database",
        ],
    }


def print_table(results: dict[str, Any]) -> None:
    data = results["data_set"]
    print(
        f"\nSPIS outcome reports, {results['date']}: {data['observations']:,} Observations, "
        f"{data['resources']:,} resources, {data['referrals']:,} referrals "
        f"(loaded in {data['load_seconds']:,.0f} s); one board, "
        f"{results['period']['start']} to {results['period']['end']}"
    )
    print(
        f"{'measure':<26}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'target':>9}{'HTTP p50':>10}"
        f"{'ok':>5}{'computed p50':>14}"
    )
    for measure, value in results["evaluate"].items():
        e = value["evaluate_ms"]
        http = results["http"].get(measure, {}).get("request_ms", {}).get("p50", "-")
        ok = "yes" if e["p50"] <= TARGET_P50_MS else "NO"
        computed = value["computed_ms"]["p50"]
        print(
            f"{measure:<26}{e['p50']:>9}{e['p95']:>9}{e['p99']:>9}{TARGET_P50_MS:>9g}{http!s:>10}"
            f"{ok:>5}{computed:>14}"
        )
    print("p50/p95/p99: served (nothing changed since the last pull); computed: after a change")
    if "skipped" in results["http"]:
        print(f"HTTP: skipped ({results['http']['skipped']})")


if __name__ == "__main__":
    sys.exit(main())
