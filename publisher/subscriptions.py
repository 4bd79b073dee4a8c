"""Subscribers' links: the signed token in every unsubscribe link.

An unsubscribe link never expires (a mail read a year later must still work) and carries no
address, only the subscriber's id signed with SECRET_KEY under a salt of its own, so a token
made for another purpose (a confirmation link, a preview) can never unsubscribe anyone.
"""

from django.core import signing
from django.urls import reverse

from publisher.models import Subscriber
from publisher.site.links import absolute_url

UNSUBSCRIBE_SALT = "publisher.subscriptions.unsubscribe"


def unsubscribe_token(subscriber_id: int) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(subscriber_id))


def read_unsubscribe_token(token: str) -> int:
    """The subscriber id a token was made for; signing.BadSignature when forged or mangled."""
    value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    if not value.isdigit():
        raise signing.BadSignature("not a subscriber id")
    return int(value)


def unsubscribe_url(subscriber_id: int) -> str:
    """Absolute URL of the subscriber's unsubscribe page (PUBLISHER_SITE_URL when set); the same
    URL takes the RFC 8058 one-click POST (List-Unsubscribe)."""
    return absolute_url(None, reverse("site:unsubscribe", args=[unsubscribe_token(subscriber_id)]))


def subscriptions_unsubscribe(*, subscriber_id: int) -> bool:
    """Stop every mail to this subscriber at once. True when this call changed something; a
    second call, or an unknown id, changes nothing."""
    return bool(Subscriber.objects.filter(pk=subscriber_id, is_active=True).update(is_active=False))
