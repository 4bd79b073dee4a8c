"""Subscribing on the site: the form, the confirmation mail and its link, the neutral answer,
the limits, and the honeypot. The request only enqueues the confirmation task on the test
broker; `subscribe` then runs the task body on what was really queued (the worker's part; the
real worker is in tests/integration/test_subscribe_worker.py)."""

import re
import time
from datetime import timedelta

import pytest
from django.core import mail, signing
from django.test import Client, TestCase
from django.utils import timezone

from publisher import dispatch, tasks
from publisher.models import Subscriber, SubscriberSource
from publisher.subscriptions import CONFIRM_SALT, Confirmed, subscriptions_confirm, unsubscribe_token
from tests.support.brokers import BrokerQueue, queued_calls

pytestmark = pytest.mark.django_db

SENT_PAGE = "/subscribe/sent/"


@pytest.fixture(autouse=True)
def empty_notify_queue():
    BrokerQueue("notify").clear()


def subscribe(client, email, website="", **environ):
    """POST the form, then run the confirmation tasks it queued (their outcomes on the response,
    `confirmations`)."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = client.post("/subscribe/", {"email": email, "website": website}, **environ)
    response.confirmations = [tasks.send_confirmation(**kwargs)
                              for kwargs in queued_calls("notify", dispatch.CONFIRM)]
    return response


def confirm_link(message) -> str:
    """The confirmation path from a mail, checked to be the same in its text and HTML parts."""
    text = re.search(r"https?://\S+/subscribe/confirm/\S+/", message.body).group(0)
    html = message.alternatives[0].content
    assert f'href="{text}"' in html
    return text.split("://", 1)[1].partition("/")[2].join(["/", ""])


def test_subscribing_mails_one_confirmation_whose_link_confirms(client, settings):
    settings.PUBLISHER_SITE_NAME = "Harbour Times"
    settings.DEFAULT_FROM_EMAIL = "news@harbour.example"
    response = subscribe(client, "Reader@Example.COM")
    assert (response.status_code, response["Location"]) == (302, SENT_PAGE)
    subscriber = Subscriber.objects.get()
    assert (subscriber.email, subscriber.source, subscriber.confirmed_at, subscriber.receiving) == (
        "Reader@example.com", SubscriberSource.SITE, None, False)
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert (message.to, message.from_email, message.subject) == (
        ["Reader@example.com"], "news@harbour.example", "Confirm your subscription to Harbour Times")
    assert [kind for _, kind in message.alternatives] == ["text/html"]
    path = confirm_link(message)

    page = client.get(path)  # what a mail scanner opening the link does: nothing changes
    assert page.status_code == 200 and b"<button" in page.content
    assert b'name="robots" content="noindex"' in page.content
    assert Subscriber.objects.get().confirmed_at is None

    done = client.post(path)
    assert done.status_code == 200 and b"You are subscribed" in done.content
    confirmed = Subscriber.objects.get()
    assert confirmed.receiving and confirmed.confirmed_at is not None
    assert list(Subscriber.objects.receiving()) == [confirmed]

    again = client.post(path)  # replayed: a clear page, nothing changes twice
    assert again.status_code == 200 and b"You are already subscribed" in again.content
    assert Subscriber.objects.get().confirmed_at == confirmed.confirmed_at


def test_the_sent_page_and_form_are_not_cached_and_not_indexed(client):
    for path in ("/subscribe/", SENT_PAGE):
        response = client.get(path)
        assert response.status_code == 200
        assert "no-store" in response["Cache-Control"]
        assert b'name="robots" content="noindex"' in response.content


def test_the_small_form_on_cached_pages_prefills_the_subscribe_form(client, live_article):
    article = live_article()
    for path in ("/", article.get_absolute_url()):
        page = client.get(path).content.decode()
        assert 'action="/subscribe/"' in page and 'method="get"' in page
        assert "csrfmiddlewaretoken" not in page  # a cached page must not carry one reader's token
    page = client.get("/subscribe/", {"email": "reader@example.com"}).content.decode()
    assert 'value="reader@example.com"' in page and "csrfmiddlewaretoken" in page


def test_the_form_needs_its_csrf_token():
    browser = Client(enforce_csrf_checks=True)
    assert browser.post("/subscribe/", {"email": "reader@example.com"}).status_code == 403
    assert (Subscriber.objects.count(), len(mail.outbox)) == (0, 0)


@pytest.mark.parametrize("state", ["unknown", "pending", "confirmed", "unsubscribed", "switched off"])
def test_the_answer_is_the_same_whoever_the_address_belongs_to(client, state, django_assert_num_queries):
    now = timezone.now()
    fields = {"pending": {"confirmed_at": None}, "confirmed": {},
              "unsubscribed": {"is_active": False, "unsubscribed_at": now}, "switched off": {"is_active": False}}
    if state != "unknown":
        Subscriber.objects.create(email="reader@example.com", **fields[state])
    # The request does the same work whatever the address: no query, one task queued on commit,
    # so its timing tells nothing either; the worker decides.
    with django_assert_num_queries(0), TestCase.captureOnCommitCallbacks(execute=True) as callbacks:
        response = client.post("/subscribe/", {"email": "READER@example.com", "website": ""})
    assert (response.status_code, response["Location"], len(callbacks)) == (302, SENT_PAGE, 1)
    (queued,) = queued_calls("notify", dispatch.CONFIRM)
    assert queued == {"email": "READER@example.com", "site_url": "http://testserver"}
    # A confirmed, active address gets no second mail; every other one gets a link.
    assert tasks.send_confirmation(**queued) == ("receiving" if state == "confirmed" else "mailed")
    assert Subscriber.objects.count() == 1
    assert len(mail.outbox) == (0 if state == "confirmed" else 1)
    if mail.outbox:  # to the address as stored (the local part as first typed)
        assert mail.outbox[0].to == [Subscriber.objects.get().email]


def test_resubscribing_goes_through_the_confirmation_again(client):
    subscriber = Subscriber.objects.create(email="reader@example.com")
    first = client.post(f"/unsubscribe/{unsubscribe_token(subscriber.pk)}/")
    assert first.status_code == 200
    gone = Subscriber.objects.get()
    assert (gone.is_active, gone.unsubscribed_at is not None, gone.receiving) == (False, True, False)
    assert Subscriber.objects.receiving().count() == 0

    subscribe(client, "reader@example.com")
    assert not Subscriber.objects.get().receiving  # not before the link is used
    path = confirm_link(mail.outbox[0])
    assert b"You are subscribed" in client.post(path).content
    back = Subscriber.objects.get()
    assert (back.pk, back.receiving, back.unsubscribed_at) == (subscriber.pk, True, None)

    # Unsubscribed again: the confirmation link of the last round must not bring them back.
    client.post(f"/unsubscribe/{unsubscribe_token(subscriber.pk)}/")
    replay = client.post(path)
    assert replay.status_code == 410 and b"This link was already used" in replay.content
    assert not Subscriber.objects.get().receiving


def test_an_expired_link_confirms_nothing(client, settings):
    settings.PUBLISHER_CONFIRM_DAYS = 7
    subscribe(client, "reader@example.com")
    path = confirm_link(mail.outbox[0])
    token = path.split("/")[-2]
    value = signing.TimestampSigner(salt=CONFIRM_SALT).unsign(token)
    old = signing.TimestampSigner(salt=CONFIRM_SALT)
    old.timestamp = lambda: signing.b62_encode(int((timezone.now() - timedelta(days=7, seconds=1)).timestamp()))
    expired = old.sign(value)
    for method in (client.get, client.post):
        response = method(f"/subscribe/confirm/{expired}/")
        assert response.status_code == 410 and b"This link has expired" in response.content
    assert Subscriber.objects.get().confirmed_at is None
    assert subscriptions_confirm(token=token) is Confirmed.CONFIRMED  # the fresh one still works


@pytest.mark.parametrize("token", ["x", "1:abc:def", "x" * 300])
def test_a_forged_link_confirms_nothing(client, token):
    subscribe(client, "reader@example.com")
    response = client.post(f"/subscribe/confirm/{token}/")
    assert response.status_code == 404 and b"This link does not work" in response.content
    assert Subscriber.objects.get().confirmed_at is None


def test_a_link_of_another_salt_confirms_nothing(client):
    subscribe(client, "reader@example.com")
    subscriber = Subscriber.objects.get()
    # The unsubscribe token (never expires, no state) is no confirmation link...
    assert client.post(f"/subscribe/confirm/{unsubscribe_token(subscriber.pk)}/").status_code == 404
    # ...and a confirmation link unsubscribes no one.
    confirm_token = confirm_link(mail.outbox[0]).split("/")[-2]
    assert client.post(f"/unsubscribe/{confirm_token}/").status_code == 404
    assert Subscriber.objects.get().confirmed_at is None


@pytest.mark.parametrize(("email", "error"), [
    ("", "Enter your e-mail address."),
    ("not an address", "Enter an e-mail address such as name@example.com."),
    ("reader@", "Enter an e-mail address such as name@example.com."),
    ("a" * 250 + "@example.com", "An e-mail address is at most 254 characters long (this one has 262)."),
])
def test_a_malformed_or_overlong_address_gets_a_clear_error(client, email, error):
    response = subscribe(client, email)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert (Subscriber.objects.count(), len(mail.outbox)) == (0, 0)


def test_the_honeypot_gets_the_same_answer_and_nothing_happens(client):
    response = subscribe(client, "stranger@example.com", website="http://spam.example")
    assert (response.status_code, response["Location"]) == (302, SENT_PAGE)
    assert (Subscriber.objects.count(), len(mail.outbox)) == (0, 0)


def test_one_client_is_throttled(client, settings):
    settings.PUBLISHER_SUBSCRIBE_PER_IP = 10
    statuses = [subscribe(client, f"reader{i}@example.com").status_code for i in range(50)]
    assert statuses == [302] * 10 + [429] * 40
    assert len(mail.outbox) == 10
    refused = subscribe(client, "one-more@example.com")
    assert refused["Retry-After"] == "3600"
    assert "Too many requests" in refused.content.decode()
    # Another client is not held up by that one.
    assert subscribe(client, "other@example.com", REMOTE_ADDR="192.0.2.7").status_code == 302
    assert len(mail.outbox) == 11


def test_one_address_gets_at_most_its_mails_an_hour_whoever_asks(client, settings):
    settings.PUBLISHER_SUBSCRIBE_PER_ADDRESS = 3
    statuses = [subscribe(client, "Victim@Example.com", REMOTE_ADDR=f"198.51.100.{i}").status_code
                for i in range(20)]
    assert statuses == [302] * 20  # the same answer: the asker learns nothing
    assert len(mail.outbox) == 3
    assert Subscriber.objects.count() == 1


def test_behind_a_proxy_the_client_is_the_forwarded_address(client, settings):
    settings.PUBLISHER_SUBSCRIBE_PER_IP = 1
    settings.PUBLISHER_PROXY_COUNT = 1
    # The client may send its own X-Forwarded-For; the proxy appends the address it saw.
    first = subscribe(client, "a@example.com", HTTP_X_FORWARDED_FOR="10.0.0.1, 203.0.113.5")
    spoofed = subscribe(client, "b@example.com", HTTP_X_FORWARDED_FOR="10.0.0.2, 203.0.113.5")
    other = subscribe(client, "c@example.com", HTTP_X_FORWARDED_FOR="203.0.113.6")
    assert (first.status_code, spoofed.status_code, other.status_code) == (302, 429, 302)


@pytest.mark.django_db(transaction=True)  # autocommit: the enqueue runs inside the request, as in production
@pytest.mark.parametrize("state", ["unknown", "confirmed"])
def test_a_broker_that_does_not_answer_gets_a_clear_answer(client, dead_broker, state, capsys):
    """Nothing records the request (an unknown address has no row), so the reader is told to try
    again, whatever the address: the same 503 for a subscribed one."""
    if state == "confirmed":
        Subscriber.objects.create(email="reader@example.com")
    started = time.monotonic()
    response = subscribe(client, "reader@example.com")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert "We could not take your request just now. Please try again in a few minutes." in response.content.decode()
    assert 'value="reader@example.com"' in response.content.decode()  # the form again, filled in
    assert Subscriber.objects.count() == (1 if state == "confirmed" else 0)
    with capsys.disabled():
        print(f"\nsubscribe with the broker down ({state}): 503 after {elapsed:.2f} s")
