"""What the benches share: the throw-away database, statistics, the machine, bench/results.json.

Imported as `common` (a bench run as `python bench/<name>.py` has bench/ first on sys.path).
"""

from __future__ import annotations

import json
import math
import os
import platform
import secrets
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the checkout
    sys.path.insert(0, str(REPO_ROOT))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

ADMIN_URL = os.environ.get(
    "SPIS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).resolve().parent / "results.json"


# -- the throw-away database ---------------------------------------------------------------------


@contextmanager
def scratch_database() -> Iterator[str]:
    """CREATE DATABASE spis_bench_<random>, migrated; DROP ... WITH (FORCE) afterwards."""
    from referral_service.migrate import upgrade

    name = f"spis_bench_{secrets.token_hex(4)}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        raise SystemExit(
            f"bench: PostgreSQL is needed at {admin_url_shown()} ({type(exc).__name__}); "
            "see DEVELOPERS.md or set SPIS_TEST_DATABASE_URL"
        ) from None
    url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        print(f"dropped database {name}", file=sys.stderr)


def analyze(url: str) -> None:
    """ANALYZE the whole database: what autovacuum does as tables grow. A bench fills fresh
    tables faster than autovacuum looks at them (once a minute, and not at all where it is off),
    and without statistics PostgreSQL plans for tables as they were when the bench began. ANALYZE
    also makes each connection plan its prepared statements again, as on a server that has run a
    while."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def autovacuum_on(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.scalar(text("SHOW autovacuum"))) == "on"
    finally:
        engine.dispose()


def admin_url_shown() -> str:
    return make_url(ADMIN_URL).render_as_string()


def database_name(url: str) -> str:
    return str(make_url(url).database)


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def metric(runs: list[float], unit: str, digits: int = 1) -> dict[str, Any]:
    """A figure measured in several runs: every run, and their median (the one to read)."""
    return {
        "unit": unit,
        "runs": [round(value, digits) for value in runs],
        "median": round(statistics.median(runs), digits) if runs else 0.0,
    }


# -- the machine ---------------------------------------------------------------------------------


def machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "loadavg_before": [round(v, 2) for v in load_before],
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# -- bench/results.json: one key per bench, the others' kept -------------------------------------


# bench/api.py, bench/outcomes.py, bench/deliveries.py. Anything else at the top level (what the
# intake bench wrote there before bench/api.py took its place) is dropped on the next write.
BENCH_KEYS = ("api", "instructions", "outcomes", "deliveries")


def merge_results(path: Path, key: str, results: dict[str, Any]) -> None:
    """Write `results` under `key`, keeping what the other benches wrote under theirs."""
    try:
        existing = json.loads(path.read_text())
    except (OSError, ValueError):
        existing = {}
    if not isinstance(existing, dict):
        existing = {}
    kept = {name: existing[name] for name in BENCH_KEYS if name in existing and name != key}
    merged = {
        name: results if name == key else kept[name]
        for name in BENCH_KEYS
        if name in kept or name == key
    }
    path.write_text(json.dumps(merged, indent=2) + "\n")
