"""A failure is written in the article's Activity and e-mailed (through a real SMTP server) to
whoever scheduled the article."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from publisher import alerts, dispatch, services
from publisher.models import ArticleEvent, ArticleEventAction, ArticleStatus
from tests import factories
from tests.factories import make_article, make_user


@pytest.fixture
def smtp_settings(settings, smtp_server):
    for name, value in smtp_server.env().items():
        setattr(settings, name, {"off": False}.get(value, int(value) if value.isdigit() else value))
    return smtp_server


@pytest.fixture
def alerted(monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "failure_alerts", lambda *, article_ids: sent.append(article_ids))
    return sent


def claimed_by(user, title="Photo essay"):
    article = make_article(title=title)
    services.article_schedule(article_id=article.pk, publish_at=timezone.now() + timedelta(seconds=30),
                              actor=user, claim_due=False)
    claim = services.articles_claim_due(article_ids=[article.pk], lookahead=60)
    return article, claim.token


def test_a_failure_is_in_the_activity_and_alerted_after_commit(db, alerted, django_capture_on_commit_callbacks,
                                                                client):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    article, token = claimed_by(editor)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.articles_fail_claimed(article_ids=[article.pk], token=token,
                                              reason="thumbnail: cannot identify image file") == 1
    assert alerted == [[article.pk]]
    event = ArticleEvent.objects.filter(article=article).first()
    assert (event.action, event.actor, event.previous_status, event.note) == (
        ArticleEventAction.FAILED, None, ArticleStatus.PUBLISHING, "thumbnail: cannot identify image file")
    # Idempotent: the claim no longer holds it, nothing more is recorded or alerted.
    with django_capture_on_commit_callbacks(execute=True):
        assert services.articles_fail_claimed(article_ids=[article.pk], token=token, reason="again") == 0
    assert alerted == [[article.pk]]
    client.force_login(editor)
    activity = client.get(reverse("admin:publisher_article_change", args=[article.pk])).content.decode()
    assert "<td>Publishing failed</td><td>system</td><td>thumbnail: cannot identify image file; was publishing</td>" \
        in activity


def test_the_scheduler_gets_the_alert_by_e_mail(db, alerted, smtp_settings, settings):
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    article, token = claimed_by(editor)
    services.articles_fail_claimed(article_ids=[article.pk], token=token, reason="process: bad markdown")
    nobody = make_article(title="Imported")  # scheduled by no one: logged, not mailed
    services.article_schedule(article_id=nobody.pk, publish_at=timezone.now() + timedelta(seconds=30),
                              claim_due=False)
    claim = services.articles_claim_due(article_ids=[nobody.pk], lookahead=60)
    services.articles_fail_claimed(article_ids=[nobody.pk], token=claim.token, reason="process: boom")

    assert alerts.failure_alerts_send(article_ids=[article.pk, nobody.pk]) == 1
    [accepted] = smtp_settings.accepted()
    assert accepted.rcpt_tos == ["edith@example.com"]
    assert accepted.message["Subject"] == "Publishing failed: Photo essay"
    body = accepted.message.get_content()
    assert "Reason: process: bad markdown" in body
    assert f"https://news.example.com/admin/publisher/article/{article.pk}/change/" in body
