"""The server's CPU instructions per request (issue 12): a figure this shared, noisy machine cannot
move, for comparing one commit with another.

Throughput on these machines moves by ±15% from one minute to the next, and by 2× from one
machine to another: a change worth 2% cannot be seen in `bench/api.py`'s rates. Instructions can:
valgrind's callgrind counts every instruction the server executes, whatever else the machine is
doing (the same request, counted twice, agrees to about 0.1%).

The server is `spis serve --workers 1` under `valgrind --tool=callgrind`, counting switched off
until the requests are sent (`callgrind_control -i on`), so start-up and set-up cost nothing
counted. Each phase sends `--warmup` requests, then `--requests` one after another; the count is
every thread of the server process (the request's, the audit sealer's, the job sender's) from the
first request until 0.5 s after the last (the sender's wait and the group commit). PostgreSQL's
CPU over the same requests (its backends for our database) is read from `/proc` (clock ticks, so
coarser than the count).

The requests are `bench/api.py`'s, from the same set-up (`bench/api_setup.py`): a referral
Bundle (a new NHS number and referral id each), a read of a ServiceRequest, a search page of open
Tasks, a time bank's batch of 100 questionnaires.

    .venv/bin/python bench/instructions.py [--requests 10] [--phases intake,read,search,batch]

Writes `bench/results.json` -> "instructions". Needs PostgreSQL, Redis (as bench/api.py; else
memory://) and valgrind (`apt-get install valgrind`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import common
import httpx
from api import choose_broker, flush_broker
from api_setup import FHIR_HEADERS, Secrets, prepared, register
from cpu import Watch, cpu_sample

PHASES = ("intake", "read", "search", "batch")
SETTLE_S = 0.5  # after the last request: the job sender's wait, the audit group commit


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=10, help="counted requests per phase")
    parser.add_argument("--warmup", type=int, default=3, help="uncounted requests first")
    parser.add_argument("--phases", default=",".join(PHASES))
    parser.add_argument("--output", type=Path, default=common.RESULTS)
    args = parser.parse_args()
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases: {', '.join(sorted(unknown))}")
    return args


def postgres_cpu_s(database: str) -> float:
    """CPU seconds used so far by the backends connected to our database (bench/cpu.py)."""
    return sum(cpu_sample(Watch(server_sid=-1, database=database)).postgres.values())


class Counter:
    """callgrind_control on the server process: counting on, the requests, a dump, counting off."""

    def __init__(self, pid: int, folder: Path, database: str) -> None:
        self.pid, self.folder, self.database = pid, folder, database

    def _control(self, *args: str) -> None:
        control = [tool("callgrind_control"), *args, str(self.pid)]
        subprocess.run(control, check=True, capture_output=True)  # noqa: S603 - on our server

    def count(self, send: Callable[[int], None], requests: int) -> dict[str, float]:
        before = set(self.folder.glob("callgrind.*"))
        self._control("--zero")
        self._control("--instr=on")
        cpu = postgres_cpu_s(self.database)
        for i in range(requests):
            send(i)
        time.sleep(SETTLE_S)
        self._control("--dump")
        self._control("--instr=off")
        postgres = postgres_cpu_s(self.database) - cpu
        dumped = sorted(set(self.folder.glob("callgrind.*")) - before, key=os.path.getmtime)
        if not dumped:
            raise RuntimeError("callgrind wrote no dump")
        found = re.search(r"^(?:totals|summary): (\d+)", dumped[-1].read_text(), re.MULTILINE)
        if found is None:
            raise RuntimeError(f"no totals in {dumped[-1]}")
        return {
            "instructions_per_request": round(int(found.group(1)) / requests),
            "postgres_cpu_ms_per_request": round(postgres * 1000 / requests, 1),
        }


def senders(http: httpx.Client, base: str, tokens: dict[str, str], setup: Any) -> dict[str, Any]:
    from tests.fixtures.server import fhir_base, nhs_numbers

    fhir = fhir_base(base)
    practice = {**FHIR_HEADERS, "Authorization": f"Bearer {tokens['practice']}"}
    timebank = {**FHIR_HEADERS, "Authorization": f"Bearer {tokens['timebank']}"}
    batch = setup.batch_body.read_bytes()
    template = setup.intake_template.read_text()
    numbers = nhs_numbers(999_050_000)
    run = datetime.now(UTC).strftime("%H%M%S")

    def checked(answer: httpx.Response, kind: str) -> None:
        if answer.status_code != 200:
            raise RuntimeError(f"{kind}: {answer.status_code} {answer.text[:300]}")

    def intake(i: int) -> None:
        body = template.replace("@@NHS@@", next(numbers)).replace("@@RID@@", f"IC{run}-{i}")
        checked(http.post(fhir, content=body, headers=practice), "intake")

    def read(_: int) -> None:
        checked(http.get(f"{fhir}/{setup.service_request}", headers=practice), "read")

    def search(_: int) -> None:
        url = f"{fhir}/Task?status=requested&_count=50"
        checked(http.get(url, headers=practice), "search")

    def batch_(_: int) -> None:
        answer = http.post(fhir, content=batch, headers=timebank)
        checked(answer, "batch")
        failed = [
            e for e in answer.json()["entry"] if not e["response"]["status"].startswith("201")
        ]
        if failed:
            raise RuntimeError(f"batch: {len(failed)} entries not created")

    return {"intake": intake, "read": read, "search": search, "batch": batch_}


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"bench/instructions.py needs {name}: apt-get install valgrind git")
    return found


def commit() -> str | None:
    """The checkout's commit, and whether it had changes: what the counts are of."""
    git = [tool("git"), "-C", str(Path(__file__).resolve().parent.parent)]
    try:
        head = subprocess.run(  # noqa: S603 - git, on this checkout
            [*git, "rev-parse", "--short", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()
        changed = subprocess.run(  # noqa: S603
            [*git, "status", "--porcelain", "--untracked-files=no"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except subprocess.CalledProcessError:
        return None  # not a git checkout (an installed copy)
    return f"{head} (with uncommitted changes)" if changed else head


def main() -> int:
    from tests.fixtures.server import access_token, server_process

    args = parse_args()
    broker, note = choose_broker()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit(),
        "machine": {"cpus": os.cpu_count(), "cpu": common.cpu_model()},
        "config": {
            "workers": 1,
            "requests": args.requests,
            "warmup": args.warmup,
            "broker": broker,
            "broker_note": note,
        },
        "phases": {},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="spis-bench-instructions-") as tmp:
        folder = Path(tmp)
        wrapper = [
            tool("valgrind"),
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={folder}/callgrind.%p",
        ]
        with common.scratch_database() as url:
            flush_broker(broker)
            systems = register(url)
            keys = Secrets.new()
            env = {**keys.server_env(), "SPIS_BROKER_URL": broker}
            print("spis serve --workers 1 under callgrind ...", file=sys.stderr)
            with (
                server_process(url, env=env, startup_timeout=600, wrapper=wrapper) as server,
                prepared(server.base_url, url, systems, keys) as setup,
                httpx.Client(timeout=600) as http,
            ):
                tokens = {
                    "practice": access_token(server.base_url, systems.practice),
                    "timebank": access_token(server.base_url, systems.timebank),
                }
                send = senders(http, server.base_url, tokens, setup)
                counter = Counter(server.pid, folder, common.database_name(url))
                for phase in args.phases.split(","):
                    for i in range(args.warmup):
                        send[phase](-1 - i)
                    counted = counter.count(send[phase], args.requests)
                    results["phases"][phase] = counted
                    print(
                        f"  {phase}: {counted['instructions_per_request'] / 1e6:,.2f} M"
                        f" instructions a request, PostgreSQL"
                        f" {counted['postgres_cpu_ms_per_request']:.1f} ms CPU",
                        file=sys.stderr,
                    )
            flush_broker(broker)
    results["seconds"] = round(time.monotonic() - started)
    common.merge_results(args.output, "instructions", results)
    print(f'wrote {args.output} ("instructions") in {results["seconds"]} s', file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
