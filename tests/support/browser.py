"""Real-browser helpers: Playwright for Python driving Debian's Chromium (/usr/bin/chromium; a
browser download does not work here). Without Chromium or Playwright the browser tests are
skipped with the reason, except under REQUIRE_BROWSER=1 (CI), where that is a failure."""

import os
import re
from pathlib import Path

import pytest

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


VIEWPORT = {"width": 1440, "height": 1000}


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


def click_and_load(page, selector: str) -> None:
    """Click a link or a submit button and wait until the next page has fully loaded."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def log_in(browser, live_server, username: str, password: str):
    """A fresh browser context (its own cookies) signed in to the admin as `username`."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    click_and_load(page, "input[type=submit]")
    page.wait_for_selector("#pipeline-status")
    return page
