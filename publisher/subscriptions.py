"""Subscribing and unsubscribing: double opt-in, signed links, and the limits that keep the
subscribe form from being used to mail strangers.

Two links, each signed with SECRET_KEY under a salt of its own, so a token made for one purpose
can never serve the other:
- the confirmation link expires (PUBLISHER_CONFIRM_DAYS) and carries the subscriber's id and a
  digest of their subscription state, so it works once: after confirming (or unsubscribing) the
  state changed and an old link confirms nothing, however often it is replayed;
- the unsubscribe link never expires (a mail read a year later must still work) and carries only
  the subscriber's id.

The form answers the same, after the same work, whether or not an address is known: the
request only enqueues a task and the worker decides, so a stranger learns nothing about who
subscribed, not even from the time the answer takes. A confirmed address gets no second mail;
an address gets at most PUBLISHER_SUBSCRIBE_PER_ADDRESS confirmation mails an hour whoever asks,
and one client makes at most PUBLISHER_SUBSCRIBE_PER_IP requests an hour.
"""

import enum
import hashlib
import logging
import smtplib

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.crypto import salted_hmac

from publisher import dispatch
from publisher.models import Subscriber, SubscriberSource, normalize_address
from publisher.site.links import absolute_url

logger = logging.getLogger(__name__)

UNSUBSCRIBE_SALT = "publisher.subscriptions.unsubscribe"
CONFIRM_SALT = "publisher.subscriptions.confirm"
THROTTLE_WINDOW = 3600  # seconds: the limits are per hour


class Requested(enum.Enum):
    MAILED = "mailed"                  # a confirmation mail went out
    ALREADY_RECEIVING = "receiving"    # confirmed and active: no mail, the same answer
    ADDRESS_LIMIT = "address-limit"    # this address had its mails for the hour: none, the same answer
    MAIL_REFUSED = "mail-refused"      # the mail server refused the address for good (5xx)


class Confirmed(enum.Enum):
    CONFIRMED = "confirmed"            # this call confirmed it
    ALREADY = "already"                # the link was used before (or another one was): nothing changed
    USED = "used"                      # an old link, and the address is not subscribed now: nothing changed
    EXPIRED = "expired"
    INVALID = "invalid"                # forged, mangled, or its subscriber is gone


# --- Unsubscribing ---------------------------------------------------------------------------

def unsubscribe_token(subscriber_id: int) -> str:
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(str(subscriber_id))


def unsubscribe_urls():
    """`unsubscribe_url` for many subscribers (one article's senders): the URL is reversed once
    and the signer made once; each call then only signs the id (same URL, several times cheaper)."""
    signer = signing.Signer(salt=UNSUBSCRIBE_SALT)
    placeholder = "token0placeholder"
    before, found, after = unsubscribe_url_for_token(placeholder).partition(placeholder)
    if not found or placeholder in after:
        raise RuntimeError("the unsubscribe URL must hold its token once")
    # The signer's HMAC keyed once and copied per id (its key derivation is most of a signature);
    # checked against the signer itself, which is used as it is if they ever differ.
    keyed = salted_hmac(signer.salt + "signer", "", signer.key, algorithm=signer.algorithm)

    def sign(value: str) -> str:
        mac = keyed.copy()
        mac.update(value.encode())
        return f"{value}{signer.sep}{signing.b64_encode(mac.digest()).decode()}"

    if sign("0") != signer.sign("0"):
        sign = signer.sign
    return lambda subscriber_id: f"{before}{sign(str(subscriber_id))}{after}"


def unsubscribe_url_for_token(token: str) -> str:
    return absolute_url(None, reverse("site:unsubscribe", args=[token]))


def read_unsubscribe_token(token: str) -> int:
    """The subscriber id a token was made for; signing.BadSignature when forged or mangled."""
    value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
    if not value.isdigit():
        raise signing.BadSignature("not a subscriber id")
    return int(value)


def unsubscribe_url(subscriber_id: int) -> str:
    """Absolute URL of the subscriber's unsubscribe page (PUBLISHER_SITE_URL when set); the same
    URL takes the RFC 8058 one-click POST (List-Unsubscribe)."""
    return unsubscribe_url_for_token(unsubscribe_token(subscriber_id))


