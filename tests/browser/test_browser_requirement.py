"""The browser tier's rule: without Chromium it is skipped with the reason, except under
REQUIRE_BROWSER=1 (CI), where it fails."""

import pytest

from tests.support.browser import _unavailable


def test_missing_browser_is_skipped_with_the_reason(monkeypatch):
    monkeypatch.delenv("REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y chromium \(set REQUIRE_BROWSER=1"):
        _unavailable("Chromium is not installed at /usr/bin/chromium: apt-get install -y chromium")


def test_missing_browser_fails_when_required(monkeypatch):
    monkeypatch.setenv("REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1 but Chromium is not installed"):
        _unavailable("Chromium is not installed at /usr/bin/chromium: apt-get install -y chromium")
