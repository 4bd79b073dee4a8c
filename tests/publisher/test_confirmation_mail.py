"""The confirmation task's work (subscriptions_send_confirmation) against a real SMTP server:
what a retry can fix (unreachable, dropped, "try later") raises ConnectionError so the task
retries; a refusal is final; a retry does not spend the address's hourly share again."""

import pytest
from django.core.cache import cache

from publisher import tasks
from publisher.models import Subscriber
from publisher.pipeline import TRANSIENT_ERRORS
from publisher.subscriptions import Requested, subscriptions_send_confirmation
from tests.support.smtp_server import SmtpServer

pytestmark = pytest.mark.django_db

SITE = "http://site.example"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()  # the hourly counters of earlier tests


@pytest.fixture
def picky_smtp(tmp_path, settings):
    """Greylists grey…, refuses nobody…, takes the rest."""
    server = SmtpServer(tmp_path / "smtp", temp_fail=r"^grey", perm_fail=r"^nobody").start()
    for name, value in server.env().items():
        setattr(settings, name, value if name in ("EMAIL_BACKEND", "EMAIL_HOST") else
                int(value) if name == "EMAIL_PORT" else False)
    yield server
    server.stop()


def test_a_taken_mail_is_recorded_with_its_link(picky_smtp):
    assert subscriptions_send_confirmation(email="reader@Example.com", site_url=SITE) is Requested.MAILED
    subscriber = Subscriber.objects.get()
    assert (subscriber.email, subscriber.confirmed_at) == ("reader@example.com", None)
    assert subscriber.confirmation_sent_at is not None
    (accepted,) = picky_smtp.accepted()
    assert accepted.rcpt_tos == ["reader@example.com"]
    assert f"{SITE}/subscribe/confirm/" in accepted.message.get_body(("plain",)).get_content()


def test_try_later_is_retried_and_a_refusal_is_final(picky_smtp):
    with pytest.raises(ConnectionError, match="did not take the confirmation mail, yet"):
        subscriptions_send_confirmation(email="grey@example.com", site_url=SITE)
    assert subscriptions_send_confirmation(email="nobody@example.com", site_url=SITE) is Requested.MAIL_REFUSED
    # Both rows stay pending; the attempt is recorded (the cleanup keeps them while a link may work).
    assert sorted(Subscriber.objects.values_list("email", "confirmed_at")) == [
        ("grey@example.com", None), ("nobody@example.com", None)]
    assert Subscriber.objects.filter(confirmation_sent_at__isnull=True).count() == 0
    assert picky_smtp.accepted() == []


def test_an_unreachable_mail_server_is_retried(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2  # nothing listens
    with pytest.raises(ConnectionError, match="cannot reach the mail server"):
        subscriptions_send_confirmation(email="reader@example.com", site_url=SITE)
    assert issubclass(ConnectionError, TRANSIENT_ERRORS)  # what the task retries on
    assert tasks.send_confirmation.autoretry_for == TRANSIENT_ERRORS


def test_a_retry_does_not_spend_the_hourly_share_again(settings, mailoutbox):
    settings.PUBLISHER_SUBSCRIBE_PER_ADDRESS = 1
    assert subscriptions_send_confirmation(email="reader@example.com", site_url=SITE) is Requested.MAILED
    assert subscriptions_send_confirmation(email="reader@example.com", site_url=SITE,
                                           count=False) is Requested.MAILED  # the task's retry
    assert subscriptions_send_confirmation(email="reader@example.com", site_url=SITE) is Requested.ADDRESS_LIMIT
    assert len(mailoutbox) == 2
