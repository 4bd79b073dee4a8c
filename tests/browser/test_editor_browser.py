"""An editor and a publisher in a real browser, against a live server with a real worker and
beat: schedule an article a few seconds ahead and watch the list show it published; see a
failure and its reason; publish one now; fix a failure and retry it. Screenshots go to
test-artifacts/browser/ (ignored by git)."""

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus
from scheduling.models import Heartbeat
from tests.factories import PASSWORD, make_article, make_user
from tests.support.browser import click_and_load
from tests.support.browser import log_in as support_log_in
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# Titles containing this fail in the worker's processing step (publisher/faults.py): a real
# failure, recorded by the real pipeline.
FAULTS = "process:raise:BROKEN"


def log_in(browser, live_server, username: str):
    return support_log_in(browser, live_server, username, PASSWORD)


def row_status(page, title: str) -> str:
    row = page.locator("#result_list tbody tr", has_text=title)
    return row.locator(".status-badge").text_content().strip() if row.count() else ""


def reload_until_status(page, title: str, status: str, *, timeout: float = 60) -> None:
    """Reload the list the way an editor would until the article's badge shows `status`."""
    deadline = time.monotonic() + timeout
    while row_status(page, title) != status:
        if time.monotonic() > deadline:
            pytest.fail(f"the list never showed “{title}” as {status} (last: {row_status(page, title)!r})")
        time.sleep(0.5)
        page.reload()


def add_article(page, live_server, title: str, body: str, when) -> None:
    """Fill the add form with a publish time in the editor's zone (New York); not yet saved."""
    local = when.astimezone(ZoneInfo("America/New_York"))
    page.goto(f"{live_server.url}/admin/publisher/article/add/")
    page.fill("#id_title", title)
    page.fill("#id_body", body)
    page.fill("#id_publish_at_0", local.strftime("%Y-%m-%d"))
    page.fill("#id_publish_at_1", local.strftime("%H:%M:%S"))
    # Seconds ahead may have passed by the time the form is saved: then publish it at once.
    page.check("input[name=when_passed][value=now]")


def start_pipeline(processes):
    call_command("sync_schedules", verbosity=0)
    processes.worker(PUBLISHER_FAULTS=FAULTS)
    processes.beat()
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=60, message="the first scan")


def test_editor_schedules_an_article_and_watches_it_go_live(browser, live_server, processes, screenshot):
    make_user("edith", "Editors", "America/New_York")
    start_pipeline(processes)
    upcoming = services.article_schedule(
        article_id=make_article(title="Tomorrow's long read", body="Text.").pk,
        publish_at=timezone.now() + timedelta(days=1))
    assert upcoming.status == ArticleStatus.SCHEDULED

    page = log_in(browser, live_server, "edith")
    assert "Beat is alive" in page.inner_text("#beat-health")
    screenshot(page, "dashboard")

    # Write an article and schedule it a few seconds ahead, in the editor's own zone (New York).
    publish_at = (timezone.now() + timedelta(seconds=8)).astimezone(ZoneInfo("America/New_York"))
    add_article(page, live_server, "Council approves the budget", "The council voted **yes** on Tuesday.", publish_at)
    assert "America/New_York" in page.inner_text("fieldset:has(#id_publish_at_0)")
    screenshot(page, "add-form")
    click_and_load(page, "input[name=_save]")

    success = page.inner_text("ul.messagelist")
    assert "“Council approves the budget” is scheduled for" in success
    # In the editor's zone, named (EST or EDT); seconds are shown when not zero.
    assert re.search(rf"{publish_at:%H:%M}(:\d\d)? E[SD]T", success), success
    assert row_status(page, "Council approves the budget") in ("Scheduled", "Publishing")
    screenshot(page, "list-scheduled")

    reload_until_status(page, "Council approves the budget", "Published")
    article = Article.objects.get(title="Council approves the budget")
    assert article.status == ArticleStatus.PUBLISHED
    assert article.published_at >= article.publish_at, "published early"
    row = page.locator("#result_list tbody tr", has_text="Council approves the budget").inner_text()
    assert "on time" in row or "late" in row
    screenshot(page, "list-published")

    # A failure is not silent: the list, the article and the dashboard say what went wrong.
    add_article(page, live_server, "BROKEN interview", "This one trips the processing step.",
                timezone.now() + timedelta(seconds=3))
    click_and_load(page, "input[name=_save]")
    reload_until_status(page, "BROKEN interview", "Failed")
    assert "process: injected fault in process" in page.inner_text("#result_list")
    screenshot(page, "list-failed")
    click_and_load(page, "#result_list a:text('BROKEN interview')")
    assert "process: injected fault in process" in page.inner_text(".field-last_error_display")
    assert page.locator("button[name=retry]").count() == 0  # an editor may not retry
    assert page.locator("button[name=publish_now]").count() == 0
    screenshot(page, "failed-article")
    page.goto(f"{live_server.url}/admin/")
    assert "BROKEN interview" in page.inner_text("#recent-failures")
    screenshot(page, "dashboard-with-failure")

    page.goto(f"{live_server.url}/admin/publisher/article/upcoming/")
    assert "Tomorrow's long read" in page.inner_text(".agenda")
    assert "America/New_York" in page.inner_text(".zone-banner")
    screenshot(page, "upcoming")


