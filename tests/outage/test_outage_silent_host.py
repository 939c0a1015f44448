"""A database host that accepts the connection and then says nothing (a dropped route, a hung
server) costs a bounded wait, not the kernel's TCP timeout: the engine every process builds sets
libpq's `connect_timeout`, and one in the URL wins."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from referral_service import db


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that completes the TCP handshake (the kernel does) and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _connect_in_background(url: str) -> tuple[threading.Thread, list[BaseException]]:
    raised: list[BaseException] = []

    def connect() -> None:
        engine = db.make_engine(url)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except BaseException as exc:
            raised.append(exc)
        finally:
            engine.dispose()

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    return thread, raised


def test_the_default_connect_timeout_ends_a_silent_connection(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "CONNECT_TIMEOUT_S", 2)
    thread, raised = _connect_in_background(
        f"postgresql+psycopg://spis@127.0.0.1:{silent_port}/spis"
    )
    thread.join(timeout=60)  # without a connect timeout this waits for as long as we let it
    assert not thread.is_alive(), "the connection attempt is still waiting"
    assert [type(e) for e in raised] == [OperationalError]


def test_a_connect_timeout_in_the_url_wins(
    silent_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "CONNECT_TIMEOUT_S", 0)  # libpq: 0 means wait for ever
    thread, raised = _connect_in_background(
        f"postgresql+psycopg://spis@127.0.0.1:{silent_port}/spis?connect_timeout=1"
    )
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert [type(e) for e in raised] == [OperationalError]
