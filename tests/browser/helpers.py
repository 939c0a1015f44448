"""What the browser tests share: Debian's Chromium, numbered screenshots, axe-core checks.

    def test_inbox(live_stack, page, shots):
        page.goto(f"{live_stack.base_url}/web/inbox")
        shots(page, "inbox")                     # test-output/browser/test_inbox/01-inbox.png
        assert_accessible(page, "the inbox")     # no serious or critical WCAG 2.x A/AA violation

Playwright drives the Chromium Debian installs (`/usr/bin/chromium`, or `SPIS_TEST_CHROMIUM`); it
never downloads a browser. axe-core is vendored under `vendor/` (see its README) and only ever
evaluated inside the page under test: SPIS does not serve it.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import ConsoleMessage, Error, Page, ViewportSize

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_SETTING = "SPIS_TEST_CHROMIUM"
DEBIAN_CHROMIUM = "/usr/bin/chromium"
# Every test's screenshots go to a folder of its own under here (test-output/ is gitignored).
OUTPUT_ROOT = REPO_ROOT / "test-output" / "browser"
AXE_JS = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

DESKTOP = ViewportSize(width=1280, height=800)
PHONE = ViewportSize(width=390, height=844)

# WCAG 2.0, 2.1 and 2.2, levels A and AA: the rules axe runs (it has no wcag22a tag: WCAG 2.2 added
# no level A rule that axe checks). Violations of lower impact (minor, moderate) are returned to
# the caller but do not fail the check.
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa")
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
_SNIPPET_CHARS = 160


def chromium_path() -> Path:
    return Path(os.environ.get(CHROMIUM_SETTING) or DEBIAN_CHROMIUM)


def missing_chromium(path: Path) -> str | None:
    """Why `path` cannot be the browser, with how to fix it; None when it can."""
    if os.access(path, os.X_OK) and path.is_file():
        return None
    return (
        f"the browser tests need Chromium at {path} ({CHROMIUM_SETTING} overrides the path); "
        "install Debian's with: apt-get install chromium (Playwright drives it and never "
        "downloads a browser)"
    )


# -- screenshots -----------------------------------------------------------------------------------


def output_folder(test_name: str) -> Path:
    """test-output/browser/<test name>/, the name made safe for a file system
    (`test_x[phone]` → `test_x-phone`)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", test_name).strip("-.")
    return OUTPUT_ROOT / (safe or "test")


class Shots:
    """Full-page screenshots numbered in the order taken: 01-<name>.png, 02-<name>.png, ...

    The folder is emptied when the test starts, so what it holds is this run's.
    """

    def __init__(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        self.folder = folder
        self.taken: list[Path] = []

    def __call__(self, page: Page, name: str) -> Path:
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "page"
        path = self.folder / f"{len(self.taken) + 1:02d}-{slug}.png"
        page.screenshot(path=path, full_page=True)
        self.taken.append(path)
        return path


# -- what the page itself complains about ------------------------------------------------------------


def record_errors(page: Page) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions from now on: a
    script or style refused by the Content-Security-Policy shows up here."""
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    def on_page_error(error: Error) -> None:
        errors.append(f"uncaught: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    return errors


# -- accessibility -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Violation:
    """One axe rule broken on the page, and where."""

    rule: str
    impact: str  # minor, moderate, serious, critical
    help: str
    help_url: str
    targets: tuple[str, ...]  # a CSS selector per element (` >>> ` crosses into a shadow root)
    snippets: tuple[str, ...]  # the start of each element's HTML

    def describe(self) -> str:
        lines = [f"[{self.impact}] {self.rule}: {self.help} ({self.help_url})"]
        lines += [f"    {t}    {s}" for t, s in zip(self.targets, self.snippets, strict=True)]
        return "\n".join(lines)


@cache
def _axe_source() -> str:
    # `;true` so that the evaluation's value is never a function, which Playwright would call.
    return AXE_JS.read_text(encoding="utf-8") + "\n;true"


_RUN_AXE = """async (tags) => {
    const results = await window.axe.run(document, {
        runOnly: {type: "tag", values: tags},
        resultTypes: ["violations"],
    });
    return results.violations.map((v) => ({
        rule: v.id, impact: v.impact || "unknown", help: v.help, helpUrl: v.helpUrl,
        nodes: v.nodes.map((n) => ({target: n.target, html: n.html})),
    }));
}"""


def axe_violations(page: Page, tags: tuple[str, ...] = WCAG_TAGS) -> list[Violation]:
    """Run axe-core on the page as it is now; every violation, whatever its impact.

    axe is evaluated through the DevTools protocol, not added as a <script>: SPIS's pages send
    `Content-Security-Policy: script-src 'self'`, which refuses an inline script (and so
    `page.add_script_tag`, with content or a path), while an evaluation is not subject to it. The
    page keeps its real policy: turning CSP off for the tests (`bypass_csp`) would hide a page
    that breaks its own policy.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    found: list[dict[str, Any]] = page.evaluate(_RUN_AXE, list(tags))
    return [
        Violation(
            rule=v["rule"],
            impact=v["impact"],
            help=v["help"],
            help_url=v["helpUrl"],
            targets=tuple(_selector(node["target"]) for node in v["nodes"]),
            snippets=tuple(_snippet(node["html"]) for node in v["nodes"]),
        )
        for v in found
    ]


def assert_accessible(page: Page, label: str, tags: tuple[str, ...] = WCAG_TAGS) -> list[Violation]:
    """Fail listing every serious or critical violation of WCAG 2.x A/AA on the page (rule id,
    help and the elements' selectors); return the minor and moderate ones, which do not fail."""
    violations = axe_violations(page, tags)
    blocking = [v for v in violations if v.impact in BLOCKING_IMPACTS]
    if blocking:
        listed = "\n".join(v.describe() for v in blocking)
        raise AssertionError(
            f"axe-core: {len(blocking)} serious or critical accessibility violation(s) on "
            f"{label} ({page.url}):\n{listed}"
        )
    return violations


def _selector(target: list[Any]) -> str:
    """axe's target: one selector per frame; a list within it walks into shadow roots."""
    return " | ".join(
        " >>> ".join(part) if isinstance(part, list) else str(part) for part in target
    )


def _snippet(html: str) -> str:
    flat = " ".join(html.split())
    return flat if len(flat) <= _SNIPPET_CHARS else flat[: _SNIPPET_CHARS - 1] + "…"
