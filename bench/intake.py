"""Intake throughput: referral transaction Bundles per second through HTTP, against the floor of
FHIR validation alone. Run by `make bench`; writes bench/results.json. See bench/README.md.

    .venv/bin/python bench/intake.py [--duration 15] [--runs 3] [--concurrency 16] [--quick]

Needs PostgreSQL (SPIS_TEST_DATABASE_URL, as for the tests): a throw-away database is created,
migrated, served by `spis serve --workers 2`, and dropped at the end, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import multiprocessing as mp
import os
import platform
import secrets
import signal
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/intake.py` puts bench/ first, not the checkout
    sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402
import orjson  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

ADMIN_URL = os.environ.get(
    "SPIS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
RESULTS = Path(__file__).resolve().parent / "results.json"
ORG_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"  # floor bundles need no real practice
TOKEN_REFRESH_MARGIN_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


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
        where = make_url(ADMIN_URL).render_as_string()
        raise SystemExit(
            f"bench: PostgreSQL is needed at {where} ({type(exc).__name__}); "
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


def register_practice(database_url: str) -> Any:
    from referral_service.db import make_engine, make_sessionmaker
    from referral_service.organisations.models import OrgKind
    from tests.fixtures.systems import register_system

    engine = make_engine(database_url)
    try:
        return register_system(
            make_sessionmaker(engine), OrgKind.PRACTICE, name="Bench Practice", ods="B86001"
        )
    finally:
        engine.dispose()


# -- statistics ----------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered))))
    return ordered[rank - 1]


def metric(runs: list[float], unit: str, digits: int = 1) -> dict[str, Any]:
    return {
        "unit": unit,
        "runs": [round(value, digits) for value in runs],
        "median": round(statistics.median(runs), digits),
    }


# -- CPU accounting from /proc (who used the two cores during a run) ------------------------------


@dataclass(frozen=True)
class Watch:
    """What to account for: the server's processes (its session) and our database's backends."""

    server_sid: int
    database: str


@dataclass
class CpuSample:
    wall: float
    busy_s: float  # all CPUs, from /proc/stat
    server: dict[int, float]  # pid -> CPU seconds, for every process in the server's session
    postgres: dict[int, float]  # pid -> CPU seconds, backends connected to our database
    bench_s: float


def _proc_stat(pid: str) -> tuple[str, int, float] | None:
    """(comm, session id, utime+stime seconds) of one process, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): session is field 6, utime 14, stime 15
    return comm, int(fields[3]), (int(fields[11]) + int(fields[12])) / CLK_TCK


def _is_backend_of(pid: str, database: str) -> bool:
    """A PostgreSQL backend's title is `postgres: <cluster>: <user> <database> <client> ...`."""
    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return f" {database} " in title


def cpu_sample(watch: Watch) -> CpuSample:
    with open("/proc/stat") as stat:
        numbers = [int(n) for n in stat.readline().split()[1:]]
    idle = numbers[3] + numbers[4]  # idle + iowait
    busy = (sum(numbers[:8]) - idle) / CLK_TCK  # guest time is already in user
    server: dict[int, float] = {}
    postgres: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        found = _proc_stat(entry)
        if found is None:
            continue
        comm, sid, cpu = found
        if sid == watch.server_sid:
            server[int(entry)] = cpu
        elif comm == "postgres" and _is_backend_of(entry, watch.database):
            postgres[int(entry)] = cpu
    times = os.times()
    return CpuSample(time.monotonic(), busy, server, postgres, times.user + times.system)


def _used(before: dict[int, float], after: dict[int, float]) -> dict[int, float]:
    """CPU seconds per process between two samples (a process that ended meanwhile is lost)."""
    return {pid: cpu - before.get(pid, 0.0) for pid, cpu in after.items()}


