"""An editor corrects a live article in a real browser, against a live server with a real
worker and beat: schedules the change a few seconds ahead in her own zone, sees the reader's
page keep the old version, then the new one on its second, and the change and its diff on the
article page. Screenshots go to test-artifacts/browser/ (ignored by git)."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher.models import ArticleRevision, ArticleStatus
from publisher.states import RevisionStatus
from scheduling.models import Heartbeat
from tests.factories import PASSWORD, make_article, make_user
from tests.support.browser import click_and_load, log_in
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_editor_schedules_a_change_to_a_live_article(browser, live_server, processes, screenshot):
    make_user("edith", "Publishers", "America/New_York")
    went_live = timezone.now() - timedelta(hours=3)
    article = make_article(title="Storm closes the harbour", body="The harbour is closed until Tuesday.",
                           slug="storm-closes-the-harbour", status=ArticleStatus.PUBLISHED, publish_at=went_live,
                           published_at=went_live, fanned_out_at=went_live,
                           body_html="<p>The harbour is closed until Tuesday.</p>")
    call_command("sync_schedules", verbosity=0)
    processes.worker()
    processes.beat()
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=60, message="the first scan")

    page = log_in(browser, live_server, "edith", PASSWORD)
    page.goto(f"{live_server.url}/admin/publisher/article/{article.pk}/change/")
    page.fill("#id_body", "The harbour is closed until Wednesday.\n\nFerries run from the north pier.")
    page.check("input[name=change_when][value=schedule]")
    # Far enough ahead to be saved and looked at before it is due; in the editor's zone.
    due = (timezone.now() + timedelta(seconds=25)).replace(microsecond=0)
    local = due.astimezone(ZoneInfo("America/New_York"))
    page.fill("#id_change_publish_at_0", local.strftime("%Y-%m-%d"))
    page.fill("#id_change_publish_at_1", local.strftime("%H:%M:%S"))
    # The body's preview follows the text (rendered by the server 300 ms after the last keystroke).
    page.wait_for_selector("#markdown-preview .markdown-preview-body:has-text('closed until Wednesday')")
    assert page.inner_text("#markdown-preview .markdown-preview-body").splitlines()[0] == \
        "The harbour is closed until Wednesday."
    screenshot(page, "change_form")
    click_and_load(page, "input[name=_continue]")
    assert "is scheduled for" in page.inner_text(".messagelist")
    revision = ArticleRevision.objects.get()
    assert (revision.status, revision.publish_at) == (RevisionStatus.SCHEDULED, due)
    changes = page.inner_text("fieldset:has-text('Changes to the live article')")
    assert "Scheduled for" in changes and "+Ferries run from the north pier." in changes
    assert "-The harbour is closed until Tuesday." in changes
    screenshot(page, "change_scheduled")

    # The reader's page keeps the live version until the change's second.
    reader = browser.new_context().new_page()
    reader.goto(f"{live_server.url}/articles/storm-closes-the-harbour/")
    assert "closed until Tuesday" in reader.inner_text("article")
    assert timezone.now() < due
    wait_for(lambda: (reader.reload() or True) and "closed until Wednesday" in reader.inner_text("article"),
             timeout=90, interval=0.5, message="the change on the public page")
    assert timezone.now() >= due
    assert "Updated" in reader.inner_text("article .date")
    screenshot(reader, "public_page_updated")

    revision.refresh_from_db()
    assert revision.status == RevisionStatus.APPLIED and revision.applied_at >= due
    page.reload()
    assert "applied" in page.inner_text("fieldset:has-text('Changes to the live article')").lower()
    assert "Change went live" in page.inner_text("fieldset:has-text('History')")
    screenshot(page, "change_applied")
