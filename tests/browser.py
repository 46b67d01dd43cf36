"""A real browser for the pages' tests: Debian's chromium (scripts/setup-host.sh installs it)
driven by Playwright from PyPI, never Playwright's own downloaded browser.

``chromium(profile_dir, zone)`` yields a browser context with a fresh profile; ``Recorder``
keeps every request, console error, page error and dialog of a page, so a test can assert that
nothing left graphapi and nothing ran.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# Regenerates docs/screenshots/ when set: the browser tests also write their shots there.
SCREENSHOTS_ENV = "GROUNDTRUTH_SCREENSHOTS_DIR"


@contextmanager
def chromium(profile: Path, zone: str):
    sync_api = pytest.importorskip("playwright.sync_api")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup-host.sh installs Debian's chromium")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
            timezone_id=zone, viewport={"width": 1500, "height": 1000},
        )  # fmt: skip
        try:
            yield context
        finally:
            context.close()


class Recorder:
    """Every request, console error, page error and dialog of a page."""

    def __init__(self, page):
        self.requests: list[str] = []
        self.problems: list[str] = []
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.problems.append(m.text))
        page.on("pageerror", lambda e: self.problems.append(str(e)))
        page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def check(self, origin: str) -> None:
        """Something was loaded, all of it from ``origin``, and nothing failed or ran."""
        assert self.requests, "the browser made no request"
        assert [u for u in self.requests if not u.startswith(origin + "/")] == [], "left graphapi"
        assert self.problems == []


def shot(page, directory: Path, name: str) -> None:
    """A full-page screenshot in ``directory`` (and in $GROUNDTRUTH_SCREENSHOTS_DIR when set)."""
    page.screenshot(path=str(directory / f"{name}.png"), full_page=True)
    extra = os.environ.get(SCREENSHOTS_ENV)
    if extra:
        page.screenshot(path=str(Path(extra) / f"{name}.png"), full_page=True)