def subscriptions_unsubscribe(*, subscriber_id: int) -> bool:
    """Stop every mail to this subscriber at once: the senders' claim selects only receiving
    subscribers, so even notifications already queued are not sent. True when this call changed
    something; a second call, or an unknown id, changes nothing."""
    return bool(Subscriber.objects.filter(pk=subscriber_id, unsubscribed_at__isnull=True).update(
        is_active=False, unsubscribed_at=Now()))


# --- Subscribing -----------------------------------------------------------------------------

def _state(subscriber: Subscriber) -> str:
    """Changes whenever the subscription does (confirmed, unsubscribed, switched on or off)."""
    raw = f"{subscriber.email}|{subscriber.is_active}|{subscriber.confirmed_at}|{subscriber.unsubscribed_at}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def confirm_token(subscriber: Subscriber) -> str:
    return signing.TimestampSigner(salt=CONFIRM_SALT).sign(f"{subscriber.pk}:{_state(subscriber)}")


class NotQueued(Exception):
    """The broker refused the confirmation task: nothing records the request, ask again."""


def subscriptions_request(*, email: str, site_url: str) -> None:
    """Ask for a subscription (the form). The same work whatever the address: no database read,
    one confirmation task enqueued on commit, so neither the answer nor its timing tells a
    stranger whether an address is subscribed (the task decides, in a worker). `site_url` is the
    origin the link is made from (PUBLISHER_SITE_URL, or the request's). Raises NotQueued when
    the broker refuses: no row records the request (an unknown address has none), so the caller
    must tell the reader to try again; a row left for a sweep would itself answer slower."""
    address = normalize_address(email)
    transaction.on_commit(lambda: _enqueue_confirmation(address, site_url))


def _enqueue_confirmation(address: str, site_url: str) -> None:
    try:
        dispatch.send_confirmation(email=address, site_url=site_url)
    except Exception as exc:  # kombu raises several types for an unreachable broker
        raise NotQueued(f"the confirmation mail could not be queued: {type(exc).__name__}: {exc}") from exc


def subscriptions_send_confirmation(*, email: str, site_url: str, count: bool = True) -> Requested:
    """The confirmation task's work: mail `email` a confirmation link unless it already receives
    mail or had its share of confirmation mails this hour. A new address is stored pending; a
    known one is left as it is until the link is used. Each attempt is recorded in
    confirmation_sent_at (the cleanup keeps a pending row while its newest link works).
    `count`: False on the task's retries, which must not spend the address's share again.
    Raises ConnectionError when the mail server is unreachable, drops the connection or answers
    "try later" (4xx): the task retries; a refusal (5xx) is logged and answers MAIL_REFUSED."""
    address = normalize_address(email)
    subscriber = Subscriber.objects.with_address(address).first()
    if subscriber is not None and subscriber.receiving:
        return Requested.ALREADY_RECEIVING
    if count and not _within_limit("address", address.lower(), settings.PUBLISHER_SUBSCRIBE_PER_ADDRESS):
        logger.info("subscribe: confirmation mails to one address capped for this hour")
        return Requested.ADDRESS_LIMIT
    if subscriber is None:
        try:
            with transaction.atomic():
                subscriber = Subscriber.objects.create(email=address, source=SubscriberSource.SITE, confirmed_at=None)
        except IntegrityError:  # the same address, a moment ago, in another task
            subscriber = Subscriber.objects.with_address(address).get()
            if subscriber.receiving:
                return Requested.ALREADY_RECEIVING
    url = site_url + reverse("site:confirm", args=[confirm_token(subscriber)])
    # Recorded before sending, after signing: a worker that dies once the mail left must not
    # leave the row looking older than the link it mailed (the cleanup would delete it early).
    Subscriber.objects.filter(pk=subscriber.pk).update(confirmation_sent_at=Now())
    if not _send_confirmation(subscriber, url):
        return Requested.MAIL_REFUSED
    return Requested.MAILED


