"""The unsubscribe link of every mail: a page with one button, and the RFC 8058 one-click POST."""

import pytest
from django.test import Client

from publisher.models import Subscriber
from publisher.subscriptions import read_unsubscribe_token, unsubscribe_token, unsubscribe_url

pytestmark = pytest.mark.django_db


def test_the_link_is_absolute_under_the_site_url(settings):
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    subscriber = Subscriber.objects.create(email="reader@example.com")
    url = unsubscribe_url(subscriber.pk)
    assert url == f"https://news.example.com/unsubscribe/{unsubscribe_token(subscriber.pk)}/"
    assert read_unsubscribe_token(unsubscribe_token(subscriber.pk)) == subscriber.pk


def test_get_shows_one_button_and_changes_nothing(client):
    subscriber = Subscriber.objects.create(email="reader@example.com")
    response = client.get(f"/unsubscribe/{unsubscribe_token(subscriber.pk)}/")
    assert response.status_code == 200
    assert response.content.count(b"<button") == 1
    assert b'name="robots" content="noindex"' in response.content
    assert Subscriber.objects.get().is_active is True


def test_one_click_post_without_csrf_token_unsubscribes_once():
    subscriber = Subscriber.objects.create(email="reader@example.com")
    mail_client = Client(enforce_csrf_checks=True)  # a mail client sends no CSRF token (RFC 8058)
    path = f"/unsubscribe/{unsubscribe_token(subscriber.pk)}/"
    first = mail_client.post(path, {"List-Unsubscribe": "One-Click"})
    again = mail_client.post(path, {"List-Unsubscribe": "One-Click"})
    assert (first.status_code, again.status_code) == (200, 200)
    assert b"You are unsubscribed" in again.content
    assert b'Unsubscribed by mistake? <a href="/subscribe/">Subscribe again</a>' in again.content  # the way back
    assert Subscriber.objects.get().is_active is False


@pytest.mark.parametrize("token", ["1", "1:forged", "x" * 300, f"{'9' * 30}:abc"])
def test_a_forged_token_unsubscribes_no_one(client, token):
    Subscriber.objects.create(email="reader@example.com")
    response = client.post(f"/unsubscribe/{token}/")
    assert response.status_code == 404
    assert b"This link does not work" in response.content
    assert Subscriber.objects.get().is_active is True


def test_a_token_of_another_salt_is_refused(client):
    from django.core import signing

    subscriber = Subscriber.objects.create(email="reader@example.com")
    other = signing.Signer(salt="publisher.something-else").sign(str(subscriber.pk))
    assert client.post(f"/unsubscribe/{other}/").status_code == 404
    assert Subscriber.objects.get().is_active is True
