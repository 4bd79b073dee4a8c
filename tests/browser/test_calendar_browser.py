"""The month calendar in a real browser: a scheduled release on its day in the editor's zone
(Paris) with its articles inside it, an article going out on its own beside it, and the warning
that one of the release's articles has no body, whose links lead to the release page (which
says it too). No worker needed: nothing is published. Screenshots go to test-artifacts/browser/."""

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from publisher import releases
from publisher.models import Article, ArticleStatus
from tests.factories import PASSWORD, make_article, make_user
from tests.support.browser import click_and_load, log_in

pytestmark = pytest.mark.integration

PARIS = ZoneInfo("Europe/Paris")


def test_editor_sees_a_release_and_a_conflict_on_the_month_calendar(browser, live_server, screenshot):
    editor = make_user("edith", "Editors", "Europe/Paris")
    today = timezone.localtime(timezone.now(), PARIS).date()
    first = (today.replace(day=1) + timedelta(days=62)).replace(day=1)  # the month after next
    when = datetime(first.year, first.month, 12, 9, 30, tzinfo=PARIS)
    release = releases.release_create(name="Budget package", actor=editor)
    members = [make_article(title=title, body=f"{title}: the text.") for title in ("Budget: the numbers",
                                                                                   "Budget: who pays")]
    releases.release_add_members(release_id=release.pk, article_ids=[m.pk for m in members], actor=editor)
    releases.release_schedule(release_id=release.pk, publish_at=when, actor=editor)
    Article.objects.filter(pk=members[1].pk).update(body="")  # emptied after the release was scheduled
    make_article(title="Weather", slug="weather", status=ArticleStatus.SCHEDULED,
                 publish_at=when + timedelta(hours=2))

    page = log_in(browser, live_server, "edith", PASSWORD)
    page.goto(f"{live_server.url}/admin/publisher/article/calendar/?month={first:%Y-%m}")
    assert "Europe/Paris" in page.inner_text(".zone-banner")
    day = page.locator(f"#day-{first:%Y-%m}-12")
    box = day.locator(f"#release-{release.pk}")
    text = box.inner_text()
    assert re.search(r"^09:30 CES?T Release Budget package SCHEDULED 2 articles\n", text), text
    assert box.locator(".release-members li").all_inner_texts() == ["Budget: the numbers", "Budget: who pays"]
    assert day.locator(".calendar-item").all_inner_texts() == ["11:30 Weather SCHEDULED"]  # badges in capitals (CSS)
    warnings = page.locator("#calendar-conflicts li").all_inner_texts()
    assert warnings == [
        "Release “Budget package” contains “Budget: who pays” (no body): it will be blocked unless they are "
        "completed or removed."]
    screenshot(page, "calendar-with-release-and-conflict")

    click_and_load(page, "#calendar-conflicts a.conflict-release")
    assert page.url.endswith(f"/admin/publisher/release/{release.pk}/change/")
    assert page.locator("#release-conflicts li").all_inner_texts() == warnings
    screenshot(page, "release-page-conflict")
