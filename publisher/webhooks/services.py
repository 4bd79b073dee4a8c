"""Signed webhooks through a transactional outbox.

`record` writes one delivery row per interested endpoint inside the transaction that changed
the article, so an event exists if and only if the change committed. Sending happens later,
off the publishing path, in a task on the `webhooks` queue; a dead or slow endpoint costs that
queue time, never the publishing chain. Delivery is at least once with a stable delivery id:
a sender claims a row by compare-and-set (`pending` -> `sending`, with a lease) before it
sends, a row whose sender died (lease expired) is sent again, and a row that got a 2xx is
`delivered` and never claimed again. The periodic sweep re-enqueues rows whose message was
lost, so a lost message (broker restart, worker killed) is only a delay.
"""

import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import signature
from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q
from django.db.models.functions import Now
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from publisher.site.links import absolute_url

from . import delivery as http
from . import signing
from .models import Delivery, DeliveryStatus, Endpoint, WebhookEvent

logger = logging.getLogger(__name__)

DELIVER = "publisher.webhooks.tasks.deliver"
ENQUEUE = "publisher.webhooks.tasks.enqueue"
# A retry due within this many seconds is enqueued with a countdown (well below the broker's
# visibility timeout); a later one is left to the sweep, which enqueues it when it falls due.
ENQUEUE_AHEAD = 60
USER_AGENT = "publisher-webhooks/1"

# The article status each event reports: a record call for an article not in it records nothing.
EVENT_STATUS = {
    WebhookEvent.PUBLISHED: ArticleStatus.PUBLISHED,
    WebhookEvent.UPDATED: ArticleStatus.PUBLISHED,
    WebhookEvent.UNPUBLISHED: ArticleStatus.EXPIRED,
}


def article_url(article: Article) -> str:
    """The article's public URL (PUBLISHER_SITE_URL + its path on the site)."""
    return absolute_url(None, article.get_absolute_url() or f"/articles/{article.pk}/")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _payload(*, delivery_id: uuid.UUID, event: str, article: Article, occurred_at: datetime) -> dict:
    return {
        "event": event,
        "delivery_id": str(delivery_id),
        "occurred_at": _iso(occurred_at),
        "article": {
            "id": article.pk,
            "slug": getattr(article, "slug", "") or None,
            "title": article.title,
            "url": article_url(article),
            "publish_at": _iso(article.publish_at),
            "published_at": _iso(article.published_at),
            "unpublish_at": _iso(article.unpublish_at),
            "updated_at": _iso(article.updated_at),
        },
    }


def _lease(seconds: float):
    """Now plus `seconds` by the database clock."""
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def _lease_seconds() -> float:
    # Longer than one attempt can take, so a live sender is never overtaken.
    return max(settings.PUBLISHER_WEBHOOKS_LEASE_SECONDS, 3 * settings.PUBLISHER_WEBHOOKS_TIMEOUT)


def record(*, event: str, article_ids: list[int]) -> int:
    """Write the outbox rows for `event` on these articles, one per enabled endpoint that
    wants it. Call it inside the transaction that made the change: the rows commit with it or
    not at all. Articles not (or no longer) in the event's status are skipped, and a second
    call for the same change records nothing (unique (endpoint, key)), so a re-run step is
    harmless. The rows are enqueued after commit. Returns the number of rows written."""
    event = WebhookEvent(event)
    if not article_ids:
        return 0
    endpoints = [endpoint for endpoint in Endpoint.objects.filter(enabled=True) if event in endpoint.events]
    if not endpoints:
        return 0
    now = timezone.now()
    # Due at once by the database clock too (the claim compares with it), even a little behind ours.
    due = now - timedelta(seconds=5)
    retry_until = now + timedelta(seconds=settings.PUBLISHER_WEBHOOKS_RETRY_WINDOW)
    lease_until = now + timedelta(seconds=_lease_seconds())
    rows = []
    for article in Article.objects.filter(pk__in=article_ids, status=EVENT_STATUS[event]).order_by("pk"):
        # The time of the change keys it: going live once is one event whatever re-runs it.
        changed_at = article.published_at if event == WebhookEvent.PUBLISHED else article.updated_at
        for endpoint in endpoints:
            delivery_id = uuid.uuid4()
            rows.append(Delivery(
                id=delivery_id, endpoint=endpoint, event=event, article=article,
                key=f"{event}:{article.pk}:{_iso(changed_at)}",
                payload=_payload(delivery_id=delivery_id, event=event, article=article, occurred_at=changed_at or now),
                next_attempt_at=due, retry_until=retry_until, lease_expires_at=lease_until,
            ))
    if not rows:
        return 0
    Delivery.objects.bulk_create(rows, ignore_conflicts=True)
    written = list(Delivery.objects.filter(pk__in=[row.pk for row in rows]).values_list("pk", flat=True))
    if written:
        # One message for the lot: a webhooks worker sends the per-delivery tasks, so the
        # publishing step that recorded them spends ~2 ms, not ~2 ms per delivery.
        transaction.on_commit(lambda: _send(ENQUEUE, {"delivery_ids": [str(pk) for pk in written]}, len(written)))
    return len(written)


