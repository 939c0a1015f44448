"""`spis receive` as a real process receiving real HTTP deliveries, with a key pair made by
`spis receive-keys`: what an integrator runs to try a subscription, and what SPIS's own delivery
tests can point a subscription at."""

from __future__ import annotations

import json
import queue
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc.jwk import ECKey

from referral_service.keys.jose import KeyStore
from referral_service.kit.clock import utcnow
from referral_service.kit.jwe_keys import PRIVATE_MEMBERS
from referral_service.transit.outbound import seal, webhook_headers
from tests.fixtures.notifications import TOPIC, focus_url, notification
from tests.fixtures.spis_cli import run_spis, spis_command, spis_env

pytestmark = pytest.mark.slow

LINE_WAIT_S = 60.0


@dataclass
class ReceiverKeys:
    private_file: Path
    public_jwk: dict[str, Any]
    spis_jwks_file: Path


@pytest.fixture(scope="module")
def receiver_keys(tmp_path_factory: pytest.TempPathFactory, transit_keys: KeyStore) -> ReceiverKeys:
    """A key pair from `spis receive-keys` (made once: a `spis` process takes seconds to start),
    and SPIS's JWKS as a file."""
    tmp_path = tmp_path_factory.mktemp("receiver")
    private_file = tmp_path / "receiver.jwks.json"
    made = run_spis(
        ["receive-keys", "--out", str(private_file)], spis_env(tmp_path / "var"), tmp_path
    )
    assert made.returncode == 0, made.stderr
    spis_jwks = tmp_path / "spis.jwks.json"
    spis_jwks.write_text(json.dumps(transit_keys.public_jwks()))
    (public,) = json.loads(made.stdout)["keys"]
    return ReceiverKeys(private_file, public, spis_jwks)


@dataclass
class RunningReceiver:
    url: str
    lines: queue.Queue[str]

    def next_line(self) -> str:
        return self.lines.get(timeout=LINE_WAIT_S)


@contextmanager
def spis_receive(tmp_path: Path, keys: ReceiverKeys, *flags: str) -> Iterator[RunningReceiver]:
    argv = ["receive", "--port", "0", "--key", str(keys.private_file)]
    argv += ["--spis-jwks", str(keys.spis_jwks_file), *flags]
    process = subprocess.Popen(
        spis_command(*argv),
        env=spis_env(tmp_path / "var"),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process, lines), daemon=True)
    pump.start()
    try:
        first = lines.get(timeout=LINE_WAIT_S)
        assert first.startswith("spis receive: listening on http://127.0.0.1:"), first
        yield RunningReceiver(first.split()[4], lines)
    finally:
        process.terminate()
        process.wait(timeout=30)
        pump.join(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))


def post(
    receiver: RunningReceiver,
    keys: ReceiverKeys,
    transit_keys: KeyStore,
    bundle: dict[str, Any],
    *,
    tamper: bool = False,
) -> httpx.Response:
    """A delivery as SPIS makes it: sealed to the receiver's key, the headers signed."""
    body = seal(bundle, keys.public_jwk, transit_keys).encode("ascii")
    headers = webhook_headers(str(uuid.uuid4()), body, transit_keys, utcnow())
    if tamper:
        body = body[:-2] + (b"A" if body[-2:-1] != b"A" else b"B") + body[-1:]
    headers["Content-Type"] = "application/jose"
    return httpx.post(f"{receiver.url}hooks/spis", content=body, headers=headers, timeout=30)


def test_receive_keys_writes_a_private_file_only_its_owner_reads(
    receiver_keys: ReceiverKeys,
) -> None:
    stored = json.loads(receiver_keys.private_file.read_text())["keys"][0]

    assert stat.S_IMODE(receiver_keys.private_file.stat().st_mode) == 0o600
    assert receiver_keys.public_jwk["kid"] == stored["kid"]
    assert receiver_keys.public_jwk["use"] == "enc"
    assert receiver_keys.public_jwk["alg"] == "ECDH-ES+A256KW"
    assert (receiver_keys.public_jwk["kty"], receiver_keys.public_jwk["crv"]) == ("EC", "P-384")
    assert not PRIVATE_MEMBERS & receiver_keys.public_jwk.keys()
    assert ECKey.import_key(stored).as_dict(private=False)["x"] == receiver_keys.public_jwk["x"]


