"""Browser tests: Playwright drives Debian's Chromium against a live SPIS (server + worker).

Fixtures:
- `chromium`: the browser, one per test module (headless, `/usr/bin/chromium` or SPIS_TEST_CHROMIUM);
- `page` (desktop, 1280x800) and `phone_page` (390x844, touch): a fresh context each, so no
  cookie or session leaks between tests; `page_errors`: the console errors and uncaught
  exceptions `page` has seen (a CSP refusal shows here);
- `shots`: numbered full-page screenshots in test-output/browser/<test name>/;
- `live_stack`: `spis serve` and a Celery worker (with beat) on the test database and Redis,
  started for the test in a fresh var dir (tests/fixtures/live_stack.py); override
  `live_stack_settings` in a module to run it with other settings.

Every test in this folder is marked `slow`. On a failure the report names the screenshot folder
(with a last `NN-failure.png` of each open page) and shows the ends of the stack's logs.
"""

from __future__ import annotations

import shutil
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from referral_service.keys import ring as key_ring
from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    Shots,
    chromium_path,
    missing_chromium,
    output_folder,
    record_errors,
)
from tests.conftest import TEST_KEK
from tests.fixtures.live_stack import LiveStack
from tests.fixtures.live_stack import live_stack as start_live_stack

HERE = Path(__file__).resolve().parent
SHOTS_KEY = pytest.StashKey[Shots]()
ERRORS_KEY = pytest.StashKey[list[str]]()
_PAGES = ("page", "phone_page")  # the fixtures whose pages get a screenshot on failure


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Each of them starts a browser (and most a server and a worker): `make test-quick` skips them.
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _fresh_output_folder(request: pytest.FixtureRequest) -> None:
    """No screenshot left from an earlier run of the same test (a failure's, say) stays behind."""
    shutil.rmtree(output_folder(request.node.name), ignore_errors=True)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    # Per module, not per run: Playwright's driver and event loop end with the browser tests
    # instead of living on through the rest of the suite.
    path = chromium_path()
    problem = missing_chromium(path)
    if problem:
        pytest.fail(problem, pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path,
            headless=True,
            # As root (CI, containers) Chromium refuses to start with its sandbox; /dev/shm may be
            # small in a container.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = chromium.new_context(viewport=DESKTOP, locale="en-GB", timezone_id="Europe/London")
    desktop = context.new_page()
    request.node.stash[ERRORS_KEY] = record_errors(desktop)
    yield desktop
    context.close()


@pytest.fixture
def phone_page(chromium: Browser) -> Iterator[Page]:
    context = chromium.new_context(
        viewport=PHONE,
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-GB",
        timezone_id="Europe/London",
    )
    yield context.new_page()
    context.close()


@pytest.fixture
def page_errors(page: Page, request: pytest.FixtureRequest) -> list[str]:
    errors: list[str] = request.node.stash[ERRORS_KEY]
    return errors


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    taken = Shots(output_folder(request.node.name))
    request.node.stash[SHOTS_KEY] = taken
    return taken


@pytest.fixture
def live_stack_settings() -> dict[str, Any]:
    """Settings fields for the test's stack (e.g. `web_idle_timeout_s`): override this fixture in
    a test module to change them."""
    return {}


@pytest.fixture(name="live_stack")
def live_stack_for_test(
    pg_url: str,
    pg_engine: Engine,
    session_factory: sessionmaker[Session],
    tmp_path: Path,
    live_stack_settings: dict[str, Any],
) -> Iterator[LiveStack]:
    # A stack per test, not per run: its processes cache unwrapped data keys by id, and emptying
    # the tables between tests gives the next key an id they may already hold other material
    # for. For the same reason this process forgets its own cache now.
    key_ring.register(pg_engine, TEST_KEK)
    var_dir = tmp_path / "var"
    with start_live_stack(pg_url, var_dir, session_factory, **live_stack_settings) as stack:
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        funcargs = getattr(item, "funcargs", {})
        notes = _screenshot_open_pages(item, [funcargs[n] for n in _PAGES if n in funcargs])
        if SHOTS_KEY in item.stash:
            notes.insert(0, f"screenshots: {item.stash[SHOTS_KEY].folder}")
        if notes:
            report.sections.append(("browser", "\n".join(notes)))
        stack = funcargs.get("live_stack")
        if isinstance(stack, LiveStack):
            report.sections.append(("live stack logs", stack.logs()))
    return report


def _screenshot_open_pages(item: pytest.Item, pages: list[Page]) -> list[str]:
    """The state each page was left in, as the last shots of the test's folder."""
    if pages and SHOTS_KEY not in item.stash:
        item.stash[SHOTS_KEY] = Shots(output_folder(item.name))
    notes = []
    for open_page in pages:
        try:
            item.stash[SHOTS_KEY](open_page, "failure")
        except Exception as exc:  # a crashed or closed page: the report must still come out
            notes.append(f"no failure screenshot of {open_page.url}: {exc}")
    return notes
