"""A real worker publishes an article and mails every active subscriber through Django's SMTP
backend to a real SMTP server: both parts, every header, each reader's own one-click
unsubscribe URL, which unsubscribes that reader only."""

from urllib.parse import urlsplit

import pytest

from publisher import services
from publisher.models import Notification, NotificationStatus, Subscriber
from publisher.subscriptions import unsubscribe_url
from tests.factories import make_subscriber
from tests.support.mail import ARTICLE_MAIL_HEADERS, article_mail
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

SITE = "https://news.example.com"


def test_a_published_article_reaches_each_subscriber_over_smtp_with_their_own_unsubscribe_link(
        processes, article_factory, smtp_server, settings, client):
    settings.PUBLISHER_SITE_URL = SITE
    readers = [make_subscriber(f"reader{i}@example.com") for i in range(3)]
    make_subscriber("gone@example.com", active=False)
    processes.worker(**smtp_server.env(), PUBLISHER_SITE_URL=SITE, DEFAULT_FROM_EMAIL="News <news@example.com>",
                     PUBLISHER_EMAIL_CONTENT="full")
    article = article_factory(title="Grüße from the newsroom", body="# Today\n\nA [link](/about/).\n\n- one\n- two")

    services.article_publish_now(article_id=article.pk)
    wait_for(lambda: Notification.objects.filter(status=NotificationStatus.SENT).count() == 3,
             timeout=60, message="3 notifications sent")

    accepted = smtp_server.accepted()
    assert sorted(rcpt for item in accepted for rcpt in item.rcpt_tos) == [r.email for r in readers]
    article.refresh_from_db()
    public = SITE + article.get_absolute_url()  # the slug's non-ASCII letters percent-encoded
    by_address = {item.rcpt_tos[0]: item for item in accepted}
    for reader in readers:
        item = by_address[reader.email]
        assert item.mail_from == "news@example.com" and item.rcpt_tos == [reader.email]
        mail = article_mail(item.message)
        url = unsubscribe_url(reader.pk)
        assert (mail.unsubscribe_header, mail.text_unsubscribe, mail.html_unsubscribe) == (url, url, url)
        assert sorted(mail.headers) == sorted(ARTICLE_MAIL_HEADERS)
        assert mail.to == reader.email
        assert mail.subject == "New: Grüße from the newsroom"
        assert mail.headers["From"] == "News <news@example.com>"
        assert mail.headers["List-Id"] == "Publisher <articles.news.example.com>"
        assert mail.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert f"Read the article: {public}\n" in mail.text
        assert "Today\n=====\n\nA link (https://news.example.com/about/).\n\n- one\n- two" in mail.text
        assert f'<a href="{public}" ' in mail.html and "<h1>Today</h1>" in mail.html
    assert len({item.message["Message-ID"] for item in accepted}) == 3

    # The one-click POST (RFC 8058) to the second reader's URL unsubscribes that reader only.
    response = client.post(urlsplit(unsubscribe_url(readers[1].pk)).path, {"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert dict(Subscriber.objects.values_list("email", "is_active")) == {
        "reader0@example.com": True, "reader1@example.com": False, "reader2@example.com": True,
        "gone@example.com": False}