def cpu_breakdown(before: CpuSample, after: CpuSample) -> dict[str, Any]:
    """Cores used on average by each party between two samples (2.0 = both cores all the time)."""
    wall = after.wall - before.wall
    workers = {pid: used / wall for pid, used in _used(before.server, after.server).items()}
    server = sum(workers.values())
    postgres = sum(_used(before.postgres, after.postgres).values()) / wall
    bench = (after.bench_s - before.bench_s) / wall
    busy = (after.busy_s - before.busy_s) / wall
    return {
        "busy_cores": round(busy, 2),
        "server_cores": round(server, 2),
        "server_cores_per_process": sorted(
            (round(v, 2) for v in workers.values() if v >= 0.005), reverse=True
        ),
        "postgres_cores": round(postgres, 2),
        "load_generator_cores": round(bench, 2),
        "other_cores": round(max(0.0, busy - server - postgres - bench), 2),
    }


# -- the floor: validation alone, in parallel processes ------------------------------------------


def _floor_worker(bodies: list[bytes], duration: float, start: Any, results: Any) -> None:
    from fhir_adapters.parse import load_json, validate_resource, warm_up

    warm_up()
    for body in bodies[:20]:
        validate_resource(load_json(body))
    start.wait()
    count = 0
    parse_s = validate_s = 0.0
    clock = time.perf_counter
    cpu_began = time.process_time()
    began = clock()
    deadline = began + duration
    n = len(bodies)
    while True:
        t0 = clock()
        if t0 >= deadline:
            break
        data = load_json(bodies[count % n])  # a fresh dict every time
        t1 = clock()
        validate_resource(data, expected_type="Bundle")
        t2 = clock()
        parse_s += t1 - t0
        validate_s += t2 - t1
        count += 1
    elapsed, cpu = clock() - began, time.process_time() - cpu_began
    results.put(
        {
            "count": count,
            "elapsed": elapsed,
            "cpu_s": cpu,
            "parse_s": parse_s,
            "validate_s": validate_s,
        }
    )