def deliveries_enqueue(*, delivery_ids: list[str]) -> int:
    """Send one deliver task per delivery (the fan-out `record` hands to the webhooks queue)."""
    _enqueue(delivery_ids)
    return len(delivery_ids)


def _send(name: str, kwargs: dict, count: int) -> None:
    try:
        signature(name, kwargs=kwargs, ignore_result=True).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the sweep covers all
        logger.exception("enqueueing %d webhook deliveries failed; the sweep will retry them", count)


def _enqueue(delivery_ids, countdown: float | None = None) -> None:
    """Send one task per delivery. A broker error is logged, not raised: the row stays due and
    the sweep enqueues it again after its lease."""
    try:
        for delivery_id in delivery_ids:
            signature(DELIVER, kwargs={"delivery_id": str(delivery_id)}, ignore_result=True).apply_async(
                countdown=countdown)
    except Exception:  # kombu raises several types for an unreachable broker; the sweep covers all
        logger.exception("enqueueing %d webhook deliveries failed; the sweep will retry them", len(delivery_ids))


def backoff_seconds(attempt: int) -> float:
    """Delay before retry number `attempt` (1 after the first failure): exponential from
    PUBLISHER_WEBHOOKS_RETRY_BASE, capped at PUBLISHER_WEBHOOKS_RETRY_MAX_DELAY, with jitter
    (a random 50–100 % of it) so endpoints coming back are not hit by every retry at once."""
    delay = min(settings.PUBLISHER_WEBHOOKS_RETRY_BASE * 2 ** (attempt - 1), settings.PUBLISHER_WEBHOOKS_RETRY_MAX_DELAY)
    return delay * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class Attempt:
    outcome: str  # delivered, retry, failed, skipped (not claimable: done, not due, or another sender has it)
    status_code: int | None = None
    error: str = ""


def _claim(delivery_id) -> Delivery | None:
    claimable = (Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=Now())
                 | Q(status=DeliveryStatus.SENDING, lease_expires_at__lte=Now()))
    claimed = Delivery.objects.filter(claimable, pk=delivery_id).update(
        status=DeliveryStatus.SENDING, lease_expires_at=_lease(_lease_seconds()), attempts=F("attempts") + 1,
        updated_at=Now())
    if not claimed:
        return None
    return Delivery.objects.select_related("endpoint").get(pk=delivery_id)


