"""Notifying subscribers: fan-out into Notification rows, then chunked sending.

Never twice: the database allows one row per (article, subscriber), and a sender claims rows
(`pending` -> `sending`) by compare-and-set before it sends, so a redelivered or duplicated
send task finds nothing left to claim. At most once: a row a crash left in `sending` is never
sent again. Never late: a row past `expires_at` becomes `expired` and is never claimed.
"""

import logging
import smtplib
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import get_connection
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.utils import timezone

from . import dispatch, emails, faults
from .models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber

logger = logging.getLogger(__name__)

NEW_ARTICLE = "new-article"
# The connection to the mail server is gone (not one recipient refused): the recipients not yet
# tried go back to `pending` for the task's retry.
MAIL_CONNECTION_ERRORS = (smtplib.SMTPServerDisconnected, ConnectionError, TimeoutError, SoftTimeLimitExceeded)


def notification_ttl(kind: str) -> int:
    """Seconds a notification of `kind` stays worth sending (PUBLISHER_NOTIFICATION_EXPIRY)."""
    return settings.PUBLISHER_NOTIFICATION_EXPIRY.get(kind, settings.PUBLISHER_NOTIFICATION_TTL)


def notifications_fan_out(*, article_id: int, after_subscriber_id: int = 0) -> int:
    """Create the pending notifications for one batch of active subscribers and enqueue their
    senders; re-enqueue itself for the next batch. Returns the number of subscribers covered."""
    if not Article.objects.filter(pk=article_id, status=ArticleStatus.PUBLISHED).exists():
        return 0
    batch = settings.PUBLISHER_FANOUT_BATCH
    subscriber_ids = list(
        Subscriber.objects.filter(is_active=True, pk__gt=after_subscriber_id).order_by("pk").values_list("pk", flat=True)[:batch]
    )
    if not subscriber_ids:
        return 0
    expires_at = timezone.now() + timedelta(seconds=notification_ttl(NEW_ARTICLE))
    with transaction.atomic():
        Notification.objects.bulk_create(
            [Notification(article_id=article_id, subscriber_id=sid, expires_at=expires_at) for sid in subscriber_ids],
            ignore_conflicts=True,
            batch_size=1000,
        )
        send = settings.PUBLISHER_SEND_BATCH
        for start in range(0, len(subscriber_ids), send):
            part = subscriber_ids[start:start + send]
            transaction.on_commit(lambda lo=part[0], hi=part[-1]: dispatch.send_notifications(
                article_id=article_id, first_subscriber_id=lo, last_subscriber_id=hi))
        if len(subscriber_ids) == batch:
            transaction.on_commit(lambda: dispatch.fan_out(article_id=article_id, after_subscriber_id=subscriber_ids[-1]))
    return len(subscriber_ids)


def notifications_expire() -> int:
    """Pending notifications past their expires_at become `expired` (never sent)."""
    return Notification.objects.filter(status=NotificationStatus.PENDING, expires_at__lte=Now()).update(
        status=NotificationStatus.EXPIRED, updated_at=Now())


def notifications_recover_stale(*, older_than: int, limit: int = 10_000) -> tuple[int, int]:
    """The notification sweeper. Pending rows untouched for `older_than` seconds lost their send
    message (broker restarted without persistence, worker killed): send them again (the claim
    keeps it at most once). Rows left `sending` that long were interrupted mid-send: whether the
    mail left is unknown, so they become `failed` and are never retried (never twice).
    Returns (re-dispatched, given up)."""
    cutoff = ExpressionWrapper(Now() - timedelta(seconds=older_than), output_field=DateTimeField())
    interrupted = Notification.objects.filter(status=NotificationStatus.SENDING, updated_at__lt=cutoff).update(
        status=NotificationStatus.FAILED,
        last_error="Interrupted while sending; not retried because the message may already have been delivered.",
        updated_at=Now(),
    )
    stale = list(
        Notification.objects.filter(status=NotificationStatus.PENDING, expires_at__gt=Now(), updated_at__lt=cutoff,
                                    article__status=ArticleStatus.PUBLISHED)
        .order_by("article_id", "subscriber_id").values_list("pk", "article_id", "subscriber_id")[:limit]
    )
    if not stale:
        return 0, interrupted
    with transaction.atomic():
        # Touch them so the next sweep waits another `older_than` before trying again.
        Notification.objects.filter(pk__in=[pk for pk, _, _ in stale], status=NotificationStatus.PENDING).update(
            updated_at=Now())
        batch = settings.PUBLISHER_SEND_BATCH
        by_article: dict[int, list[int]] = {}
        for _, article_id, subscriber_id in stale:
            by_article.setdefault(article_id, []).append(subscriber_id)
        for article_id, subscriber_ids in by_article.items():
            for start in range(0, len(subscriber_ids), batch):
                part = subscriber_ids[start:start + batch]
                transaction.on_commit(lambda a=article_id, lo=part[0], hi=part[-1]: dispatch.send_notifications(
                    article_id=a, first_subscriber_id=lo, last_subscriber_id=hi))
    logger.warning("notification sweeper: re-dispatched %d pending, gave up on %d interrupted", len(stale), interrupted)
    return len(stale), interrupted


