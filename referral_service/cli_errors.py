"""One-line errors for operators: what went wrong, where, and what to do about it.

Settings errors name the environment variable; database errors name the host, port, database and
user (never the password) and say whether the server refused the connection, does not know the
database or user, or could not be reached. The driver's own message is only matched, never
printed: it can quote row values.
"""

from __future__ import annotations

import errno
import socket
from urllib.parse import urlsplit

from pydantic import ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from referral_service.config import ENV_PREFIX, Settings

# (words in the driver's message, what it means). First match wins.
_CONNECTION_PROBLEMS: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("connection refused",),
        "the connection was refused: is PostgreSQL running and listening there?",
    ),
    (
        ("failed to resolve host", "name or service not known", "nodename nor servname"),
        "the host name is unknown: check the host in SPIS_DATABASE_URL",
    ),
    (
        (
            "timeout expired",
            "timed out",
            "no route to host",
            "network is unreachable",
            "server closed the connection unexpectedly",
        ),
        "the server could not be reached (no answer: a firewall, a wrong address, or it is down)",
    ),
    (
        (
            "database system is starting up",
            "database system is shutting down",
            "the database system is in recovery mode",
        ),
        "the server is starting or stopping: try again in a moment",
    ),
)


def settings_problem(exc: ValidationError) -> str:
    """`SPIS_BROKER_SLA: Input should be a valid integer...`; every problem, not the first only."""
    problems = []
    for error in exc.errors():
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["loc"]:
            message = f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: {message}"
        problems.append(message)
    return "configuration: " + "; ".join(problems)


def database_problem(exc: SQLAlchemyError, database_url: str) -> str:
    text = str(getattr(exc, "orig", None) or exc).lower()
    where = _where(database_url)
    if isinstance(exc, ArgumentError):
        return f"SPIS_DATABASE_URL is not a database URL SPIS can use ({where})"
    if "does not exist" in text and "database" in text:
        return f"cannot use {where}: that database does not exist on the server (create it, then `spis migrate`)"
    if (
        ("role" in text and "does not exist" in text)
        or "password authentication failed" in text
        or "no pg_hba.conf entry" in text
    ):
        return f"cannot use {where}: the server does not accept this user and password from here"
    if (
        "no such table" in text
        or "undefinedtable" in type(getattr(exc, "orig", None)).__name__.lower()
    ):
        return f"{where} has no SPIS tables yet: run `spis migrate`"
    if "unable to open database file" in text:
        return f"cannot open the SQLite file of {where}: check SPIS_DATABASE_URL and SPIS_VAR_DIR"
    for words, meaning in _CONNECTION_PROBLEMS:
        if any(word in text for word in words):
            return f"cannot connect to {where}: {meaning}"
    return (
        f"database error ({type(exc).__name__}) on {where}; check that SPIS_DATABASE_URL names a "
        "PostgreSQL server that is running (then `spis migrate` if it is new)"
    )


def _where(database_url: str) -> str:
    """`PostgreSQL database "spis" on 10.0.0.5:5432 as user "spis"`: no password, no query."""
    try:
        url = make_url(database_url)
    except ArgumentError:
        return "SPIS_DATABASE_URL"
    if url.get_backend_name() == "sqlite":
        return f"SQLite file {url.database}"
    user = f' as user "{url.username}"' if url.username else ""
    return f'PostgreSQL database "{url.database}" on {url.host or "localhost"}:{url.port or 5432}{user}'


def public_url_warning(settings: Settings, port: int) -> str | None:
    """`spis serve --port 18480` with SPIS_PUBLIC_BASE_URL left at its default: every client's
    token request would name the default's port in `aud` and be refused. Set explicitly, the
    public URL may differ on purpose (a proxy in front), so it is left alone."""
    if "public_base_url" in settings.model_fields_set:
        return None
    default_port = urlsplit(settings.public_base_url).port
    if default_port == port:
        return None
    return (
        f"SPIS_PUBLIC_BASE_URL is not set, so clients must name {settings.token_url} as their "
        f"token audience; serving on port {port}, set SPIS_PUBLIC_BASE_URL=http://<this host>:{port}"
    )


def listen_problem(host: str, port: int, how: str) -> str | None:
    """Why `host:port` cannot be listened on; `how` shows how to choose a port ("--port {port}")."""
    problem = _bind_error(host, port)
    if problem is None:
        return None
    if problem.errno != errno.EADDRINUSE:
        return f"cannot listen on {host}:{port}: {problem.strerror} (check --host)"
    free = next((p for p in range(port + 1, port + 50) if _bind_error(host, p) is None), None)
    choose = how.format(port=free or port + 1)
    found = f" ({free} is free)" if free else ""
    return (
        f"port {port} on {host} is already in use (another SPIS, or another program); "
        f"choose another port: `{choose}`{found}"
    )


def _bind_error(host: str, port: int) -> OSError | None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as uvicorn does: a port left in TIME_WAIT by a stopped server is free to use
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc
    return None