def measure_floor(bodies: list[bytes], processes: int, duration: float) -> dict[str, float]:
    """Bundles/s over `processes` processes running at the same time, for load_json +
    validate_resource and for validate_resource alone; and the per-bundle cost in µs."""
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(target=_floor_worker, args=(bodies, duration, start, results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        parts = [results.get(timeout=duration + 120) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.terminate()
                worker.join()
    count = sum(p["count"] for p in parts)
    return {
        "parse_validate_per_s": sum(p["count"] / p["elapsed"] for p in parts),
        "validate_only_per_s": sum(p["count"] / p["validate_s"] for p in parts),
        "validate_us": sum(p["validate_s"] for p in parts) / count * 1e6,
        "load_json_us": sum(p["parse_s"] for p in parts) / count * 1e6,
        "cpu_us": sum(p["cpu_s"] for p in parts) / count * 1e6,  # parse + validate, CPU time
    }


# -- intake through HTTP -------------------------------------------------------------------------


class Tokens:
    """The practice's access token, fetched again when it is about to expire (300 s tokens)."""

    def __init__(self, http: httpx.AsyncClient, base_url: str, system: Any) -> None:
        self.http, self.base_url, self.system = http, base_url, system
        self.header = ""
        self.expires_at = 0.0
        self.refreshes = 0
        self._lock = asyncio.Lock()

    async def authorization(self) -> str:
        if time.monotonic() < self.expires_at - TOKEN_REFRESH_MARGIN_S:
            return self.header
        async with self._lock:
            if time.monotonic() >= self.expires_at - TOKEN_REFRESH_MARGIN_S:
                await self._refresh()
        return self.header

    async def _refresh(self) -> None:
        from tests.fixtures.server import token_url
        from tests.fixtures.systems import ASSERTION_TYPE

        url = token_url(self.base_url)
        asked = time.monotonic()
        response = await self.http.post(
            url,
            data={
                "grant_type": "client_credentials",
                "scope": self.system.scopes,  # required (SMART Backend Services)
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.system.assertion(url),
            },
        )
        if response.status_code != 200:
            raise RuntimeError(f"token request failed: {response.status_code} {response.text}")
        body = response.json()
        self.header = f"Bearer {body['access_token']}"
        self.expires_at = asked + float(body.get("expires_in", 300))
        self.refreshes += 1


@dataclass
class IntakeRun:
    completed: int = 0
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cpu: dict[str, Any] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.completed / self.elapsed if self.elapsed else 0.0


def _check_response(response: httpx.Response) -> str | None:
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    body = orjson.loads(response.content)
    statuses = [entry["response"]["status"] for entry in body.get("entry", [])]
    if body.get("type") != "transaction-response" or statuses != ["201 Created"] * 3:
        return f"unexpected transaction-response: {statuses}"
    return None


async def intake(
    http: httpx.AsyncClient,
    tokens: Tokens,
    fhir_url: str,
    bodies: list[bytes],
    duration: float,
    concurrency: int,
    watch: Watch,
) -> IntakeRun:
    """`concurrency` clients POST the next unused Bundle until `duration` has passed; requests
    in flight at the deadline are completed and counted (elapsed runs until the last one)."""
    run = IntakeRun()
    pending = iter(bodies)
    clock = time.perf_counter

    async def client() -> None:
        while clock() < deadline:
            body = next(pending, None)
            if body is None:
                run.failures.append("ran out of pre-generated Bundles (far above warm-up rate)")
                return
            headers = {
                "Authorization": await tokens.authorization(),
                "Content-Type": "application/fhir+json",
                "Accept": "application/fhir+json",
            }
            t0 = clock()
            try:
                response = await http.post(fhir_url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                run.latencies.append(clock() - t0)
                run.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            run.latencies.append(clock() - t0)
            problem = _check_response(response)
            if problem:
                run.failures.append(problem)
            else:
                run.completed += 1

    before = cpu_sample(watch)
    began = clock()
    deadline = began + duration
    await asyncio.gather(*(client() for _ in range(concurrency)))
    run.elapsed = clock() - began
    run.cpu = cpu_breakdown(before, cpu_sample(watch))
    return run


def bundle_bodies(org_id: str, count: int, prefix: str, nhs_start: int) -> list[bytes]:
    from tests.fixtures.server import referral_bundles

    return [
        orjson.dumps(b) for b in referral_bundles(org_id, count, prefix=prefix, nhs_start=nhs_start)
    ]


async def measure_intake(
    base_url: str, watch: Watch, practice: Any, args: argparse.Namespace
) -> tuple[IntakeRun, list[IntakeRun], int]:
    from tests.fixtures.server import fhir_base

    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    timeout = httpx.Timeout(60.0)
    nhs_start = 999_000_000
    async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
        tokens = Tokens(http, base_url, practice)
        await tokens.authorization()
        fhir_url = fhir_base(base_url)
        warm_count = max(200, int(args.warmup * 1000))
        warm_bodies = bundle_bodies(practice.org_id, warm_count, "WARM", nhs_start)
        nhs_start += warm_count * 2
        warm = await intake(
            http, tokens, fhir_url, warm_bodies, args.warmup, args.concurrency, watch
        )
        if warm.failures:
            raise RuntimeError(f"warm-up failed: {warm.failures[0]}")
        # Enough distinct Bundles for twice the warm-up rate (the database grows, rates fall).
        per_run = int(max(warm.per_s, 50) * args.duration * 2) + 500
        runs = []
        for i in range(args.runs):
            bodies = bundle_bodies(practice.org_id, per_run, f"RUN{i}", nhs_start)
            nhs_start += per_run * 2
            run = await intake(
                http, tokens, fhir_url, bodies, args.duration, args.concurrency, watch
            )
            print(
                f"  intake run {i + 1}: {run.per_s:7.1f} bundles/s, p50 "
                f"{percentile(run.latencies, 50) * 1000:.0f} ms, p99 "
                f"{percentile(run.latencies, 99) * 1000:.0f} ms, cpu {run.cpu}",
                file=sys.stderr,
            )
            runs.append(run)
        return warm, runs, tokens.refreshes


# -- main ----------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per intake run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of intake first")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--floor-processes", type=int, default=2)
    parser.add_argument("--floor-duration", type=float, default=5.0, help="seconds per floor run")
    parser.add_argument(
        "--token-lifetime", type=int, help="SPIS_ACCESS_TOKEN_LIFETIME_S, to exercise refreshes"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="3 s runs, for trying the bench")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup, args.floor_duration = 3.0, 2.0, 2.0
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` drops the database
    from tests.fixtures.server import server_process

    load_before = os.getloadavg()
    floor_bodies = bundle_bodies(ORG_PLACEHOLDER, 200, "FLOOR", 999_500_000)
    print(f"floor: validation alone in {args.floor_processes} processes ...", file=sys.stderr)
    floors = [
        measure_floor(floor_bodies, args.floor_processes, args.floor_duration)
        for _ in range(args.runs)
    ]
    single = [measure_floor(floor_bodies, 1, args.floor_duration) for _ in range(args.runs)]

    with scratch_database() as url:
        practice = register_practice(url)
        print(f"intake: spis serve --workers {args.workers} ...", file=sys.stderr)
        env = {}
        if args.token_lifetime:
            env["SPIS_ACCESS_TOKEN_LIFETIME_S"] = str(args.token_lifetime)
        with server_process(url, workers=args.workers, env=env) as server:
            watch = Watch(server.pid, str(make_url(url).database))
            warm, runs, refreshes = asyncio.run(
                measure_intake(server.base_url, watch, practice, args)
            )
            server_log = server.log_path.read_text(errors="replace")
    server_log_tail = server_log[-2000:]
    server_events = [
        line
        for line in server_log.splitlines()
        if "HTTP/1.1" not in line  # not the access log
    ]
    restarts = [line for line in server_events if "died" in line or "was not ready" in line]

    failures = [f for run in runs for f in run.failures]
    results = build_results(args, load_before, floors, single, warm, runs, refreshes)
    results["server_worker_restarts"] = restarts
    if restarts:
        print(f"bench: the server restarted workers during the run: {restarts}", file=sys.stderr)
    if failures:
        results["failures"] = {"count": len(failures), "first": failures[:5]}
        results["server_log_tail"] = server_log_tail
    results = _keep_outcomes(args.output, results)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {args.output}", file=sys.stderr)
    if failures:
        print(f"bench: {len(failures)} requests failed, first: {failures[0]}", file=sys.stderr)
        return 1
    return 0


def build_results(
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    floors: list[dict[str, float]],
    single: list[dict[str, float]],
    warm: IntakeRun,
    runs: list[IntakeRun],
    refreshes: int,
) -> dict[str, Any]:
    intake_rates = [run.per_s for run in runs]
    floor_rates = [f["parse_validate_per_s"] for f in floors]
    validate_rates = [f["validate_only_per_s"] for f in floors]
    ratios = [i / f for i, f in zip(intake_rates, floor_rates, strict=True)]
    server_ms = [r.cpu["server_cores"] / r.per_s * 1000 for r in runs]
    floor_cpu_us = statistics.median(f["cpu_us"] for f in floors)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu_count": os.cpu_count(),
            "cpus_usable": len(os.sched_getaffinity(0)),
            "cpu_model": _cpu_model(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "loadavg_before": [round(v, 2) for v in load_before],
        },
        "config": {
            "server": f"spis serve --workers {args.workers} (uvicorn, access log on)",
            "broker": "memory:// (background jobs are queued but not run: intake alone)",
            "database": "PostgreSQL, fresh database, " + make_url(ADMIN_URL).render_as_string(),
            "concurrency": args.concurrency,
            "run_seconds": args.duration,
            "warmup_seconds": args.warmup,
            "runs": args.runs,
            "floor_processes": args.floor_processes,
            "floor_seconds": args.floor_duration,
            "bundle": "tests/data/referral-bundle.json: Patient + Consent + ServiceRequest "
            "(+ the Task SPIS adds); a new NHS number and referral identifier per request",
        },
        "metrics": {
            "intake_bundles_per_s": metric(intake_rates, "bundles/s"),
            "intake_latency_p50_ms": metric(
                [percentile(r.latencies, 50) * 1000 for r in runs], "ms"
            ),
            "intake_latency_p99_ms": metric(
                [percentile(r.latencies, 99) * 1000 for r in runs], "ms"
            ),
            "server_cpu_ms_per_bundle": metric(server_ms, "ms CPU"),
            "postgres_cpu_ms_per_bundle": metric(
                [r.cpu["postgres_cores"] / r.per_s * 1000 for r in runs], "ms CPU"
            ),
            "floor_parse_validate_bundles_per_s": metric(floor_rates, "bundles/s"),
            "floor_validate_only_bundles_per_s": metric(validate_rates, "bundles/s"),
            "intake_over_floor": metric(ratios, "ratio", 3),
            "floor_cpu_us_per_bundle": metric([f["cpu_us"] for f in floors], "µs CPU"),
            "server_cpu_over_floor_cpu": metric(
                [ms * 1000 / floor_cpu_us for ms in server_ms], "ratio"
            ),
            "validate_us_per_bundle_1proc": metric([s["validate_us"] for s in single], "µs"),
            "load_json_us_per_bundle_1proc": metric([s["load_json_us"] for s in single], "µs"),
            "validate_us_per_bundle_parallel": metric([f["validate_us"] for f in floors], "µs"),
        },
        "cpu_during_intake_runs": [run.cpu for run in runs],
        "warmup": {"bundles_per_s": round(warm.per_s, 1), "cpu": warm.cpu},
        "token_requests": refreshes,
        "notes": [
            "intake: bundles/s through HTTP, each answered 200 with three '201 Created' entries; "
            "elapsed includes finishing the requests in flight at the deadline",
            "floor: load_json (orjson + depth check) + validate_resource on a fresh dict per "
            "Bundle, in floor_processes processes at once; 'validate_only' excludes load_json",
            "intake_over_floor = intake / floor (parse + validate), per run",
            "server_cpu_over_floor_cpu = the server's CPU time per Bundle / the CPU time of "
            "parse + validate per Bundle: how many validations' worth of CPU one intake costs; "
            "less sensitive to other load on the machine than the rates",
            "the load generator (one asyncio process, httpx) and PostgreSQL share the same "
            "cores with the server: see cpu_during_intake_runs (cores used on average)",
        ],
    }


# The other benches keep their results in the same file, each under its own key: left as they are.
OTHER_BENCHES = ("outcomes", "deliveries")


def _keep_outcomes(path: Path, results: dict[str, Any]) -> dict[str, Any]:
    """Our results, with the other benches' (bench/outcomes.py, bench/deliveries.py) kept."""
    try:
        previous = json.loads(path.read_text())
    except (OSError, ValueError):
        previous = {}
    kept = {
        key: previous[key]
        for key in OTHER_BENCHES
        if isinstance(previous, dict) and key in previous
    }
    return {**results, **kept}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def print_table(results: dict[str, Any]) -> None:
    m = results["metrics"]
    machine = results["machine"]
    print(
        f"\nSPIS intake benchmark, {results['date']}, {machine['cpus_usable']} CPUs "
        f"({machine['cpu_model']}), Python {machine['python']}"
    )
    print(f"{'metric':<42}{'median':>10}  runs")
    for name, value in m.items():
        runs = ", ".join(f"{v:g}" for v in value["runs"])
        print(f"{name:<42}{value['median']:>10g}  [{runs}] {value['unit']}")
    cpu = results["cpu_during_intake_runs"]
    if cpu:
        last = cpu[-1]
        print(
            f"\ncores used in the last run: server {last['server_cores']} "
            f"{last['server_cores_per_process']}, postgres {last['postgres_cores']}, "
            f"load generator {last['load_generator_cores']}, other {last['other_cores']} "
            f"(busy {last['busy_cores']} of {machine['cpus_usable']})"
        )
    print(
        "the load generator and PostgreSQL run on the same cores as the server: "
        "intake is measured with less than the floor's two whole cores."
    )


if __name__ == "__main__":
    sys.exit(main())
