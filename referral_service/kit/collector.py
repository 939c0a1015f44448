"""Pausing Python's cyclic garbage collector through a burst of allocations.

A report reads tens of thousands of rows and builds as many tuples and tallies, which all live
until it returns and form no reference cycles: reference counting frees them. Meanwhile the cyclic
collector, counting them as new survivors, walks every object in the process again and again (a
full collection took about half the CPU of a co-production report over a board's quarter).

The pause is process-wide: keep the burst short. It only resumes a collector it paused itself, so
overlapping bursts on other threads at worst end a pause early, and a process that turned the
collector off keeps it off.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def without_cycle_collection(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        if not gc.isenabled():
            return function(*args, **kwargs)
        gc.disable()
        try:
            return function(*args, **kwargs)
        finally:
            gc.enable()

    return paused
