"""The floor: what FHIR validation alone allows on these cores, to compare intake with.

`fhir_adapters.parse.load_json` + `validate_resource` of the referral Bundles, each time on a fresh
dict, in `processes` processes at once (multiprocessing, spawned), for `duration` seconds.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import common  # noqa: F401 - puts the checkout on sys.path


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
