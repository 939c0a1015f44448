"""`spis demo`: starts SPIS on the embedded default (SQLite, on-disk broker, its own worker) and
plays every part over HTTP: the GP practice, the time bank that declines, the one that accepts.

Nothing here reaches into the database behind the API's back, except registering organisations
and their systems, which an operator does with the CLI.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import uvicorn

from referral_service.app import create_app
from referral_service.config import Settings
from referral_service.demo import board, notifications, story
from referral_service.demo.setup import Cast, prepare
from referral_service.demo.signins import describe, prepare_signins
from referral_service.demo.smart_client import SmartClient
from referral_service.embedded import embedded_worker
from referral_service.migrate import upgrade


def run(settings: Settings, host: str, port: int, serve_forever: bool) -> int:
    base = f"http://{host}:{port}"
    settings = settings.model_copy(update=_demo_settings(settings, base))
    narrator = story.Narrator(total=16)
    with narrator.step(f"Setting up the embedded store ({settings.database_url})") as say:
        upgrade(settings.database_url)
        cast = prepare(settings)
        signins = prepare_signins(settings, cast)
        say(f"GP practice F84001, {cast.catford.name} and {cast.lewisham.name} are registered")
        say(f"{len(signins)} people can sign in to the web workspace (listed at the end)")
    with embedded_worker(settings):
        with narrator.step(f"Starting SPIS on {base} with its background worker") as say:
            server, thread = _start_server(settings, host, port)
            say(
                f"FHIR API, token endpoint, ledger API and worker are up "
                f"(worker log: {settings.var_dir / 'logs' / 'worker.log'})"
            )
        gp_receiver = notifications.start(settings, base, cast.practice)
        try:
            notifications.subscribe(narrator, gp_receiver)
            _play(narrator, cast, base)
            notifications.report(narrator, gp_receiver)
            tables = _board_report(narrator, settings, cast)
            print("", *describe(signins, f"{base}/", settings.web_second_factor), sep="\n")
            print("", *tables, sep="\n", flush=True)
            if serve_forever:
                print(
                    f"\nSPIS is listening at {base}/fhir "
                    f"(CapabilityStatement: {base}/fhir/metadata, API docs: {base}/docs).\n"
                    "Press Ctrl+C to stop.",
                    flush=True,
                )
                thread.join()
            else:
                print(
                    f"\nDone; SPIS has stopped (--no-serve). The data stays in {settings.var_dir}: "
                    "`spis serve` serves it again.",
                    flush=True,
                )
        except KeyboardInterrupt:
            pass
        finally:
            gp_receiver.stop()
            server.should_exit = True
            thread.join(timeout=10)
    return 0


def _demo_settings(settings: Settings, base: str) -> dict[str, object]:
    """The demo serves on its own address; in development its sign-ins need no second factor
    (production refuses that, and the demo's people are refused there too)."""
    # The GP system's receiver listens on 127.0.0.1: allowed here, as SPIS refuses such
    # endpoints by default (SSRF).
    update: dict[str, object] = {"public_base_url": base, "delivery_allowed_hosts": "127.0.0.1"}
    if settings.environment == "development":
        update["web_second_factor"] = "optional"
    return update


def _play(narrator: story.Narrator, cast: Cast, base: str) -> None:
    gp, catford, lewisham = (
        SmartClient(base, system.client_id, system.key)
        for system in (cast.practice, cast.catford, cast.lewisham)
    )
    _, service_request, referral_task = story.refer(narrator, gp, cast.practice.org_id)
    child = story.routing(
        narrator, gp, catford, cast.catford.org_id, lewisham, cast.lewisham.org_id, referral_task
    )
    story.engagement(narrator, lewisham, cast.lewisham.org_id, child)
    story.gp_view(narrator, gp, service_request, referral_task)


def _board_report(narrator: story.Narrator, settings: Settings, cast: Cast) -> list[str]:
    """The health board's part: its area, synthetic referrals to report on, its reports."""
    with narrator.step("Health board: its area, and referrals enough to report on") as say:
        board_id = board.place(settings, cast)
        say(
            f"{board.BOARD_NAME} ({board.BOARD_ODS}): {cast.practice.name}, {cast.catford.name} "
            f"and {cast.lewisham.name} are in its area"
        )
        board.load_synthetic(settings, cast, say)
    start, end = board.period(datetime.now(UTC).date())
    with narrator.step(
        f"Health board: its outcome reports, {start:%-d %B %Y} to {end:%-d %B %Y}"
    ) as say:
        board.enter_cost(settings, board_id, start, end)
        say(f"the board enters its programme cost: £{board.DEMO_COST_PENCE // 100:,} (made up)")
        tables = board.reports(settings, board_id, start, end)
        say(
            "the figures include the SYNTHETIC referrals above; every cell passed disclosure control"
        )
        say(f"printed below, after the sign-ins (`spis outcomes report --board {board_id} ...`)")
    return [f"=== Health board report (includes SYNTHETIC data) ===\n\n{table}" for table in tables]


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
                f"spis demo: the API did not start on {host}:{port} (is the port in use? choose "
                f"another: `make demo PORT={port + 1}` or `spis demo --port {port + 1}`)"
            )
        time.sleep(0.05)
    return server, thread
