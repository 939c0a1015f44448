"""Who used the cores during a run, and how much memory each server worker held, from /proc.

    watch = Watch(server_sid=server.pid, database="spis_bench_1234abcd")
    before = cpu_sample(watch); ...load...; cpu_breakdown(before, cpu_sample(watch))
    with MemorySampler(server.pid) as memory: ...load...;  memory.peak()

The server is every process in its session (`spis serve` starts one, uvicorn's workers join it);
PostgreSQL is the backends connected to our database; the load generator is this process and the
children it has waited for (wrk); `other` is the rest of the machine.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Watch:
    """What to account for: the server's processes (its session) and our database's backends."""

    server_sid: int
    database: str | None


@dataclass
class CpuSample:
    wall: float
    busy_s: float  # all CPUs, from /proc/stat
    server: dict[int, float]  # pid -> CPU seconds, for every process in the server's session
    postgres: dict[int, float]  # pid -> CPU seconds, backends connected to our database
    bench_s: float  # this process and its reaped children (wrk)


@dataclass(frozen=True)
class ProcStat:
    comm: str
    ppid: int
    sid: int
    cpu_s: float  # utime + stime


def proc_stat(pid: str | int) -> ProcStat | None:
    """One process's /proc/<pid>/stat, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, session 6, utime 14, stime 15
    return ProcStat(
        comm, int(fields[1]), int(fields[3]), (int(fields[11]) + int(fields[12])) / CLK_TCK
    )


def _cmdline(pid: str | int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _is_backend_of(pid: str, database: str) -> bool:
    """A PostgreSQL backend's title is `postgres: <cluster>: <user> <database> <client> ...`."""
    return f" {database} " in _cmdline(pid)


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
        found = proc_stat(entry)
        if found is None:
            continue
        if found.sid == watch.server_sid:
            server[int(entry)] = found.cpu_s
        elif watch.database and found.comm == "postgres" and _is_backend_of(entry, watch.database):
            postgres[int(entry)] = found.cpu_s
    t = os.times()
    bench = t.user + t.system + t.children_user + t.children_system
    return CpuSample(time.monotonic(), busy, server, postgres, bench)


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


# -- memory of the server's workers --------------------------------------------------------------


def worker_pids(supervisor: int) -> list[int]:
    """uvicorn's worker processes: the supervisor's children started by multiprocessing."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or (stat := proc_stat(entry)) is None:
            continue
        if stat.ppid == supervisor and "spawn_main" in _cmdline(entry):
            found.append(int(entry))
    return sorted(found)


def memory_kb(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) in kB from /proc/<pid>/smaps_rollup; None when the process is gone. PSS counts
    each shared page divided by the processes sharing it: what this worker really costs."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("Rss", "Pss"):
            values[name] = int(rest.split()[0])
    if "Rss" not in values:
        return None
    return values["Rss"], values.get("Pss", values["Rss"])


class MemorySampler:
    """Samples RSS and PSS of each worker every `interval` seconds while the block runs; `peak()`
    is the largest seen per worker (MB)."""

    def __init__(self, supervisor: int, interval: float = 0.5) -> None:
        self.supervisor, self.interval = supervisor, interval
        self.peaks: dict[int, dict[str, float]] = {}
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> MemorySampler:
        self._sample()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        self.samples += 1
        for pid in worker_pids(self.supervisor):
            found = memory_kb(pid)
            if found is None:
                continue
            peak = self.peaks.setdefault(pid, {"rss_mb": 0.0, "pss_mb": 0.0})
            peak["rss_mb"] = max(peak["rss_mb"], round(found[0] / 1024, 1))
            peak["pss_mb"] = max(peak["pss_mb"], round(found[1] / 1024, 1))

    def peak(self) -> dict[str, Any]:
        """Per worker (by pid) the largest RSS and PSS seen, and the largest over all workers."""
        return {
            "workers": {str(pid): value for pid, value in sorted(self.peaks.items())},
            "max_rss_mb": max((v["rss_mb"] for v in self.peaks.values()), default=0.0),
            "max_pss_mb": max((v["pss_mb"] for v in self.peaks.values()), default=0.0),
            "samples": self.samples,
        }
