"""End to end with real processes: a change scheduled for a live article goes live on its
second through beat's scan and the worker's pipeline, and not before; readers see the old
version until then."""

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from publisher import revisions
from publisher.models import Article, ArticleEvent, ArticleRevision, ArticleStatus
from publisher.site.selectors import database_now
from publisher.states import RevisionStatus
from tests.factories import make_subscriber
from tests.support.invariants import task_succeeded
from tests.support.mail import read_mailbox
from tests.support.processes import SCAN_INTERVAL
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


def test_a_scheduled_change_goes_live_on_its_second_and_not_before(processes, article_factory, mailbox):
    make_subscriber("reader@example.com")
    editor = get_user_model().objects.create_user("ed", email="ed@example.com", password="x")
    now = timezone.now()
    article = article_factory(title="Old headline", body="Old text.", slug="story", status=ArticleStatus.PUBLISHED,
                              publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                              body_html="<p>Old text.</p>", excerpt="Old text.", word_count=2,
                              fanned_out_at=now - timedelta(hours=1))  # its own mail went out then
    call_command("sync_schedules")
    processes.worker()
    processes.beat()

    # Beyond the look-ahead: the change waits for beat's scan to claim it.
    due = timezone.now() + timedelta(seconds=settings.PUBLISHER_LOOKAHEAD + 3)
    revision = revisions.revision_create(article_id=article.pk, title="New headline", body="Corrected *text*.",
                                         image_alt="", publish_at=due, actor=editor)
    assert revision.status == RevisionStatus.SCHEDULED

    # A reader polls the page: the old version until the due second, the new one from then on.
    reader, url = Client(), reverse("site:article", kwargs={"slug": "story"})
    seen = []  # (database time the request started, database time it ended, which version it showed)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        asked_at = database_now()
        page = reader.get(url).content.decode()
        answered_at = database_now()
        assert ("Old headline" in page) != ("New headline" in page), page[:500]
        seen.append((asked_at, answered_at, "new" if "New headline" in page else "old"))
        if seen[-1][2] == "new":
            break
        time.sleep(0.05)
    assert seen[-1][2] == "new", ("the change never went live",
                                  ArticleRevision.objects.values("status", "attempts", "last_error").get(pk=revision.pk))
    assert [version for *_, version in seen[:-1]] == ["old"] * (len(seen) - 1)
    assert len(seen) > 20, "the reader saw the old version while the change waited"
    assert seen[-1][1] >= due, "the new version was shown before its time"
    assert seen[-1][0] < due + timedelta(seconds=SCAN_INTERVAL + 1.0), (seen[-1][0] - due)

    revision.refresh_from_db()
    article.refresh_from_db()
    assert revision.status == RevisionStatus.APPLIED and revision.applied_at >= due, "applied early"
    # The old version is served until the apply's transaction commits (applied_at is the database
    # time it started, a moment before), never from a cache after it.
    assert all(asked_at < revision.applied_at + timedelta(seconds=1) for asked_at, _, version in seen
               if version == "old")
    assert (article.title, article.body, article.body_html) == ("New headline", "Corrected *text*.",
                                                                "<p>Corrected <em>text</em>.</p>")
    assert article.status == ArticleStatus.PUBLISHED and article.revised_at == revision.applied_at
    assert list(ArticleEvent.objects.filter(article=article).order_by("id").values_list("action", flat=True)) == [
        "change_scheduled", "change_applied"]
    assert task_succeeded(processes, "publisher.tasks.process_revisions") == 1
    assert task_succeeded(processes, "publisher.tasks.apply_revisions") == 1
    # An update mails nobody unless the editor asked (and nobody was asked here).
    time.sleep(1)
    assert read_mailbox(mailbox) == []
    assert Article.objects.get(pk=article.pk).published_at == now - timedelta(hours=1)


def test_publish_the_change_now_goes_live_within_seconds(processes, article_factory):
    editor = get_user_model().objects.create_user("ed", email="ed@example.com", password="x")
    now = timezone.now()
    article = article_factory(title="Typo", body="Teh text.", slug="typo", status=ArticleStatus.PUBLISHED,
                              publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                              fanned_out_at=now - timedelta(hours=1))
    processes.worker()
    revision = revisions.revision_create(article_id=article.pk, title="Typo fixed", body="The text.", image_alt="",
                                         publish_at=None, actor=editor)
    wait_for(lambda: ArticleRevision.objects.get(pk=revision.pk).status == RevisionStatus.APPLIED, timeout=30,
             message="the change applied")
    article.refresh_from_db()
    assert (article.title, article.body_html) == ("Typo fixed", "<p>The text.</p>")