def _send_confirmation(subscriber: Subscriber, url: str) -> bool:
    """True once the mail server took the message; False when it refused it for good."""
    context = {"url": url, "site_name": settings.PUBLISHER_SITE_NAME, "days": settings.PUBLISHER_CONFIRM_DAYS}
    message = EmailMultiAlternatives(
        subject=f"Confirm your subscription to {settings.PUBLISHER_SITE_NAME}",
        body=render_to_string("publisher/email/confirm_subscription.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[subscriber.email],
    )
    message.attach_alternative(render_to_string("publisher/email/confirm_subscription.html", context), "text/html")
    try:
        message.send()
    except smtplib.SMTPException as exc:
        if isinstance(exc, smtplib.SMTPServerDisconnected) or _temporary(exc):
            raise ConnectionError(f"the mail server did not take the confirmation mail, yet: {exc}") from exc
        logger.warning("subscribe: the mail server refused the confirmation mail (subscriber %s): %s",
                       subscriber.pk, exc)
        return False
    except OSError as exc:  # refused, unreachable, timed out: a retry can fix it
        raise ConnectionError(f"cannot reach the mail server: {exc}") from exc
    return True


def _temporary(exc: smtplib.SMTPException) -> bool:
    """A 4xx answer (greylisting, a full queue): the server asks to try again later."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
    else:
        codes = [getattr(exc, "smtp_code", 0)]
    return bool(codes) and all(400 <= code < 500 for code in codes)


def _read_confirm_token(token: str) -> tuple[Subscriber | None, Confirmed | None, str]:
    """(subscriber, None, state the link was made for) for a good link, else (None, why, "")."""
    try:
        value = signing.TimestampSigner(salt=CONFIRM_SALT).unsign(
            token, max_age=settings.PUBLISHER_CONFIRM_DAYS * 86400)
    except signing.SignatureExpired:
        return None, Confirmed.EXPIRED, ""
    except signing.BadSignature:
        return None, Confirmed.INVALID, ""
    subscriber_id, _, state = value.partition(":")
    subscriber = Subscriber.objects.filter(pk=int(subscriber_id)).first() if subscriber_id.isdigit() else None
    return subscriber, None if subscriber else Confirmed.INVALID, state


def subscriptions_confirm(*, token: str, dry_run: bool = False) -> Confirmed:
    """Confirm the subscription a link was mailed for: the address receives mail from now on.
    Compare-and-set on the state the link was made for, so a link works once and two clicks
    at the same moment confirm once. `dry_run`: what confirming would answer, changing nothing
    (the page a link opens, before its button is pressed)."""
    subscriber, refused, state = _read_confirm_token(token)
    if refused:
        return refused
    if dry_run:
        return Confirmed.CONFIRMED if state == _state(subscriber) else _used(subscriber)
    with transaction.atomic():
        # The row locked (SQLite: the write lock taken at BEGIN), so the state compared is the
        # state changed; a second click waits and then finds the state moved on.
        subscriber = Subscriber.objects.select_for_update().filter(pk=subscriber.pk).first()
        if subscriber is None:
            return Confirmed.INVALID
        if state != _state(subscriber):
            return _used(subscriber)
        Subscriber.objects.filter(pk=subscriber.pk).update(confirmed_at=Now(), unsubscribed_at=None, is_active=True)
    return Confirmed.CONFIRMED


def _used(subscriber: Subscriber) -> Confirmed:
    return Confirmed.ALREADY if subscriber.receiving else Confirmed.USED


# --- Limits ----------------------------------------------------------------------------------

def subscriptions_client_allowed(*, client: str) -> bool:
    """Count one subscribe request from `client` (an IP address); False past
    PUBLISHER_SUBSCRIBE_PER_IP this hour."""
    return _within_limit("client", client, settings.PUBLISHER_SUBSCRIBE_PER_IP)


def _within_limit(kind: str, who: str, limit: int) -> bool:
    """Count one more for `who` in the current window (the cache: shared by every web process
    when CACHE_URL is Redis); False once past `limit`. The window starts at the first count."""
    key = f"publisher:subscribe:{kind}:{hashlib.sha256(who.encode()).hexdigest()[:32]}"
    cache.add(key, 0, timeout=THROTTLE_WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=THROTTLE_WINDOW)
        count = 1
    return count <= limit