def request_for(delivery: Delivery, *, now: float | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one attempt: the body is the same every time, the signature is
    made afresh (its timestamp is the time of sending)."""
    body = json.dumps(delivery.payload, sort_keys=True, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Publisher-Event": delivery.event,
        "X-Publisher-Delivery": str(delivery.pk),
        signing.HEADER: signing.sign(secret=delivery.endpoint.secret, body=body, now=now),
    }
    return body, headers


def delivery_attempt(*, delivery_id: str) -> Attempt:
    """Claim the delivery and POST it once. 2xx: `delivered`, never sent again. Anything else
    (3xx included: redirects are not followed), a timeout or a connection error: retried after
    a backoff until its retry window closes, then `failed`. A refused address or URL fails at
    once (retrying cannot fix it; fix the endpoint and redeliver)."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return Attempt("skipped")
    attempt = delivery.attempts
    ours = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.SENDING, attempts=attempt)
    endpoint = delivery.endpoint
    status_code, error, refused = None, "", False
    if not endpoint.enabled:
        error, refused = "The endpoint is disabled.", True
    else:
        body, headers = request_for(delivery)
        try:
            target = http.resolve(endpoint.url, allow_private=settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE)
            response = http.post(target, body=body, headers=headers, timeout=settings.PUBLISHER_WEBHOOKS_TIMEOUT)
        except http.DeliveryRefused as exc:
            error, refused = str(exc), True
        except (OSError, http.http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            status_code = response.status
            if 200 <= response.status < 300:
                ours.update(status=DeliveryStatus.DELIVERED, delivered_at=Now(), last_status_code=status_code,
                            last_error="", lease_expires_at=None, updated_at=Now())
                return Attempt("delivered", status_code)
            if 300 <= response.status < 400:
                error = f"HTTP {status_code}: redirect to {response.location or '(no Location)'} not followed."
            else:
                error = f"HTTP {status_code}: {response.body[:300].decode(errors='replace')}".strip()
    delay = backoff_seconds(attempt)
    next_at = timezone.now() + timedelta(seconds=delay)
    if refused or next_at > delivery.retry_until:
        ours.update(status=DeliveryStatus.FAILED, last_status_code=status_code, last_error=error[:2000],
                    lease_expires_at=None, updated_at=Now())
        logger.warning("webhook delivery %s failed after %d attempts: %s", delivery.pk, attempt, error)
        return Attempt("failed", status_code, error)
    soon = delay <= ENQUEUE_AHEAD
    # Due by the database clock, the one the claim compares with.
    updated = ours.update(status=DeliveryStatus.PENDING, next_attempt_at=_lease(delay), last_status_code=status_code,
                          last_error=error[:2000], updated_at=Now(),
                          lease_expires_at=_lease(delay + _lease_seconds()) if soon else None)
    if updated and soon:
        _enqueue([delivery.pk], countdown=delay)
    return Attempt("retry", status_code, error)


def deliveries_sweep(*, limit: int | None = None) -> int:
    """The periodic job: enqueue deliveries that are due and have no message on its way (lost
    message, retry due later than ENQUEUE_AHEAD) or whose sender died mid-send (lease expired).
    Bounded by PUBLISHER_WEBHOOKS_BATCH per run. Returns how many it enqueued."""
    limit = limit or settings.PUBLISHER_WEBHOOKS_BATCH
    stale = (Q(status=DeliveryStatus.PENDING, next_attempt_at__lte=Now())
             & (Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=Now()))
             ) | Q(status=DeliveryStatus.SENDING, lease_expires_at__lte=Now())
    with transaction.atomic():
        ids = list(Delivery.objects.filter(stale).order_by("next_attempt_at").values_list("pk", flat=True)[:limit])
        if not ids:
            return 0
        # Pending rows get a new "message on its way" lease, so the next sweep leaves them be;
        # a dead sender's row keeps its expired lease: the claim takes it over.
        Delivery.objects.filter(Q(pk__in=ids) & Q(status=DeliveryStatus.PENDING)).update(
            lease_expires_at=_lease(_lease_seconds()))
        transaction.on_commit(lambda: _enqueue(ids))
    logger.info("webhook sweep: enqueued %d due deliveries", len(ids))
    return len(ids)


@dataclass
class RedeliverResult:
    redelivered: list = None
    skipped: list = None  # (delivery, reason)


def deliveries_redeliver(*, delivery_ids: list) -> RedeliverResult:
    """The admin's *Redeliver*: a failed (or pending) delivery is sent again now, with the same
    delivery id and a fresh retry window. A delivered one is never sent again; one being sent
    right now is left to its sender."""
    result = RedeliverResult(redelivered=[], skipped=[])
    now = timezone.now()
    with transaction.atomic():
        for delivery in Delivery.objects.filter(pk__in=delivery_ids).order_by("created_at"):
            if delivery.status == DeliveryStatus.DELIVERED:
                result.skipped.append((delivery, "it was delivered (got a 2xx): it is never sent again"))
                continue
            if delivery.status == DeliveryStatus.SENDING:
                result.skipped.append((delivery, "it is being sent right now"))
                continue
            updated = Delivery.objects.filter(pk=delivery.pk, status=delivery.status).update(
                status=DeliveryStatus.PENDING, next_attempt_at=Now(), lease_expires_at=_lease(_lease_seconds()),
                retry_until=now + timedelta(seconds=settings.PUBLISHER_WEBHOOKS_RETRY_WINDOW), updated_at=Now())
            if updated:
                result.redelivered.append(delivery)
            else:
                result.skipped.append((delivery, "its status changed meanwhile"))
        ids = [delivery.pk for delivery in result.redelivered]
        if ids:
            transaction.on_commit(lambda: _enqueue(ids))
    return result
