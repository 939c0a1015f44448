"""The browser harness itself: Chromium under a strict CSP, axe-core, screenshots, the live stack.

The accessibility checks run on two small pages served from the test's folder with the same
`script-src 'self'` policy SPIS's pages send, so the harness is proven before those pages exist.
"""

from __future__ import annotations

import functools
import http.server
import json
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Error, Page

from referral_service.organisations.models import OrgKind
from tests.browser.helpers import OUTPUT_ROOT, Shots, assert_accessible
from tests.fixtures.live_stack import LiveStack, inbox, send_referral, wait_until
from tests.fixtures.systems import TestSystem, new_key, public_jwks, register_system

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'"

_HEAD = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<link rel="icon" href="dot.svg">'
)
ACCESSIBLE = f"""{_HEAD}<title>Refer a patient</title></head>
<body><main><h1>Refer a patient</h1>
<form method="post"><label for="postcode">Postcode</label>
<input id="postcode" name="postcode" autocomplete="postal-code">
<button type="submit">Send</button></form>
<img src="dot.svg" alt="Catford Time Bank logo"></main></body></html>"""
INACCESSIBLE = f"""{_HEAD}<title>Refer a patient</title></head>
<body><main><h1>Refer a patient</h1>
<form method="post"><input id="postcode" name="postcode"><button type="submit">Send</button></form>
<img src="dot.svg"></main></body></html>"""
DOT = '<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><circle cx="4" cy="4" r="4"/></svg>'


class _StrictCspHandler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        return


@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[str]:
    """The two pages and their image, served over HTTP with a strict CSP; the base URL."""
    (tmp_path / "accessible.html").write_text(ACCESSIBLE)
    (tmp_path / "inaccessible.html").write_text(INACCESSIBLE)
    (tmp_path / "dot.svg").write_text(DOT)
    handler = functools.partial(_StrictCspHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_axe_passes_an_accessible_page_and_lists_what_breaks_an_inaccessible_one(
    page: Page, page_errors: list[str], local_site: str
) -> None:
    response = page.goto(f"{local_site}/accessible.html")
    assert response is not None
    assert response.headers["content-security-policy"] == CSP
    assert_accessible(page, "the accessible page")

    page.goto(f"{local_site}/inaccessible.html")
    with pytest.raises(AssertionError) as failed:
        assert_accessible(page, "the inaccessible page")
    message = str(failed.value)
    assert "2 serious or critical accessibility violation(s) on the inaccessible page" in message
    assert "[critical] label: Form elements must have labels" in message
    assert "[critical] image-alt: Images must have alternative text" in message
    assert "#postcode" in message  # the selector of the unlabelled input
    assert '<img src="dot.svg">' in message
    assert page_errors == []  # neither the pages nor axe raised an error

    # The policy is enforced: an inline script is refused, which is why axe is evaluated instead.
    with pytest.raises(Error, match="Content Security Policy"):
        page.add_script_tag(content="window.injected = true")
    assert len(page_errors) == 1
    assert "violates the following Content Security Policy directive" in page_errors[0]


def test_screenshots_are_numbered_full_page_pngs_in_the_tests_folder(
    page: Page, phone_page: Page, shots: Shots, local_site: str
) -> None:
    page.goto(f"{local_site}/accessible.html")
    phone_page.goto(f"{local_site}/accessible.html")

    desktop_shot = shots(page, "Desktop view")
    phone_shot = shots(phone_page, "phone")

    folder = OUTPUT_ROOT / "test_screenshots_are_numbered_full_page_pngs_in_the_tests_folder"
    assert shots.folder == folder
    assert [desktop_shot, phone_shot] == [folder / "01-desktop-view.png", folder / "02-phone.png"]
    assert sorted(folder.iterdir()) == [desktop_shot, phone_shot]
    assert png_size(desktop_shot)[0] == 1280
    assert png_size(phone_shot)[0] == 390 * 2  # the phone context's device pixel ratio
    assert phone_page.evaluate("window.innerWidth") == 390


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk comes first
    return width, height


def test_the_live_stack_serves_pages_and_its_worker_routes_a_referral(
    live_stack: LiveStack, page: Page
) -> None:
    base = live_stack.base_url
    opened = page.goto(f"{base}/healthz")
    assert opened is not None
    assert opened.ok
    assert json.loads(page.inner_text("body")) == {"status": "ok"}

    # The time bank through `spis` (as an operator would), the practice straight into the
    # database: both are the stack's, so the server sees them.
    timebank = timebank_by_cli(live_stack)
    practice = register_system(
        live_stack.session_factory,
        OrgKind.PRACTICE,
        name="Rushey Green Group Practice",
        ods="F84001",
    )
    listed = {org["name"] for org in live_stack.spis_json("org", "list")}
    assert listed == {"Catford Time Bank", "Rushey Green Group Practice"}

    referral_task = send_referral(base, practice)
    routed = wait_until(live_stack, lambda: inbox(base, timebank), "the worker to route it")
    assert [task["partOf"][0]["reference"] for task in routed] == [referral_task]
    assert httpx.get(f"{base}/readyz", timeout=10).json()["failed"] == []


def timebank_by_cli(stack: LiveStack) -> TestSystem:
    org = stack.spis_json(
        "org", "add", "timebank", "--name", "Catford Time Bank",
        "--catchment", "SE6", "--offers", "befriending", "--capacity", "2",
    )  # fmt: skip
    key, kid = new_key("ES384"), "timebank-cli"
    jwks = stack.settings.var_dir / "timebank.jwks.json"
    jwks.write_text(json.dumps(public_jwks(key, kid, "ES384")))
    client = stack.spis_json("client", "add", "--org", org["id"], "--jwks", str(jwks))
    return TestSystem(
        org["id"], client["client_id"], OrgKind.TIMEBANK, None, key, kid, "ES384", client["scopes"]
    )
