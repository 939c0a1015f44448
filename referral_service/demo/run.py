"""`spis demo`: starts SPIS on the embedded default and plays a GP practice's part over HTTP.

Each step prints what happened; nothing here reaches into the database behind the API's back
except registering the organisation and its client, which an operator does with the CLI.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import uvicorn

from referral_service.app import create_app
from referral_service.auth.service import register_client
from referral_service.config import Settings
from referral_service.db import make_engine, make_sessionmaker
from referral_service.demo.payloads import referral_bundle
from referral_service.demo.smart_client import SmartClient, load_or_create_key, public_jwks
from referral_service.migrate import upgrade
from referral_service.organisations import repository as organisations
from referral_service.organisations.models import OrgKind
from referral_service.organisations.service import register

PRACTICE_ODS = "F84001"
DEMO_NHS_NUMBER = "9990000018"


class Narrator:
    def __init__(self, total: int) -> None:
        self.total, self.done = total, 0

    @contextmanager
    def step(self, title: str) -> Iterator[Callable[[str], None]]:
        self.done += 1
        started = time.perf_counter()
        print(f"[{self.done}/{self.total}] {title} ...", flush=True)
        yield lambda line: print(f"      {line}", flush=True)
        print(f"      done in {(time.perf_counter() - started) * 1000:.0f} ms", flush=True)


def run(settings: Settings, host: str, port: int, serve_forever: bool) -> int:
    settings = settings.model_copy(update={"public_base_url": f"http://{host}:{port}"})
    narrator = Narrator(total=6)
    with narrator.step(f"Preparing the embedded database ({settings.database_url})") as say:
        upgrade(settings.database_url)
        practice_id, client_id, key = _register_practice(settings)
        say(
            f"GP practice {PRACTICE_ODS} is Organization/{practice_id}; "
            f"its system is client {client_id}"
        )
    with narrator.step(f"Starting SPIS on http://{host}:{port}") as say:
        server, thread = _start_server(settings, host, port)
        say("API, FHIR endpoint and token endpoint are up")
    gp = SmartClient(f"http://{host}:{port}", client_id, key)
    try:
        _gp_half(narrator, gp, practice_id)
        print(
            f"\nSPIS is listening at http://{host}:{port}/fhir "
            f"(CapabilityStatement: /fhir/metadata, API docs: /docs)."
        )
        if serve_forever:
            print("Press Ctrl+C to stop.", flush=True)
            thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return 0


def _gp_half(narrator: Narrator, gp: SmartClient, practice_id: str) -> None:
    with narrator.step(
        "The practice's system signs an ES384 assertion and gets an access token"
    ) as say:
        say(f"bearer token valid for {gp.seconds_left()} s")
    referral_id = f"DEMO-{datetime.now(UTC):%Y%m%d%H%M%S}"
    bundle = referral_bundle(practice_id, DEMO_NHS_NUMBER, referral_id, _now())
    with narrator.step(
        f"Posting referral {referral_id}: Patient + Consent + ServiceRequest in one transaction"
    ) as say:
        answer = _ok(gp.fhir("POST", "", bundle))
        for entry in answer["entry"]:
            say(f"{entry['response']['status']:<12} {entry['response']['location']}")
        sr_ref = "/".join(answer["entry"][2]["response"]["location"].split("/")[:2])
    with narrator.step("Following the referral: the Task SPIS opened for it") as say:
        found = _ok(gp.fhir("GET", f"Task?focus={sr_ref}&_include=Task:focus"))
        task = next(
            e["resource"] for e in found["entry"] if e["resource"]["resourceType"] == "Task"
        )
        say(f"Task/{task['id']}: status {task['status']}, owner {task['owner']['display']}")
        inbox = _ok(
            gp.fhir("GET", f"Task?requester=Organization/{practice_id}&status=requested&_count=5")
        )
        say(f"{len(inbox['entry'])} referral(s) of this practice are waiting to be routed")
    with narrator.step("Sending the same referral again (a retry after a timeout)") as say:
        again = _ok(gp.fhir("POST", "", bundle))
        say(
            "answers: "
            + ", ".join(e["response"]["status"] for e in again["entry"])
            + " — nothing duplicated"
        )


def _ok(response: Any) -> dict[str, Any]:
    if response.status_code >= 400:
        raise SystemExit(
            f"spis demo: the server answered {response.status_code}: {response.text[:500]}"
        )
    body: dict[str, Any] = response.json()
    return body


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _register_practice(settings: Settings) -> tuple[str, str, Any]:
    key = load_or_create_key(settings.var_dir / "demo" / f"{PRACTICE_ODS}.private.jwk")
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine)() as session, session.begin():
            org = organisations.by_ods(session, PRACTICE_ODS) or register(
                session, OrgKind.PRACTICE, "Rushey Green Group Practice (demo)", PRACTICE_ODS
            )
            client = register_client(session, org.id, public_jwks(key), None, name="Demo GP system")
            return org.id, client.id, key
    finally:
        engine.dispose()


def _start_server(
    settings: Settings, host: str, port: int
) -> tuple[uvicorn.Server, threading.Thread]:
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="spis-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(
                f"spis demo: the API did not start on {host}:{port} (is the port in use?)"
            )
        time.sleep(0.05)
    return server, thread