def _claim(article_id: int, first_subscriber_id: int, last_subscriber_id: int) -> list[int]:
    with transaction.atomic():
        rows = Notification.objects.filter(
            article_id=article_id, subscriber_id__gte=first_subscriber_id, subscriber_id__lte=last_subscriber_id,
            status=NotificationStatus.PENDING,
        )
        rows.filter(expires_at__lte=Now()).update(status=NotificationStatus.EXPIRED, updated_at=Now())
        rows.filter(subscriber__is_active=False).update(
            status=NotificationStatus.EXPIRED, last_error="The subscriber unsubscribed before it was sent.",
            updated_at=Now())
        live = rows.filter(expires_at__gt=Now(), subscriber__is_active=True).order_by("pk")
        if connection.features.has_select_for_update_skip_locked:
            # Lock the notification rows only: locking the joined subscriber rows too would make
            # concurrent senders of other articles (same subscribers) skip each other's rows.
            live = live.select_for_update(skip_locked=True, of=("self",))
        ids = list(live.values_list("pk", flat=True))
        if ids:
            Notification.objects.filter(pk__in=ids, status=NotificationStatus.PENDING).update(
                status=NotificationStatus.SENDING, updated_at=Now())
    return ids


def notifications_send(*, article_id: int, first_subscriber_id: int, last_subscriber_id: int) -> tuple[int, int]:
    """Send the pending notifications of one article to a range of subscribers.
    The message is rendered once and re-addressed per subscriber. Returns (sent, failed)."""
    article = Article.objects.filter(pk=article_id, status=ArticleStatus.PUBLISHED).first()
    if article is None:
        # Taken down or deleted before its notifications went out: they are no longer news.
        Notification.objects.filter(article_id=article_id, status=NotificationStatus.PENDING).update(
            status=NotificationStatus.EXPIRED, last_error="The article is no longer published.", updated_at=Now())
        return 0, 0
    ids = _claim(article_id, first_subscriber_id, last_subscriber_id)
    if not ids:
        return 0, 0
    faults.checkpoint("send", title=article.title)
    claimed = Notification.objects.filter(pk__in=ids).select_related("subscriber").only("pk", "subscriber__email")
    prepared = emails.prepare_article_mail(article)
    mail = get_connection(fail_silently=False)
    try:
        mail.open()
    except (OSError, ConnectionError) as exc:
        # Nothing went out: give the rows back so the retry can claim them.
        _give_back(ids)
        if isinstance(exc, ConnectionError):
            raise
        raise ConnectionError(f"cannot connect to the mail server: {exc}") from exc  # so the task retries
    sent, failed = [], {}
    tried = set()
    try:
        for notification in claimed:
            tried.add(notification.pk)
            message = prepared.message_for(notification.subscriber.pk, notification.subscriber.email, connection=mail)
            try:
                message.send()
            except MAIL_CONNECTION_ERRORS as exc:
                # Whether this one left is unknown (never twice: it fails); the rest were never tried.
                failed[notification.pk] = f"{type(exc).__name__}: {exc}"
                _give_back([pk for pk in ids if pk not in tried])
                if isinstance(exc, smtplib.SMTPServerDisconnected):
                    raise ConnectionError(f"the mail server closed the connection: {exc}") from exc
                raise
            except Exception as exc:  # one bad address or refusal must not stop the others
                failed[notification.pk] = f"{type(exc).__name__}: {exc}"
            else:
                sent.append(notification.pk)
    finally:
        try:
            mail.close()
        except Exception:  # closing a broken connection must not hide what was sent
            logger.warning("closing the mail connection failed", exc_info=True)
        if sent:
            Notification.objects.filter(pk__in=sent).update(status=NotificationStatus.SENT, sent_at=Now(), updated_at=Now())
        for pk, error in failed.items():
            Notification.objects.filter(pk=pk).update(status=NotificationStatus.FAILED, last_error=error[:2000],
                                                           updated_at=Now())
    return len(sent), len(failed)


def _give_back(ids: list[int]) -> None:
    """Claimed rows that were never tried return to `pending` for the retry."""
    if ids:
        Notification.objects.filter(pk__in=ids, status=NotificationStatus.SENDING).update(
            status=NotificationStatus.PENDING, updated_at=Now())

