"""The API under load (issue 12): intake, reads, search and a time bank's batch through HTTP, the
memory of each worker, against the validation floor, a peer and the targets, in one run. Run by
`make bench` (`make bench-quick`: `--quick`); writes bench/results.json -> "api". See
bench/README.md.

    .venv/bin/python bench/api.py [--quick] [--runs 3] [--no-peer]

Needs PostgreSQL (SPIS_TEST_DATABASE_URL, as for the tests; a throw-away database is created,
migrated, served by `spis serve --workers 2`, and dropped at the end, also on failure) and wrk.
Uses Redis as the broker when it answers (SPIS_BENCH_BROKER_URL, default
redis://127.0.0.1:6379/11, a database of its own, flushed at the end), else memory://.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
import orjson
from api_setup import BATCH_ENTRIES, Prepared, Secrets, Systems, prepared, register
from cpu import MemorySampler, Watch, cpu_breakdown, cpu_sample, worker_pids
from floor import measure_floor
from floor_server import floor_server
from load import WrkMissing, WrkRun, closed_loop, wrk, wrk_path
from peer import PeerUnavailable, peer_env, peer_server

BROKER_URL = os.environ.get("SPIS_BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
ORG_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"  # floor bundles need no real practice
NHS_STRIDE = 50_000  # NHS number stems per wrk thread per run
NHS_RUN_BLOCK = 2 * NHS_STRIDE  # two threads
NHS_INTAKE_STEM = 999_000_000
BATCH_WARMUP_S = 6.0  # at least: long enough for a few answers of 100 entries each
SEARCH_COUNTED = {"TOKEN": "", "COUNT": '"mode":"match"', "EXPECT": "50"}  # a full page: good

TARGETS = {
    "intake_bundles_per_s": 250.0,
    "intake_over_floor": 0.5,  # an aim: half the validation-only rate
    "intake_over_peer": 1.0,  # ahead of the peer's create rate
    "reads_per_s": 2000.0,  # aim 3,000
    "searches_per_s": 500.0,
    "batch_resources_per_s": 1500.0,
    "worker_rss_mb": 250.0,  # at most
}
READS_AIM = 3000.0
PHASES = (
    "ceiling",
    "intake",
    "intake_floor",
    "reads",
    "read_floor",
    "read_floor_audited",
    "search",
    "search_floor",
    "batch",
    "batch_floor",
)
FLOOR_PHASES = (  # not SPIS: not its memory
    "intake_floor",
    "read_floor",
    "read_floor_audited",
    "search_floor",
    "batch_floor",
)


@dataclass
class Phase:
    """One kind of load: its warm-up and its timed runs."""

    name: str
    warm: WrkRun | None = None
    runs: list[WrkRun] = field(default_factory=list)
    stored: dict[str, Any] = field(default_factory=dict)

    def all_runs(self) -> list[WrkRun]:
        return [*([self.warm] if self.warm else []), *self.runs]

    def failures(self) -> int:
        return sum(run.failures for run in self.all_runs())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="timed runs per phase")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per intake run")
    parser.add_argument("--read-duration", type=float, default=10.0, help="reads, search, peer")
    parser.add_argument("--batch-duration", type=float, default=20.0)
    parser.add_argument("--batch-connections", type=int, default=4, help="batch Bundles in flight")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of each phase first")
    parser.add_argument("--floor-duration", type=float, default=5.0, help="seconds per floor run")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--no-peer", action="store_true", help="leave out the peer")
    parser.add_argument("--output", type=Path, default=common.RESULTS)
    parser.add_argument("--quick", action="store_true", help="one short run each: ~90 s")
    parser.add_argument(
        "--only",
        type=lambda text: [name for name in text.split(",") if name],
        help=f"a probe while working: only these phases ({','.join(PHASES)}), no floor, no peer, "
        "nothing written to the results (search runs intake first, for the Tasks it finds, and "
        "search_floor intake_floor, for its rows)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy (`pip install py-spy`) records each worker during each timed run, "
        "--gil --format raw, into this folder",
    )
    args = parser.parse_args()
    if args.only and (unknown := set(args.only) - set(PHASES)):
        parser.error(f"--only: no phase {', '.join(sorted(unknown))} (phases: {', '.join(PHASES)})")
    if args.quick:
        args.runs, args.duration, args.read_duration, args.batch_duration = 1, 5.0, 4.0, 10.0
        args.warmup, args.floor_duration = 2.0, 2.0
    return args


# -- the broker ----------------------------------------------------------------------------------


def choose_broker() -> tuple[str, str | None]:
    """Redis when it answers (its database emptied first), else memory:// and why."""
    import redis

    try:
        redis.Redis.from_url(BROKER_URL, socket_timeout=2).flushdb()
    except redis.RedisError as exc:
        note = (
            f"Redis did not answer at {BROKER_URL} ({type(exc).__name__}): the server ran with "
            "SPIS_BROKER_URL=memory://, so publishing the jobs an intake queues cost nothing"
        )
        print(f"bench: {note}", file=sys.stderr)
        return "memory://", note
    return BROKER_URL, None