def test_receive_keys_adds_the_key_to_a_client_jwks_and_never_overwrites(
    tmp_path: Path, receiver_keys: ReceiverKeys
) -> None:
    signing = ECKey.generate_key("P-384").as_dict(private=False, kid="gp-sig", use="sig")
    client_jwks = tmp_path / "client.jwks.json"
    client_jwks.write_text(json.dumps({"keys": [signing]}))
    env = spis_env(tmp_path / "var")

    merged = run_spis(
        ["receive-keys", "--out", str(tmp_path / "k2"), "--jwks", str(client_jwks)], env, tmp_path
    )
    again = run_spis(["receive-keys", "--out", str(receiver_keys.private_file)], env, tmp_path)

    assert [key["use"] for key in json.loads(merged.stdout)["keys"]] == ["enc", "sig"]
    assert again.returncode == 1
    assert "exists" in again.stderr
    assert (
        json.loads(receiver_keys.private_file.read_text())["keys"][0]["kid"]
        == (receiver_keys.public_jwk["kid"])
    )


def test_a_sealed_delivery_is_taken_printed_and_written_out(
    tmp_path: Path, receiver_keys: ReceiverKeys, transit_keys: KeyStore
) -> None:
    out = tmp_path / "notifications.jsonl"
    first = notification(number=1)
    sent = [notification("handshake", 0), first, first, notification(number=4)]

    with spis_receive(tmp_path, receiver_keys, "--out", str(out)) as receiver:
        answers = [post(receiver, receiver_keys, transit_keys, bundle) for bundle in sent]
        lines = [receiver.next_line() for _ in range(4)]

    assert [answer.status_code for answer in answers] == [200, 200, 200, 200]
    assert lines == [
        "handshake",
        f"event #1 {TOPIC} {focus_url(1)}",
        "duplicate #1",
        f"gap: expected #2, got #4 (missing #2-#3); event #4 {TOPIC} {focus_url(4)}",
    ]
    assert [json.loads(line) for line in out.read_text().splitlines()] == sent  # duplicate too


def test_a_tampered_delivery_is_answered_400_with_a_reason(
    tmp_path: Path, receiver_keys: ReceiverKeys, transit_keys: KeyStore
) -> None:
    out = tmp_path / "notifications.jsonl"

    with spis_receive(tmp_path, receiver_keys, "--out", str(out)) as receiver:
        answer = post(receiver, receiver_keys, transit_keys, notification(), tamper=True)
        line = receiver.next_line()

    assert answer.status_code == 400
    assert answer.text == "The webhook signature does not verify\n"
    assert line == "rejected: The webhook signature does not verify"
    assert not out.exists()


def test_plain_json_is_refused_unless_allowed(
    tmp_path: Path, receiver_keys: ReceiverKeys, transit_keys: KeyStore
) -> None:
    body = json.dumps(notification()).encode()
    headers = webhook_headers(str(uuid.uuid4()), body, transit_keys, utcnow())
    headers["Content-Type"] = "application/fhir+json"

    with spis_receive(tmp_path, receiver_keys) as strict:
        refused = httpx.post(strict.url, content=body, headers=headers, timeout=30)
    with spis_receive(tmp_path, receiver_keys, "--allow-plain") as relaxed:
        taken = httpx.post(relaxed.url, content=body, headers=headers, timeout=30)
        line = relaxed.next_line()

    assert refused.status_code == 400
    assert "--allow-plain" in refused.text
    assert taken.status_code == 200
    assert line == f"event #1 {TOPIC} {focus_url(1)}"


def test_gone_answers_410_to_everything(
    tmp_path: Path, receiver_keys: ReceiverKeys, transit_keys: KeyStore
) -> None:
    with spis_receive(tmp_path, receiver_keys, "--gone") as receiver:
        answer = post(receiver, receiver_keys, transit_keys, notification())
        line = receiver.next_line()

    assert answer.status_code == 410
    assert line == "answered 410 (--gone)"


def test_fail_answers_503_to_the_first_requests_then_takes_them(
    tmp_path: Path, receiver_keys: ReceiverKeys, transit_keys: KeyStore
) -> None:
    with spis_receive(tmp_path, receiver_keys, "--fail", "1") as receiver:
        first = post(receiver, receiver_keys, transit_keys, notification())
        retried = post(receiver, receiver_keys, transit_keys, notification())
        lines = [receiver.next_line(), receiver.next_line()]

    assert (first.status_code, retried.status_code) == (503, 200)
    assert lines == ["answered 503 (--fail: 1 of 1)", f"event #1 {TOPIC} {focus_url(1)}"]
