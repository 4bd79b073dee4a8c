"""The article page's subscriber e-mail: counts, the failed and interrupted addresses with their
reasons, and the publishers' Resend of the interrupted ones (confirmation page, then a POST)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from publisher import dispatch
from publisher.models import ArticleStatus, Notification, NotificationStatus
from publisher.notifications import INTERRUPTED_REASON
from tests import factories
from tests.factories import make_article, make_subscriber, make_user
from tests.support.admin import change_url

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def newsroom_groups(db):
    factories.newsroom_groups()


@pytest.fixture
def sends(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "send_notifications", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def article():
    now = timezone.now()
    article = make_article(title="Big news", status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(minutes=5),
                           published_at=now - timedelta(minutes=4))
    rows = [("ok@example.com", NotificationStatus.SENT, ""),
            ("nobody@example.com", NotificationStatus.FAILED, "SMTPRecipientsRefused: 550 5.1.1 no such user"),
            ("cut@example.com", NotificationStatus.INTERRUPTED, INTERRUPTED_REASON)]
    for address, status, reason in rows:
        Notification.objects.create(article=article, subscriber=make_subscriber(address), status=status,
                                    last_error=reason, expires_at=now + timedelta(hours=1))
    return article


def login(client, group: str, name: str):
    client.force_login(make_user(name, group))
    return client


def test_the_article_page_shows_delivery_and_a_publisher_can_resend_the_interrupted(client, article, sends,
                                                                                   django_capture_on_commit_callbacks):
    login(client, "Publishers", "paul")
    page = client.get(change_url(article)).content.decode()
    assert "3 notifications: pending 0, sending 0, sent 1, failed 1, expired 0, interrupted 1." in page
    assert "nobody@example.com" in page and "550 5.1.1 no such user" in page
    assert "cut@example.com" in page and "may or may not have been delivered" in page
    assert "ok@example.com" not in page
    url = reverse("admin:publisher_article_resend_notifications", args=[article.pk])
    assert url in page

    confirm = client.get(url)
    assert confirm.status_code == 200 and "may already have reached the subscriber" in confirm.content.decode()
    assert Notification.objects.get(subscriber__email="cut@example.com").status == NotificationStatus.INTERRUPTED

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url)
    assert response.status_code == 302 and response["Location"] == change_url(article)
    cut = Notification.objects.get(subscriber__email="cut@example.com")
    assert (cut.status, cut.last_error) == (NotificationStatus.PENDING, "")
    assert sends == [{"article_id": article.pk, "first_subscriber_id": cut.subscriber_id,
                      "last_subscriber_id": cut.subscriber_id}]
    assert Notification.objects.get(subscriber__email="nobody@example.com").status == NotificationStatus.FAILED


def test_an_editor_sees_delivery_but_cannot_resend(client, article, sends):
    login(client, "Editors", "edith")
    page = client.get(change_url(article)).content.decode()
    assert "interrupted 1" in page and "cut@example.com" in page
    url = reverse("admin:publisher_article_resend_notifications", args=[article.pk])
    assert url not in page
    assert client.get(url).status_code == 403
    assert client.post(url).status_code == 403
    assert Notification.objects.get(subscriber__email="cut@example.com").status == NotificationStatus.INTERRUPTED
    assert sends == []
