"""Fixtures for the dashboard tests: a real server with the dashboard, and Debian's Chromium via Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_support import Serve

from vibekit_telemetry import Telemetry
from vibekit_telemetry.server import ServerHandle, start_api_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# Screenshots go to docs/screenshots/ when VIBEKIT_SCREENSHOTS=1 (`make screenshots`), else to the test's
# temporary directory, so an ordinary test run leaves the committed pictures alone.
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def telemetry(tmp_path: Path) -> Iterator[Telemetry]:
    """A Telemetry on a fresh SQLite file whose writer flushes every 5 ms (live updates stay prompt)."""
    instance = Telemetry(db_path=str(tmp_path / "t.db"), stream_flush_interval_ms=5)
    yield instance
    instance.shutdown()


@pytest.fixture
def serve(telemetry: Telemetry) -> Iterator[Serve]:
    """Start dashboard servers on free loopback ports (options: ServerSettings overrides); all stop afterwards."""
    handles: list[ServerHandle] = []

    def start(**options: Any) -> ServerHandle:
        options.setdefault("dashboard", True)
        handle = start_api_server(telemetry, port=0, **options)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium per test module (Debian's package; never a downloaded browser)."""
    if not CHROMIUM.exists():
        pytest.skip("browser tests need Debian's Chromium at /usr/bin/chromium (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (dev extra)")
    with sync_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page at 1280x800 (no shared storage between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    context.close()
    assert not errors, f"the page raised: {errors}"


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where this run's screenshots go."""
    if os.environ.get("VIBEKIT_SCREENSHOTS") == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return DOCS_SCREENSHOTS
    return tmp_path
