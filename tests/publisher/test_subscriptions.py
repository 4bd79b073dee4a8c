"""Only receiving subscribers (confirmed, active, not unsubscribed) are notified: the fan-out
selects them, and the sender's claim drops anyone who left after the fan-out."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from publisher.models import ArticleStatus, Notification, NotificationStatus, Subscriber, normalize_address
from publisher.notifications import notifications_fan_out, notifications_send
from publisher.subscriptions import subscriptions_unsubscribe
from tests.factories import make_article

pytestmark = pytest.mark.django_db


@pytest.fixture
def everyone():
    now = timezone.now()
    return {
        "confirmed": Subscriber.objects.create(email="confirmed@example.com"),
        "pending": Subscriber.objects.create(email="pending@example.com", confirmed_at=None),
        "unsubscribed": Subscriber.objects.create(email="gone@example.com", is_active=False, unsubscribed_at=now),
        "switched off": Subscriber.objects.create(email="off@example.com", is_active=False),
    }


def test_the_fan_out_covers_confirmed_active_subscribers_only(everyone, django_capture_on_commit_callbacks):
    article = make_article(status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=False):  # no broker here: the rows are the point
        assert notifications_fan_out(article_id=article.pk) == 1
    assert list(Notification.objects.values_list("subscriber__email", flat=True)) == ["confirmed@example.com"]
    assert list(Subscriber.objects.receiving()) == [everyone["confirmed"]]
    assert Subscriber.objects.counts() == {"confirmed": 1, "pending": 1, "unsubscribed": 1, "switched_off": 1}


def test_unsubscribing_after_the_fan_out_stops_the_queued_mail(everyone, mailoutbox):
    article = make_article(status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    expires = timezone.now() + timedelta(hours=1)
    rows = {name: Notification.objects.create(article=article, subscriber=s, expires_at=expires)
            for name, s in everyone.items()}
    assert subscriptions_unsubscribe(subscriber_id=everyone["confirmed"].pk) is True
    assert subscriptions_unsubscribe(subscriber_id=everyone["confirmed"].pk) is False  # again: nothing changes
    ids = [s.pk for s in everyone.values()]
    assert notifications_send(article_id=article.pk, first_subscriber_id=min(ids), last_subscriber_id=max(ids)) == (0, 0)
    assert mailoutbox == []
    for row in rows.values():
        row.refresh_from_db()
        assert (row.status, row.last_error) == (NotificationStatus.EXPIRED, "The subscriber unsubscribed before it was sent.")


def test_an_address_is_unique_whatever_its_case():
    assert normalize_address("  Reader.Name@Example.COM ") == "Reader.Name@example.com"
    first = Subscriber.objects.create(email="Reader@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        Subscriber.objects.create(email="reader@EXAMPLE.com")
    assert list(Subscriber.objects.with_address("READER@example.COM")) == [first]
