"""End to end with real processes and a real SMTP server: a scheduled change to a live article
with *Notify subscribers of this update* goes live through beat's scan and the worker's
pipeline, and each active subscriber receives exactly one "Updated:" mail with their own
unsubscribe URL; a later change without the tick mails no one."""

import time
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from publisher import revisions
from publisher.models import ArticleRevision, ArticleStatus, Notification, NotificationStatus
from publisher.states import RevisionStatus
from publisher.subscriptions import unsubscribe_url
from tests.factories import make_subscriber
from tests.support.mail import ARTICLE_MAIL_HEADERS, article_mail
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SITE = "https://news.example.com"


def test_a_ticked_scheduled_change_mails_each_subscriber_one_update_over_smtp(
        processes, article_factory, smtp_server, settings):
    settings.PUBLISHER_SITE_URL = SITE
    readers = [make_subscriber(f"reader{i}@example.com") for i in range(3)]
    make_subscriber("gone@example.com", active=False)
    editor = get_user_model().objects.create_user("ed", email="ed@example.com", password="x")
    now = timezone.now()
    article = article_factory(title="Old headline", body="Old text.", slug="story", status=ArticleStatus.PUBLISHED,
                              publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                              body_html="<p>Old text.</p>", excerpt="Old text.", word_count=2,
                              fanned_out_at=now - timedelta(hours=1))
    # Its own mail went out an hour ago: the update is another mail, not a duplicate of it.
    for reader in readers:
        Notification.objects.create(article=article, subscriber=reader, status=NotificationStatus.SENT,
                                    sent_at=now - timedelta(hours=1), expires_at=now)
    call_command("sync_schedules")
    processes.worker(**smtp_server.env(), PUBLISHER_SITE_URL=SITE, DEFAULT_FROM_EMAIL="News <news@example.com>",
                     PUBLISHER_EMAIL_CONTENT="full")
    processes.beat()

    # Beyond the look-ahead: beat's scan claims it, the pipeline applies it on its second.
    due = timezone.now() + timedelta(seconds=django_settings.PUBLISHER_LOOKAHEAD + 2)
    revision = revisions.revision_create(article_id=article.pk, title="New headline", body="Corrected *text*.",
                                         image_alt="", publish_at=due, notify_subscribers=True, actor=editor)
    wait_for(lambda: Notification.objects.filter(revision=revision, status=NotificationStatus.SENT).count() == 3,
             timeout=90, message="3 update mails sent")
    time.sleep(1.5)  # a duplicate would have arrived by now

    revision.refresh_from_db()
    assert revision.status == RevisionStatus.APPLIED and revision.applied_at >= due
    assert revision.fanned_out_at is not None
    accepted = smtp_server.accepted()
    assert sorted(rcpt for item in accepted for rcpt in item.rcpt_tos) == [r.email for r in readers]
    by_address = {item.rcpt_tos[0]: item for item in accepted}
    for reader in readers:
        mail = article_mail(by_address[reader.email].message)
        url = unsubscribe_url(reader.pk)
        assert (mail.unsubscribe_header, mail.text_unsubscribe, mail.html_unsubscribe) == (url, url, url)
        assert sorted(mail.headers) == sorted(ARTICLE_MAIL_HEADERS)
        assert (mail.to, mail.subject) == (reader.email, "Updated: New headline")
        assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "This article was updated since we last wrote to you." in mail.text
        assert "Corrected text." in mail.text and "Old text." not in mail.text
        assert "<em>text</em>" in mail.html and "This article was updated since we last wrote to you." in mail.html
        assert f"Read the article: {SITE}/" in mail.text
    # The article's own rows are untouched; one update row per active subscriber.
    key = lambda row: (row[0], row[1] or 0)  # noqa: E731
    assert sorted(Notification.objects.values_list("subscriber__email", "revision_id", "status"), key=key) == sorted(
        [(r.email, None, "sent") for r in readers] + [(r.email, revision.pk, "sent") for r in readers], key=key)

    # A change without the tick goes live and mails no one.
    quiet = revisions.revision_create(article_id=article.pk, title="Newer headline", body="Quiet fix.",
                                      image_alt="", publish_at=None, actor=editor)
    wait_for(lambda: ArticleRevision.objects.get(pk=quiet.pk).status == RevisionStatus.APPLIED, timeout=30,
             message="the quiet change applied")
    time.sleep(1.5)
    assert len(smtp_server.accepted()) == 3
    assert Notification.objects.filter(revision=quiet).count() == 0
