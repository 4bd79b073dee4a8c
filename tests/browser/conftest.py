"""Real-browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium; a
browser download does not work here) against pytest-django's live server, with a real worker
and beat from tests/integration (the `processes` fixture).

Without Chromium or Playwright these tests are skipped with the reason, except under
REQUIRE_BROWSER=1 (CI), where that is a failure."""

import importlib
import os
import re
from pathlib import Path

import pytest
from django.db import connections

from tests.integration.conftest import processes, pytest_runtest_makereport  # noqa: F401  (shared fixtures)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# ./scripts/test runs the tiers side by side: each keeps its screenshots in a directory of its own.
ARTIFACTS = ROOT / "test-artifacts" / "browser" / os.environ.get("PUBLISHER_TEST_TIER", "")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(reason: str):
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(f"{reason} (set REQUIRE_BROWSER=1 to fail instead)")


@pytest.fixture
def newsroom_groups(transactional_db):
    """The Editors and Publishers groups the data migration makes (an earlier transactional test
    flushed them), put back the migration's own way."""
    from django.apps import apps

    importlib.import_module("publisher.migrations.0003_editor_groups").create_groups(apps, None)


@pytest.fixture
def browser(transactional_db, newsroom_groups, monkeypatch):
    """Chromium for one test. Started after the test database is set up: Playwright's sync API
    runs an asyncio loop on this thread, and Django refuses database calls beside a running loop
    unless told they are plain synchronous code (they are: the live server answers from its own
    thread), which is what DJANGO_ALLOW_ASYNC_UNSAFE does, for this test only."""
    if not CHROMIUM.exists():
        _unavailable(f"Debian's Chromium is not installed at {CHROMIUM}: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed: pip install -r requirements/test.txt")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # With the loop running, Django keeps this test's database connections per context
            # (asgiref Local), apart from the ones pytest-django closes: close them here, or
            # PostgreSQL refuses to drop the test database ("being accessed by other users").
            connections.close_all()


class Screenshots:
    """Full-page PNGs under test-artifacts/browser/[<tier>/], named <test>-<nn>-<what>.png."""

    def __init__(self, test_name: str):
        self.prefix = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")
        self.count = 0
        self.paths: list[Path] = []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{self.prefix}-*.png"):
            old.unlink()

    def __call__(self, page, what: str) -> Path:
        self.count += 1
        path = ARTIFACTS / f"{self.prefix}-{self.count:02d}-{what}.png"
        page.screenshot(path=str(path), full_page=True)
        self.paths.append(path)
        return path


@pytest.fixture
def screenshot(request):
    return Screenshots(request.node.name.removeprefix("test_"))
