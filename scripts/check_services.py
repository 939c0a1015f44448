"""Before the tests: say plainly which servers (and which browser) they need and what is missing."""

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
# The browser tests (tests/browser/) drive Debian's Chromium through Playwright, which is told
# never to download a browser of its own.
CHROMIUM = os.environ.get("SPIS_TEST_CHROMIUM") or "/usr/bin/chromium"
CHROMIUM_INSTALL = "apt-get install chromium"


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
    postgres_only = "--postgres-only" in sys.argv
    # `make bench`: the notification bench needs Redis too, and no browser.
    bench = "--bench" in sys.argv
    wanted = ["PostgreSQL"] if postgres_only else list(NEEDS)
    missing = [name for name in wanted if not reachable(NEEDS[name][0])]
    for name in missing:
        url, start = NEEDS[name]
        print(
            f"make {'bench' if bench or postgres_only else 'test'} needs {name} at "
            f"{urlsplit(url).netloc}; it is not answering.",
            file=sys.stderr,
        )
        print(f"  start it with: {start}", file=sys.stderr)
    if not postgres_only and not bench and not executable(CHROMIUM):
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
