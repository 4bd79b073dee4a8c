"""The pre-flight's *at risk* flag in a real browser: the article list, the status panel and the
article page at 1440 px. The check runs here, in the test (no worker needed: nothing is
published)."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from publisher import dispatch, preflight
from publisher.models import ArticleStatus
from tests.factories import PASSWORD, make_article, make_user
from tests.support.browser import VIEWPORT, click_and_load, log_in
from tests.support.images import broken_png

pytestmark = pytest.mark.integration


def test_an_article_at_risk_is_flagged_where_the_editor_looks(browser, live_server, screenshot, settings, tmp_path,
                                                              monkeypatch):
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    monkeypatch.setattr(dispatch, "preflight_alerts", lambda *, article_ids: None)  # mail: tests/integration
    make_user("edith", "Editors", "Europe/Paris")
    article = make_article(title="Harbour photo essay", status=ArticleStatus.SCHEDULED, image_alt="",
                           publish_at=timezone.now() + timedelta(minutes=25))
    article.image.save("harbour.png", ContentFile(broken_png()), save=True)
    make_article(title="A fine story", status=ArticleStatus.SCHEDULED, publish_at=timezone.now() + timedelta(hours=2))
    assert preflight.article_preflight(article_id=article.pk) == preflight.AT_RISK

    page = log_in(browser, live_server, "edith", PASSWORD)
    panel = page.locator("#pipeline-status")
    assert "1 scheduled article is at risk" in panel.inner_text()
    assert "Harbour photo essay" in page.inner_text("#at-risk")
    assert panel.evaluate("e => e.scrollWidth <= e.clientWidth")
    screenshot(page, "status-panel-at-risk")

    page.goto(f"{live_server.url}/admin/publisher/article/")
    rows = page.locator("#result_list tbody tr")
    flagged = rows.filter(has=page.locator(".at-risk"))
    assert flagged.count() == 1
    assert "Harbour photo essay" in flagged.inner_text()
    assert "The image has no alt text" in flagged.locator(".problem").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") == VIEWPORT["width"]
    screenshot(page, "article-list-at-risk")

    click_and_load(page, "#result_list a:has-text('Harbour photo essay')")
    assert "At risk" in page.inner_text(".field-schedule_summary")
    assert "At risk (pre-flight)" in page.inner_text(".field-activity")
    screenshot(page, "article-page-at-risk")