def flush_broker(url: str) -> None:
    if url.startswith("redis://"):
        import redis

        redis.Redis.from_url(url, socket_timeout=2).flushdb()


# -- checks in the database ----------------------------------------------------------------------


def stored_counts(database_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT type, count(*) FROM resource GROUP BY type"))
            return {str(rtype): int(n) for rtype, n in rows}
    finally:
        engine.dispose()


def check_stored(
    before: dict[str, int], after: dict[str, int], answered: int, types: list[str]
) -> dict[str, Any]:
    """Every resource answered 201 is stored: per type, rows added >= answered. More is possible
    (requests in flight when wrk stopped are committed but not counted), fewer means lost."""
    added = {rtype: after.get(rtype, 0) - before.get(rtype, 0) for rtype in types}
    lost = max(0, answered - min(added.values()))
    return {"answered_201": answered, "rows_added": added, "lost": lost}


# -- the phases ----------------------------------------------------------------------------------


def batch_created(status: int, body: bytes) -> int | None:
    """A batch-response whose every entry is 201 Created: BATCH_ENTRIES; anything else is bad."""
    if status != 200:
        return None
    answer = orjson.loads(body)
    statuses = [entry["response"]["status"] for entry in answer.get("entry", [])]
    if answer.get("type") != "batch-response" or statuses != ["201 Created"] * BATCH_ENTRIES:
        return None
    return BATCH_ENTRIES


@dataclass
class Bench:
    args: argparse.Namespace
    base_url: str
    database_url: str
    watch: Watch
    systems: Systems
    setup: Prepared
    memory: list[dict[str, Any]] = field(default_factory=list)
    _nhs_block: int = 0
    _profiled: int = 0

    def token(self, system: Any) -> str:
        from tests.fixtures.server import access_token

        return access_token(self.base_url, system)

    def measured(self, phase: str, load: Callable[[], WrkRun]) -> WrkRun:
        """One wrk run with the CPU and the workers' memory sampled around it."""
        before = cpu_sample(self.watch)
        with MemorySampler(self.watch.server_sid) as memory, self.profiled(phase):
            run = load()
        run.cpu = cpu_breakdown(before, cpu_sample(self.watch))
        run.memory = memory.peak()
        if phase not in FLOOR_PHASES:
            self.memory.append({"phase": phase, **run.memory})
        return run

    @contextlib.contextmanager
    def profiled(self, phase: str) -> Iterator[None]:
        """py-spy on every worker while the run lasts, with --profile (warm-ups too, named so)."""
        if not self.args.profile:
            yield
            return
        self.args.profile.mkdir(parents=True, exist_ok=True)
        self._profiled += 1
        spy_path = shutil.which(
            "py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}"
        )
        if spy_path is None:
            raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
        spies = [
            subprocess.Popen(  # noqa: S603 - py-spy on our own workers
                [
                    spy_path,
                    "record",
                    "--gil",
                    "--rate",
                    "250",
                    "--format",
                    "raw",
                    "--pid",
                    str(pid),
                    "--output",
                    str(self.args.profile / f"{phase}-{self._profiled}-{pid}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for pid in worker_pids(self.watch.server_sid)
        ]
        try:
            yield
        finally:
            for spy in spies:
                spy.send_signal(signal.SIGINT)  # py-spy writes what it has on SIGINT
            for spy in spies:
                spy.wait(timeout=30)

    def repeat(
        self,
        phase: Phase,
        duration: float,
        load: Callable[[float], WrkRun],
        warmup: float | None = None,
    ) -> Phase:
        seconds = self.args.warmup if warmup is None else warmup
        phase.warm = self.measured(phase.name, lambda: load(seconds))
        common.analyze(self.database_url)  # statistics of the tables the warm-up grew
        for i in range(self.args.runs):
            run = self.measured(phase.name, lambda: load(duration))
            print(
                f"  {phase.name} run {i + 1}: {run.per_s:8.1f}/s ({run.counted_per_s:.0f} counted/s),"
                f" p50 {run.p50_ms:.0f} ms, p99 {run.p99_ms:.0f} ms, failures {run.failures},"
                f" cpu {run.cpu}, worker RSS {run.memory['max_rss_mb']} MB",
                file=sys.stderr,
            )
            phase.runs.append(run)
        return phase

    def intake(self) -> Phase:
        from tests.fixtures.server import fhir_base

        def load(seconds: float) -> WrkRun:
            run = wrk("post.lua", fhir_base(self.base_url), seconds, self._intake_env())
            if run.requests > NHS_STRIDE:
                raise RuntimeError("more requests than NHS numbers set aside: raise NHS_STRIDE")
            return run

        return self.write_phase(
            Phase("intake"),
            self.args.duration,
            load,
            ["Patient", "Consent", "ServiceRequest", "Task"],
            3,
        )

    def _intake_env(self) -> dict[str, str]:
        """post.lua's settings for one intake run: a block of new NHS numbers and referral ids."""
        block = self._nhs_block
        self._nhs_block += 1
        return {
            "BODY_FILE": str(self.setup.intake_template),
            "PATH_": "/fhir",
            "TOKEN": self.token(self.systems.practice),
            "NHS_START": str(NHS_INTAKE_STEM + block * NHS_RUN_BLOCK),
            "NHS_STRIDE": str(NHS_STRIDE),
            "RID_PREFIX": f"BENCH{block}-{secrets.token_hex(3)}",
            "COUNT": "201 Created",
            "EXPECT": "3",  # Patient, Consent, ServiceRequest (the Task SPIS adds is not one)
        }

    def batch(self) -> Phase:
        from tests.fixtures.server import fhir_base

        def load(seconds: float) -> WrkRun:
            token = self.token(self.systems.timebank)
            return self._post_batches(fhir_base(self.base_url), seconds, token)

        return self.write_phase(
            Phase("batch"),
            self.args.batch_duration,
            load,
            ["QuestionnaireResponse", "Observation"],
            1,
            self._batch_warmup(),
        )

    def _post_batches(self, url: str, seconds: float, token: str | None) -> WrkRun:
        """The time bank's batch Bundle POSTed by `--batch-connections` clients in a closed
        loop; each answer counts its entries answered 201."""
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        body = self.setup.batch_body.read_bytes()
        return closed_loop(url, body, headers, self.args.batch_connections, seconds, batch_created)

    def _batch_warmup(self) -> float:
        return max(float(self.args.warmup), BATCH_WARMUP_S)

    def write_phase(
        self,
        phase: Phase,
        duration: float,
        load: Callable[[float], WrkRun],
        types: list[str],
        per_type: int,
        warmup: float | None = None,
    ) -> Phase:
        """A phase that writes: then what was answered 201 is looked for in the database, each
        `per_type` entries answered 201 making one row of each of `types`."""
        before = stored_counts(self.database_url)
        self.repeat(phase, duration, load, warmup)
        after = stored_counts(self.database_url)
        answered = sum(run.counted for run in phase.all_runs()) // per_type
        phase.stored = check_stored(before, after, answered, types)
        return phase

    def reads(self) -> Phase:
        from tests.fixtures.server import fhir_base

        url = f"{fhir_base(self.base_url)}/{self.setup.service_request}"

        def load(seconds: float) -> WrkRun:
            env = {
                "TOKEN": self.token(self.systems.practice),
                "COUNT": '"resourceType":"ServiceRequest"',
                "EXPECT": "1",
            }
            return wrk("get.lua", url, seconds, env)

        return self.repeat(Phase("reads"), self.args.read_duration, load)

    def intake_floor(self) -> Phase:
        """The intake's Bundles (as wrk sends them to SPIS) by plain FastAPI (bench/floor_app):
        validated as SPIS validates them, their resources INSERTed in one transaction."""
        return self._floor_phase(
            "intake_floor",
            self.args.duration,
            lambda url, seconds: wrk(
                "post.lua", url, seconds, {**self._intake_env(), "PATH_": "/bundle"}
            ),
        )

    def read_floor(self) -> Phase:
        """The row the reads read, by plain FastAPI: one SELECT, nothing else."""
        return self._read_floor("read_floor", "select")

    def read_floor_audited(self) -> Phase:
        """The same, with an INSERT naming the row committed before each answer."""
        return self._read_floor("read_floor_audited", "audited")

    def search_floor(self) -> Phase:
        """A page of 50 of the ServiceRequests the intake floor stored, by plain FastAPI: one
        SELECT, the stored JSON put in a searchset as it is."""
        return self._floor_phase(
            "search_floor",
            self.args.read_duration,
            lambda url, seconds: wrk(
                "get.lua", url + "/search/ServiceRequest", seconds, SEARCH_COUNTED
            ),
        )

    def batch_floor(self) -> Phase:
        """The time bank's batch Bundle, by plain FastAPI: validated as SPIS validates it, its
        100 QuestionnaireResponses INSERTed as JSON in one transaction."""
        return self._floor_phase(
            "batch_floor",
            self.args.batch_duration,
            lambda url, seconds: self._post_batches(url + "/bundle", seconds, None),
            self._batch_warmup(),
        )

    def _read_floor(self, name: str, route: str) -> Phase:
        path = f"/{route}/{self._read_id()}"
        return self._floor_phase(
            name,
            self.args.read_duration,
            lambda url, seconds: wrk("get.lua", url + path, seconds, {"TOKEN": ""}),
        )

    def _read_id(self) -> str:
        """The id of the ServiceRequest the reads read (`setup.service_request` is its ref)."""
        return self.setup.service_request.split("/", 1)[1]

    def _floor_phase(
        self,
        name: str,
        duration: float,
        load: Callable[[str, float], WrkRun],
        warmup: float | None = None,
    ) -> Phase:
        """A phase against the floor app (bench/floor_app/floor_app.py), SPIS idle meanwhile; its
        CPU is the floor server's, its memory left out of SPIS's."""
        with floor_server(self.database_url, self._read_id(), self.args.workers) as floor:
            ours, self.watch = self.watch, Watch(floor.pid, self.watch.database)
            try:
                return self.repeat(
                    Phase(name), duration, lambda seconds: load(floor.base_url, seconds), warmup
                )
            finally:
                self.watch = ours

    def ceiling(self) -> Phase:
        """GET /healthz through the same server: uvicorn, the middleware, routing and the access
        log, no database and no token. What any request of the API costs at least."""

        def load(seconds: float) -> WrkRun:
            env = {"TOKEN": "", "COUNT": '"status":"ok"', "EXPECT": "1"}
            return wrk("get.lua", f"{self.base_url}/healthz", seconds, env)

        return self.repeat(Phase("ceiling"), self.args.read_duration, load)

    def search(self) -> Phase:
        from tests.fixtures.server import fhir_base

        url = f"{fhir_base(self.base_url)}/Task?status=requested&_count=50"

        def load(seconds: float) -> WrkRun:
            env = {**SEARCH_COUNTED, "TOKEN": self.token(self.systems.practice)}
            return wrk("get.lua", url, seconds, env)

        return self.repeat(Phase("search"), self.args.read_duration, load)


def measure_peer(args: argparse.Namespace) -> dict[str, Any]:
    """The peer's ServiceRequest create rate, with its own warm-up, before SPIS starts."""
    from tests.fixtures.server import free_port

    if args.no_peer:
        return {"skipped": "--no-peer"}
    print("peer: fhirstarter, 2 workers ...", file=sys.stderr)
    try:
        with peer_server(free_port()) as peer:
            watch = Watch(peer.pid, None)
            url = f"{peer.base_url}/ServiceRequest"
            runs = []
            for seconds in [args.warmup] + [args.read_duration] * args.runs:
                before = cpu_sample(watch)
                with MemorySampler(peer.pid) as memory:
                    run = wrk("post.lua", url, seconds, peer_env())
                run.cpu = cpu_breakdown(before, cpu_sample(watch))
                run.memory = memory.peak()
                runs.append(run)
    except PeerUnavailable as exc:
        print(f"bench: the peer was not measured: {exc}", file=sys.stderr)
        return {"skipped": str(exc)}
    warm, timed = runs[0], runs[1:]
    for i, run in enumerate(timed):
        print(
            f"  peer run {i + 1}: {run.per_s:8.1f}/s, p50 {run.p50_ms:.0f} ms, cpu {run.cpu}",
            file=sys.stderr,
        )
    return {
        "server": "fhirstarter (bench/peer/peer_fhirstarter.py), uvicorn --workers 2, "
        "no access log, in-memory dict store",
        "creates_per_s": common.metric([r.per_s for r in timed], "ServiceRequests/s"),
        "p50_ms": common.metric([r.p50_ms for r in timed], "ms"),
        "p99_ms": common.metric([r.p99_ms for r in timed], "ms"),
        "warmup": warm.summary(),
        "runs": [r.summary() for r in timed],
        "failures": sum(r.failures for r in runs),
    }


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` drops the database
    try:
        wrk_path()
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    began = time.monotonic()
    load_before = os.getloadavg()
    if args.only:
        return probe(args)
    floors, single = run_floor(args)
    peer = measure_peer(args)
    broker, broker_note = choose_broker()
    try:
        phases, memory, server_log = run_spis(args, broker, PHASES)
    finally:
        flush_broker(broker)
    results = build_results(
        args, load_before, floors, single, peer, phases, memory, broker, broker_note
    )
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    restarts = [
        line
        for line in server_log.splitlines()
        if "HTTP/1.1" not in line and ("died" in line or "was not ready" in line)
    ]
    results["server_worker_restarts"] = restarts
    failures = {name: p.failures() for name, p in phases.items() if p.failures()}
    lost = {name: p.stored["lost"] for name, p in phases.items() if p.stored.get("lost")}
    if failures or lost or peer.get("failures"):
        results["server_log_tail"] = server_log[-3000:]
    common.merge_results(args.output, "api", results)
    print_table(results)
    print(f'\nwrote {args.output} ("api") in {results["wall_seconds"]:.0f} s', file=sys.stderr)
    if failures or lost:
        print(f"bench: failed requests {failures}, lost writes {lost}", file=sys.stderr)
        return 1
    return 0


def probe(args: argparse.Namespace) -> int:
    """--only: the phases asked for, their per-run lines, nothing written."""
    first = {"intake": "search", "intake_floor": "search_floor"}  # what the search finds
    names = [name for name in PHASES if name in args.only or first.get(name) in args.only]
    broker, _ = choose_broker()
    try:
        phases, _, _ = run_spis(args, broker, tuple(names))
    finally:
        flush_broker(broker)
    bad = {name: p.failures() for name, p in phases.items() if p.failures()}
    bad.update({name: p.stored["lost"] for name, p in phases.items() if p.stored.get("lost")})
    print(f"probe only, nothing written; failures or lost: {bad or 'none'}", file=sys.stderr)
    return 1 if bad else 0


def run_floor(args: argparse.Namespace) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    from tests.fixtures.server import referral_bundles

    bodies = [
        orjson.dumps(b)
        for b in referral_bundles(ORG_PLACEHOLDER, 200, prefix="FLOOR", nhs_start=999_500_000)
    ]
    print("floor: validation alone in 2 processes, then 1 ...", file=sys.stderr)
    floors = [measure_floor(bodies, 2, args.floor_duration) for _ in range(args.runs)]
    single = [measure_floor(bodies, 1, args.floor_duration) for _ in range(args.runs)]
    return floors, single


def run_spis(
    args: argparse.Namespace, broker: str, names: tuple[str, ...]
) -> tuple[dict[str, Phase], list[dict[str, Any]], str]:
    from tests.fixtures.server import server_process

    with common.scratch_database() as url:
        systems = register(url)
        keys = Secrets.new()
        env = {**keys.server_env(), "SPIS_BROKER_URL": broker}
        print(f"spis serve --workers {args.workers} (broker {broker}) ...", file=sys.stderr)
        with server_process(url, workers=args.workers, env=env) as server:
            with prepared(server.base_url, url, systems, keys) as setup:
                watch = Watch(server.pid, common.database_name(url))
                bench = Bench(args, server.base_url, url, watch, systems, setup)
                phases = {}
                for name in names:
                    print(f"{name} ...", file=sys.stderr)
                    phases[name] = getattr(bench, name)()
            server_log = server.log_path.read_text(errors="replace")
    return phases, bench.memory, server_log


# -- results -------------------------------------------------------------------------------------


def _rates(phase: Phase) -> list[float]:
    return [run.per_s for run in phase.runs]


def _phase_metrics(phase: Phase, unit: str) -> dict[str, Any]:
    runs = phase.runs
    return {
        f"{phase.name}_per_s": common.metric(_rates(phase), unit),
        f"{phase.name}_p50_ms": common.metric([r.p50_ms for r in runs], "ms"),
        f"{phase.name}_p99_ms": common.metric([r.p99_ms for r in runs], "ms"),
        f"{phase.name}_server_cpu_ms": common.metric(
            [r.cpu["server_cores"] / r.per_s * 1000 for r in runs if r.per_s], "ms CPU per request"
        ),
        f"{phase.name}_postgres_cpu_ms": common.metric(
            [r.cpu["postgres_cores"] / r.per_s * 1000 for r in runs if r.per_s],
            "ms CPU per request",
        ),
    }


def build_results(
    args: argparse.Namespace,
    load_before: tuple[float, float, float],
    floors: list[dict[str, float]],
    single: list[dict[str, float]],
    peer: dict[str, Any],
    phases: dict[str, Phase],
    memory: list[dict[str, Any]],
    broker: str,
    broker_note: str | None,
) -> dict[str, Any]:
    intake, batch = phases["intake"], phases["batch"]
    intake_rates = _rates(intake)
    floor_rates = [f["parse_validate_per_s"] for f in floors]
    floor_cpu_us = statistics.median(f["cpu_us"] for f in floors)
    metrics = {
        **_phase_metrics(intake, "bundles/s"),
        "intake_over_floor": common.metric(
            [i / f for i, f in zip(intake_rates, floor_rates, strict=True)], "ratio", 3
        ),
        "server_cpu_over_floor_cpu": common.metric(
            [r.cpu["server_cores"] / r.per_s * 1e6 / floor_cpu_us for r in intake.runs if r.per_s],
            "ratio",
        ),
        "floor_parse_validate_bundles_per_s": common.metric(floor_rates, "bundles/s"),
        "floor_validate_only_bundles_per_s": common.metric(
            [f["validate_only_per_s"] for f in floors], "bundles/s"
        ),
        "floor_cpu_us_per_bundle": common.metric([f["cpu_us"] for f in floors], "µs CPU"),
        "validate_us_per_bundle_1proc": common.metric([s["validate_us"] for s in single], "µs"),
        "load_json_us_per_bundle_1proc": common.metric([s["load_json_us"] for s in single], "µs"),
        **_phase_metrics(phases["ceiling"], "answers/s"),
        **_phase_metrics(phases["intake_floor"], "bundles/s"),
        **_phase_metrics(phases["reads"], "reads/s"),
        **_phase_metrics(phases["read_floor"], "reads/s"),
        **_phase_metrics(phases["read_floor_audited"], "reads/s"),
        **_phase_metrics(phases["search"], "searches/s"),
        **_phase_metrics(phases["search_floor"], "searches/s"),
        **_phase_metrics(batch, "bundles/s"),
        "batch_resources_per_s": _batch_resources(batch),
        **_phase_metrics(phases["batch_floor"], "bundles/s"),
        "batch_floor_resources_per_s": _batch_resources(phases["batch_floor"]),
    }
    worst = _memory_peaks(memory)
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": common.machine(load_before),
        "config": {
            "server": f"spis serve --workers {args.workers} (uvicorn, access log on, as deployed)",
            "broker": broker,
            **({"broker_note": broker_note} if broker_note else {}),
            "database": f"PostgreSQL, a fresh database on {common.admin_url_shown()}",
            "statistics": "ANALYZE after each warm-up, as autovacuum does for a server that has"
            " run a while (autovacuum on this server: "
            f"{'on' if common.autovacuum_on(common.ADMIN_URL) else 'off'})",
            "load": "wrk -t2 -c16 (bench/wrk/*.lua), a new token before each run",
            "runs": args.runs,
            "seconds": {
                "warmup": args.warmup,
                "intake": args.duration,
                "reads_search_peer": args.read_duration,
                "batch": args.batch_duration,
                "floor": args.floor_duration,
            },
        },
        "metrics": metrics,
        "memory": {"per_worker_max": worst, "per_phase": memory},
        "peer": peer,
        "targets": targets(metrics, peer, worst),
        "phases": {
            name: {
                "warmup": p.warm.summary() if p.warm else None,
                "runs": [r.summary() for r in p.runs],
                **({"stored": p.stored} if p.stored else {}),
            }
            for name, p in phases.items()
        },
        "notes": NOTES,
    }


def _batch_resources(phase: Phase) -> dict[str, Any]:
    return common.metric([r.counted_per_s for r in phase.runs], "entries answered 201 per s")


def _memory_peaks(memory: list[dict[str, Any]]) -> dict[str, Any]:
    """The largest RSS and PSS of each worker over every phase (a worker restarted shows as a new
    pid)."""
    workers: dict[str, dict[str, float]] = {}
    for sample in memory:
        for pid, value in sample["workers"].items():
            peak = workers.setdefault(pid, {"rss_mb": 0.0, "pss_mb": 0.0})
            peak["rss_mb"] = max(peak["rss_mb"], value["rss_mb"])
            peak["pss_mb"] = max(peak["pss_mb"], value["pss_mb"])
    return {
        "workers": workers,
        "max_rss_mb": max((w["rss_mb"] for w in workers.values()), default=0.0),
        "max_pss_mb": max((w["pss_mb"] for w in workers.values()), default=0.0),
    }


def _target(
    figure: str,
    value: float,
    unit: str,
    reference: str,
    against: float | None,
    needed: float = 1.0,
    *,
    at_most: bool = False,
) -> dict[str, Any]:
    """`value` / `against` is the ratio; met when it is at least `needed` (at most, for memory)."""
    ratio = value / against if against else None
    met = None if ratio is None else (ratio <= needed if at_most else ratio >= needed)
    return {
        "figure": figure,
        "value": round(value, 1),
        "unit": unit,
        "reference": reference,
        "reference_value": None if against is None else round(against, 1),
        "ratio": None if ratio is None else round(ratio, 3),
        "ratio_needed": f"{'<=' if at_most else '>='} {needed:g}",
        "met": met,
    }


def targets(
    metrics: dict[str, Any], peer: dict[str, Any], memory: dict[str, Any]
) -> list[dict[str, Any]]:
    """Each figure beside what it is held against, the ratio, and whether it meets the issue's
    target or aim."""
    intake = metrics["intake_per_s"]["median"]
    floor = metrics["floor_parse_validate_bundles_per_s"]["median"]
    peer_rate = peer["creates_per_s"]["median"] if "creates_per_s" in peer else None
    return [
        _target("intake", intake, "bundles/s", "target", TARGETS["intake_bundles_per_s"]),
        _target(
            "intake vs floor",
            intake,
            "bundles/s",
            "floor (parse + validate)",
            floor,
            TARGETS["intake_over_floor"],
        ),
        _target("intake vs peer", intake, "bundles/s", "peer creates", peer_rate),
        _target(
            "reads",
            metrics["reads_per_s"]["median"],
            "reads/s",
            f"target (aim {READS_AIM:,.0f})",
            TARGETS["reads_per_s"],
        ),
        _target(
            "search, 50 a page",
            metrics["search_per_s"]["median"],
            "searches/s",
            "target",
            TARGETS["searches_per_s"],
        ),
        _target(
            "batch ingest",
            metrics["batch_resources_per_s"]["median"],
            "resources/s",
            "target",
            TARGETS["batch_resources_per_s"],
        ),
        _target(
            "worker memory, max",
            memory["max_rss_mb"],
            "MB RSS",
            "target",
            TARGETS["worker_rss_mb"],
            at_most=True,
        ),
    ]


NOTES = [
    "every figure is the median of its runs (metrics.*.runs); wrk counts only the answers that "
    "finished inside the run, and only good answers count in the rates",
    "intake: each answer 200 with three '201 Created' entries (Patient, Consent, ServiceRequest; "
    "SPIS adds the Task); a new NHS number and referral identifier per request",
    "floor: fhir_adapters load_json + validate_resource of the same Bundle in 2 processes at "
    "once, nothing else of ours running; the aim is intake / floor >= 0.5",
    "ceiling: GET /healthz through the same server (uvicorn, the middleware, routing, the access "
    'log; no database, no token), each answer {"status": "ok"}: what any request costs at '
    "least on these cores, so what reads and search can approach",
    "reads: GET /fhir/ServiceRequest/<id> by the practice that wrote it (audited, consent- and "
    "tenant-checked), each answer a ServiceRequest",
    "intake floor: the intake's Bundles (new NHS numbers and ids, as wrk sends them to SPIS) by "
    "plain FastAPI on uvicorn with the same worker count (bench/floor_app/floor_app.py, POST "
    "/bundle): fhir_adapters load_json + validate_resource as the validation floor, then each "
    "entry's resource INSERTed as JSON in one transaction, committed before the answer; no "
    "token, consent, reference or resubmission check, encryption, search index, audit or job",
    "read floor: the row reads read, by plain FastAPI on uvicorn with the same worker count "
    "(bench/floor_app/floor_app.py; no access log, no middleware, psycopg's async pool): "
    "read_floor one prepared SELECT by primary key and the sealed body sent back as it is, with "
    "no token, tenancy, consent, decryption or audit; read_floor_audited that SELECT and one "
    "INSERT naming the row, committed before each answer. No read through FastAPI and "
    "PostgreSQL on these cores is faster than read_floor",
    "search: GET /fhir/Task?status=requested&_count=50 by the practice, after intake stored "
    "thousands of its Tasks; each answer must hold 50 matches",
    "search floor: GET /search/ServiceRequest of plain FastAPI (bench/floor_app/floor_app.py, "
    "same worker count, no access log or middleware): one prepared SELECT of 51 of the rows the "
    "intake floor stored, by type in primary-key order, the first 50 put as stored into a "
    "searchset Bundle; no token, tenancy, consent, search index, decryption or audit. Each "
    "answer must hold 50 matches",
    "batch: a time bank POSTs a batch Bundle of 100 QuestionnaireResponses (SWEMWBS and UCLA-3) "
    "about referrals routed to it; each entry answered 201 counts as one resource, and SPIS "
    "stores with it the score Observation it derives. Time banks cannot POST Observations or "
    "Procedures: SPIS writes those from questionnaires and the ledger (docs/api.md)",
    "batch floor: the same batch Bundle POSTed to plain FastAPI (bench/floor_app/floor_app.py, "
    "POST /bundle) by the same closed loop: validated as SPIS validates it, its 100 "
    "QuestionnaireResponses INSERTed as JSON in one transaction, committed before a "
    "batch-response of 100 '201 Created'; no token, consent, reference check, encryption, "
    "search index, derived Observation, audit or job",
    "stored: after each write phase, rows added per type in the database >= entries answered "
    "201 (more when requests in flight at wrk's end were committed); lost > 0 fails the bench",
    "memory: RSS and PSS (/proc/<pid>/smaps_rollup) of each uvicorn worker, sampled twice a "
    "second during every run; the target is held against the largest RSS",
    "cpu: cores used on average by the server, PostgreSQL, the load generator (wrk) and the rest "
    "of the machine during each run (phases.*.runs[].cpu): the load shares the two cores",
]


# -- the table -----------------------------------------------------------------------------------


def print_table(results: dict[str, Any]) -> None:
    machine = results["machine"]
    config = results["config"]
    print(
        f"\nSPIS API under load, {results['date']}{' (quick)' if results['quick'] else ''}: "
        f"{machine['cpus_usable']} CPUs ({machine['cpu_model']}), broker {config['broker']}"
    )
    print(f"{'figure':<20}{'value':>20}  {'held against':<32}{'ratio':>7}{'needed':>8}  met")
    for row in results["targets"]:
        value = f"{row['value']:,.1f} {row['unit']}"
        if row["reference_value"] is None:
            against, ratio, met = f"{row['reference']}: not measured", "-", "-"
        else:
            against = f"{row['reference']} {row['reference_value']:,.1f}"
            ratio, met = f"{row['ratio']:.2f}", "yes" if row["met"] else "NO"
        print(
            f"{row['figure']:<20}{value:>20}  {against:<32}{ratio:>7}{row['ratio_needed']:>8}"
            f"  {met}"
        )
    m = results["metrics"]
    ceiling, reads = m["ceiling_per_s"]["median"], m["reads_per_s"]["median"]
    print(
        f"framework ceiling (GET /healthz, same server, no database): {ceiling:,.0f}/s; reads "
        f"are {reads / ceiling:.0%} of it"
        if ceiling
        else "framework ceiling: no answers"
    )
    _floor_line(
        "intake floor (plain FastAPI: the same Bundles validated as SPIS does, their resources "
        "INSERTed in one transaction; no token, checks, encryption, index, audit or job)",
        m["intake_per_s"]["median"],
        m["intake_floor_per_s"]["median"],
        "intake",
        TARGETS["intake_bundles_per_s"],
    )
    floor, audited = m["read_floor_per_s"]["median"], m["read_floor_audited_per_s"]["median"]
    if floor and audited:
        print(
            f"read floor (plain FastAPI, one SELECT of the same row; no token, tenancy, consent, "
            f"decryption or audit): {floor:,.0f}/s; with one audit INSERT committed a read: "
            f"{audited:,.0f}/s. Reads are {reads / floor:.0%} and {reads / audited:.0%} of them; "
            f"the reads target ({TARGETS['reads_per_s']:,.0f}/s) is "
            f"{TARGETS['reads_per_s'] / floor:.0%} of the floor"
        )
    _floor_line(
        "search floor (plain FastAPI: one SELECT of 51 stored JSON rows, 50 put in a searchset; "
        "no token, tenancy, consent, index, decryption or audit)",
        m["search_per_s"]["median"],
        m["search_floor_per_s"]["median"],
        "search",
        TARGETS["searches_per_s"],
    )
    _floor_line(
        "batch floor (plain FastAPI: the same batch validated as SPIS does, its 100 resources "
        "INSERTed in one transaction; no token, checks, encryption, index, Observation, audit or "
        "job), resources",
        m["batch_resources_per_s"]["median"],
        m["batch_floor_resources_per_s"]["median"],
        "batch",
        TARGETS["batch_resources_per_s"],
    )
    print(
        f"latency p50/p99 ms: intake {m['intake_p50_ms']['median']:g}/{m['intake_p99_ms']['median']:g}"
        f", reads {m['reads_p50_ms']['median']:g}/{m['reads_p99_ms']['median']:g}"
        f", search {m['search_p50_ms']['median']:g}/{m['search_p99_ms']['median']:g}"
        f", batch {m['batch_p50_ms']['median']:g}/{m['batch_p99_ms']['median']:g}"
    )
    memory = results["memory"]["per_worker_max"]
    print(
        "worker memory max (RSS/PSS MB): "
        + ", ".join(
            f"{pid}: {v['rss_mb']:g}/{v['pss_mb']:g}" for pid, v in memory["workers"].items()
        )
    )
    print("cores used in the last run of each phase, and CPU per request (median of the runs):")
    for name, phase in results["phases"].items():
        last = phase["runs"][-1]["cpu"]
        print(
            f"  {name:<7} server {last['server_cores']} {last['server_cores_per_process']}, "
            f"postgres {last['postgres_cores']}, load {last['load_generator_cores']}, other "
            f"{last['other_cores']} (busy {last['busy_cores']}); "
            f"server {m[name + '_server_cpu_ms']['median']:g} ms, "
            f"postgres {m[name + '_postgres_cpu_ms']['median']:g} ms"
        )
    for name, phase in results["phases"].items():
        if stored := phase.get("stored"):
            print(
                f"  {name:<7} stored {stored['rows_added']} for {stored['answered_201']} "
                f"answered 201: lost {stored['lost']}"
            )
    if "broker_note" in config:
        print(f"note: {config['broker_note']}")


def _floor_line(label: str, ours: float, floor: float, what: str, target: float) -> None:
    """The table's line for a floor: its rate, the share of it SPIS reaches and the target asks."""
    if floor:
        print(
            f"{label}: {floor:,.0f}/s. The {what} phase is {ours / floor:.0%} of it; the {what} "
            f"target ({target:,.0f}/s) is {target / floor:.0%} of it"
        )


if __name__ == "__main__":
    sys.exit(main())
