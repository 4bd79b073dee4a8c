"""Previews in a real browser: the body's Markdown preview beside the text as the editor types,
*Preview* (the public page, in a new tab), and the shareable link opened in a fresh browser
context with no admin login. No worker needed: nothing is published."""

import pytest
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from tests.factories import PASSWORD, make_article, make_user
from tests.support.browser import VIEWPORT, log_in

pytestmark = pytest.mark.integration


def test_editor_previews_a_draft_and_shares_a_link(browser, live_server, screenshot):
    make_user("edith", "Editors", "Europe/Paris")
    article = make_article(title="Embargoed report", body="The **findings** are in.")
    # A failure whose reason is one long unbroken word: the status panel wraps it at 1440 px.
    make_article(title="Broken upload", status=ArticleStatus.FAILED, publish_at=timezone.now(),
                 last_error="thumbnail: cannot open /var/media/articles/" + "x" * 150 + ".png")
    page = log_in(browser, live_server, "edith", PASSWORD)
    panel = page.locator("#pipeline-status")
    assert "Broken upload" in panel.inner_text()
    assert page.evaluate("document.documentElement.scrollWidth") == VIEWPORT["width"]
    assert panel.evaluate("e => e.scrollWidth <= e.clientWidth")
    screenshot(page, "status-panel-long-reason")

    page.goto(f"{live_server.url}/admin/publisher/article/{article.pk}/change/")
    preview = page.locator("#markdown-preview .markdown-preview-body")
    page.wait_for_selector("#markdown-preview .markdown-preview-body strong")
    assert preview.locator("strong").text_content() == "findings"
    assert "Markdown:" in page.inner_text(".field-body .help")
    page.fill("#id_body", "The **findings** are in.\n\n## Method\n\n- one\n- two")
    page.wait_for_selector("#markdown-preview h2")
    assert preview.locator("h2").text_content() == "Method"
    assert preview.locator("li").all_text_contents() == ["one", "two"]
    screenshot(page, "markdown-preview")
    # The live preview saved nothing.
    assert Article.objects.get(pk=article.pk).body == "The **findings** are in."

    with page.context.expect_page() as opened:
        page.click("a.preview-button")
    tab = opened.value
    tab.wait_for_load_state()
    assert tab.inner_text("h1") == "Embargoed report"
    assert tab.locator("meta[name=robots]").get_attribute("content") == "noindex, nofollow"
    assert "Preview" in tab.inner_text(".preview-banner")
    screenshot(tab, "staff-preview")

    link = page.input_value("#preview-link")
    assert link.startswith(f"{live_server.url}/preview/")
    # Someone without an admin login: a fresh context, no cookies. They see the article as it
    # is when they open the link, changed after the link was made.
    Article.objects.filter(pk=article.pk).update(body="The **findings** are in, *revised*.")
    stranger = browser.new_context(viewport=VIEWPORT).new_page()
    response = stranger.goto(link)
    assert response.status == 200
    assert response.headers["x-robots-tag"] == "noindex, nofollow"
    assert stranger.context.cookies() == []
    assert stranger.inner_text("h1") == "Embargoed report"
    assert stranger.locator(".body em").text_content() == "revised"
    assert stranger.locator("#id_username").count() == 0
    screenshot(stranger, "shared-preview")

    forged = stranger.goto(link[:-3] + "xyz/")
    assert forged.status == 404
    assert stranger.inner_text("h1") == "This preview link does not work"
    screenshot(stranger, "forged-preview")
    assert Article.objects.get(pk=article.pk).status == ArticleStatus.DRAFT
