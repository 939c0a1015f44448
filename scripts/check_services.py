"""Before the tests or the benchmarks: say plainly which servers (and which browser or tool) they
need and what is missing.

    check_services.py                 make test: PostgreSQL, Redis, Chromium
    check_services.py --bench         make bench: PostgreSQL, Redis (notification latency), wrk,
                                      valgrind
    check_services.py --bench-quick   make bench-quick: PostgreSQL, wrk (Redis if there)
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from urllib.parse import urlsplit

NEEDS = {
    "PostgreSQL": (
        os.environ.get("SPIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "Redis": (
        os.environ.get("SPIS_TEST_BROKER_URL", "redis://127.0.0.1:6379/0"),
        'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
    ),
}
# bench/api.py's broker: Redis when it answers here (a database of its own), else memory://.
BENCH_BROKER = os.environ.get("SPIS_BENCH_BROKER_URL", "redis://127.0.0.1:6379/11")
# The browser tests (tests/browser/) drive Debian's Chromium through Playwright, which is told
# never to download a browser of its own.
CHROMIUM = os.environ.get("SPIS_TEST_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_INSTALL = "apt-get install chromium"
# The API bench (bench/api.py) drives its HTTP load with wrk.
WRK_INSTALL = "apt-get install wrk"
# bench/instructions.py counts the server's instructions per request under callgrind.
VALGRIND_INSTALL = "apt-get install valgrind"


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def main() -> int:
    bench_quick = "--bench-quick" in sys.argv
    bench = "--bench" in sys.argv or bench_quick
    what = "make bench-quick" if bench_quick else "make bench" if bench else "make test"
    wanted = ["PostgreSQL"] if bench_quick else list(NEEDS)
    missing = [name for name in wanted if not reachable(NEEDS[name][0])]
    for name in missing:
        url, start = NEEDS[name]
        print(
            f"{what} needs {name} at {urlsplit(url).netloc}; it is not answering.", file=sys.stderr
        )
        print(f"  start it with: {start}", file=sys.stderr)
    if bench_quick and not reachable(BENCH_BROKER):
        print(
            f"{what}: Redis is not answering at {urlsplit(BENCH_BROKER).netloc}: bench/api.py will "
            "run the server with an in-memory broker and say so in its results.",
            file=sys.stderr,
        )
        print(f"  start it with: {NEEDS['Redis'][1]}", file=sys.stderr)
    if bench and shutil.which("wrk") is None:
        missing.append("wrk")
        print(f"{what} needs wrk (the HTTP load generator); it is not on PATH.", file=sys.stderr)
        print(f"  install it with: {WRK_INSTALL}", file=sys.stderr)
    if bench and not bench_quick and shutil.which("callgrind_control") is None:
        missing.append("valgrind")
        print(
            f"{what} needs valgrind (bench/instructions.py counts instructions under callgrind); "
            "it is not on PATH.",
            file=sys.stderr,
        )
        print(f"  install it with: {VALGRIND_INSTALL}", file=sys.stderr)
    if not bench and not executable(CHROMIUM):
        missing.append("Chromium")
        print(
            f"make test needs Chromium at {CHROMIUM} for the browser tests; it is not there.",
            file=sys.stderr,
        )
        print(
            f"  install Debian's with: {CHROMIUM_INSTALL} (it goes to /usr/bin/chromium;"
            " SPIS_TEST_CHROMIUM names another). The tests never download a browser.",
            file=sys.stderr,
        )
    if missing:
        print("See DEVELOPERS.md. (make demo needs none of these.)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