def test_publisher_publishes_now_and_recovers_a_failure(browser, live_server, processes, screenshot):
    publisher = make_user("paul", "Publishers", "Asia/Tokyo")
    start_pipeline(processes)
    breaking = make_article(title="Breaking: storm warning", body="Stay inside.")
    broken = make_article(title="BROKEN photo essay", body="Pictures.")
    services.article_schedule(article_id=broken.pk, publish_at=timezone.now() + timedelta(seconds=1))
    wait_for(lambda: Article.objects.filter(pk=broken.pk, status=ArticleStatus.FAILED).exists(), timeout=60,
             message="the broken article to fail in the worker")

    page = log_in(browser, live_server, "paul")
    page.goto(f"{live_server.url}/admin/publisher/article/")
    assert "Asia/Tokyo" in page.inner_text(".zone-banner")
    page.locator("#result_list tbody tr", has_text="Breaking: storm warning").locator("input.action-select").check()
    page.select_option("select[name=action]", "publish_now_selected")
    screenshot(page, "publish-now-selected")
    click_and_load(page, "button[name=index]")
    # Publishing now mails every subscriber: a confirmation page says how many first.
    assert page.inner_text(".subscriber-count") == "0 subscribers"
    assert Article.objects.get(pk=breaking.pk).status == ArticleStatus.DRAFT
    screenshot(page, "publish-now-confirm")
    click_and_load(page, "input[name=publish]")
    assert "Publishing 1 article now" in page.inner_text("ul.messagelist")
    reload_until_status(page, "Breaking: storm warning", "Published")
    screenshot(page, "published-now")
    event = ArticleEvent.objects.get(article=breaking)
    assert (event.action, event.actor) == (ArticleEventAction.PUBLISHED_NOW, publisher)

    # Recover the failure: read the reason, fix the article, retry through the same pipeline.
    page.goto(f"{live_server.url}/admin/publisher/article/{broken.pk}/change/")
    assert "process: injected fault in process" in page.inner_text(".field-last_error_display")
    page.fill("#id_title", "Photo essay")
    click_and_load(page, "input[name=_continue]")
    assert "was changed successfully" in page.inner_text("ul.messagelist")
    click_and_load(page, "button[name=retry]")
    assert "Retrying 1 article" in page.inner_text("ul.messagelist")
    wait_for(lambda: Article.objects.filter(pk=broken.pk, status=ArticleStatus.PUBLISHED).exists(), timeout=60,
             message="the retried article to go live")
    page.reload()
    assert page.locator(".field-status_display .status-badge").text_content().strip() == "Published"
    assert "Retried" in page.inner_text(".field-activity") and "paul" in page.inner_text(".field-activity")
    screenshot(page, "retried-article")
