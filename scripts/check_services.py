"""Before the tests: say plainly which servers they need and which are not answering."""

from __future__ import annotations

import os
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


def reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=2):
            return True
    except OSError:
        return False


def main() -> int:
    wanted = ["PostgreSQL"] if "--postgres-only" in sys.argv else list(NEEDS)
    missing = [name for name in wanted if not reachable(NEEDS[name][0])]
    for name in missing:
        url, start = NEEDS[name]
        print(
            f"make test needs {name} at {urlsplit(url).netloc}; it is not answering.",
            file=sys.stderr,
        )
        print(f"  start it with: {start}", file=sys.stderr)
    if missing:
        print("See DEVELOPERS.md. (make demo needs none of these.)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
