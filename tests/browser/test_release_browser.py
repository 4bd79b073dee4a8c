"""An editor builds a release in a real browser, against a live server with a real worker and
beat: makes the release, adds three articles from the article list, schedules it a few seconds
ahead in their own zone (New York), and watches all three go live together. Screenshots go to
test-artifacts/browser/ (ignored by git)."""

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus, Release
from publisher.states import ReleaseStatus
from scheduling.models import Heartbeat
from tests.factories import PASSWORD, make_article, make_user
from tests.support.browser import click_and_load, log_in
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

NEW_YORK = ZoneInfo("America/New_York")


def release_status(page) -> str:
    return page.locator(".field-status_display .status-badge").text_content().strip()


def test_editor_builds_and_schedules_a_release_that_goes_live_together(browser, live_server, processes, screenshot,
                                                                     settings):
    settings.PUBLISHER_RELEASE_LOOKAHEAD = 3
    processes.env["PUBLISHER_RELEASE_LOOKAHEAD"] = "3"
    make_user("edith", "Editors", "America/New_York")
    titles = ["Budget: the numbers", "Budget: who pays", "Budget: what changes for you"]
    for title in titles:
        make_article(title=title, body=f"{title}. Text of the story.")
    call_command("sync_schedules", verbosity=0)
    processes.worker()
    processes.beat()
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=60, message="the first scan")

    page = log_in(browser, live_server, "edith", PASSWORD)
    page.goto(f"{live_server.url}/admin/publisher/release/add/")
    page.fill("#id_name", "Budget package")
    page.fill("#id_notes", "All three at once, at the embargo.")
    screenshot(page, "new-release")
    click_and_load(page, "input[name=_continue]")
    release = Release.objects.get(name="Budget package")

    page.goto(f"{live_server.url}/admin/publisher/article/")
    for title in titles:
        page.locator("#result_list tbody tr", has_text=title).locator("input.action-select").check()
    page.select_option("select[name=action]", "add_to_release")
    click_and_load(page, "button[name=index]")
    page.select_option("#id_release", str(release.pk))
    screenshot(page, "add-to-release")
    click_and_load(page, "input[value='Add to the release']")
    assert "Added 3 articles to Budget package." in page.inner_text("ul.messagelist")

    page.goto(f"{live_server.url}/admin/publisher/release/{release.pk}/change/")
    assert "America/New_York" in page.inner_text(".zone-banner")
    click_and_load(page, "a.release-schedule")
    when = (timezone.now() + timedelta(seconds=10)).astimezone(NEW_YORK)
    page.fill("#id_publish_at_0", when.strftime("%Y-%m-%d"))
    page.fill("#id_publish_at_1", when.strftime("%H:%M:%S"))
    screenshot(page, "schedule-release")
    click_and_load(page, "input[name=apply]")
    message = page.inner_text("ul.messagelist")
    assert "Release “Budget package” is scheduled: its 3 articles go live together" in message
    # In the editor's zone, named (EST or EDT); seconds are shown when not zero.
    assert re.search(rf"{when:%H:%M}(:{when:%S})? E[SD]T", message), message
    assert release_status(page) in ("Scheduled", "Preparing")
    screenshot(page, "release-scheduled")

    page.goto(f"{live_server.url}/admin/publisher/article/upcoming/")
    assert "Budget package" in page.inner_text("#releases")
    screenshot(page, "agenda-with-release")

    page.goto(f"{live_server.url}/admin/publisher/release/{release.pk}/change/")
    deadline = time.monotonic() + 60
    while release_status(page) != "Published":
        assert time.monotonic() < deadline, "the release page never showed it published"
        time.sleep(0.5)
        page.reload()
    screenshot(page, "release-published")
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PUBLISHED and release.published_at >= release.publish_at
    assert set(Article.objects.filter(title__in=titles).values_list("status", "published_at")) == {
        (ArticleStatus.PUBLISHED, release.published_at)}
    assert set(Article.objects.visible().values_list("title", flat=True)) == set(titles)
    assert "scheduled" in page.inner_text(".field-history_display") and "edith" in page.inner_text(
        ".field-history_display")
