"""Thin Celery entry points: each takes ids and JSON primitives and calls one service.

Retries only on errors a retry can fix (database or broker connection trouble), bounded,
exponential with jitter, and capped at PUBLISHER_RETRY_BACKOFF_MAX, far below the broker's
visibility timeout so a retried message is never also redelivered.
"""

import random
from datetime import datetime

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from . import (alerts, notifications, pipeline, preflight, release_preflight, releases, revision_preflight, revisions,
               services, subscriptions)
from .log import log_context
from .pipeline import TRANSIENT_ERRORS

# make_live delivered early (host clock ahead of the database) waits ≥0.1 s a time: this many
# tries cover a skew of more than ten seconds.
EARLY_RETRIES = 100

RETRY_POLICY = {
    "bind": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "max_retries": settings.PUBLISHER_TASK_MAX_RETRIES,
    "retry_backoff": 1,
    "retry_backoff_max": settings.PUBLISHER_RETRY_BACKOFF_MAX,
    "retry_jitter": True,
}


@shared_task(name="publisher.tasks.process_articles", **RETRY_POLICY)
def process_articles(self, article_ids: list[int], token: str) -> list[int]:
    with log_context(claim_token=token, article_ids=article_ids):
        return pipeline.step_process(article_ids=article_ids, token=token)


@shared_task(name="publisher.tasks.generate_thumbnails", **RETRY_POLICY)
def generate_thumbnails(self, article_ids: list[int], token: str) -> list[int]:
    with log_context(claim_token=token, article_ids=article_ids):
        return pipeline.step_thumbnails(article_ids=article_ids, token=token)


@shared_task(name="publisher.tasks.make_live", **RETRY_POLICY)
def make_live(self, article_ids: list[int], token: str) -> list[int]:
    with log_context(claim_token=token, article_ids=article_ids):
        published, wait = pipeline.step_make_live(article_ids=article_ids, token=token)
    if wait:
        # Delivered before the database clock reached publish_at (clock skew): wait, never early.
        raise self.retry(countdown=wait, max_retries=EARLY_RETRIES)
    return published


@shared_task(name="publisher.tasks.schedule_flips", **RETRY_POLICY)
def schedule_flips(self, article_ids: list[int], token: str, flips: list[list]) -> int:
    with log_context(claim_token=token, article_ids=article_ids):
        return pipeline.step_schedule_flips(article_ids=article_ids, token=token, flips=flips)


@shared_task(name="publisher.tasks.notify_subscribers", **RETRY_POLICY)
def notify_subscribers(self, article_ids: list[int], token: str) -> int:
    with log_context(claim_token=token, article_ids=article_ids):
        return pipeline.step_notify(article_ids=article_ids, token=token)


@shared_task(name="publisher.tasks.record_chunk_failure")
def record_chunk_failure(request, exc, traceback, article_ids: list[int], token: str) -> int:
    """Errback of a publishing chain: runs once a step's retries are spent, also when the step
    itself succeeded but the broker refused the next step's message."""
    task = getattr(request, "task", None) or "a publishing step"
    with log_context(claim_token=token, article_ids=article_ids):
        return services.articles_step_gave_up(article_ids=article_ids, token=token,
                                              reason=f"{task} failed: {type(exc).__name__}: {exc}",
                                              # A soft time limit outside any one article's
                                              # budget is the chunk's size, not its content.
                                              transient=isinstance(exc, TRANSIENT_ERRORS + (SoftTimeLimitExceeded,)))


@shared_task(name="publisher.tasks.fan_out_notifications", **RETRY_POLICY)
def fan_out_notifications(self, article_id: int, after_subscriber_id: int = 0, revision_id: int | None = None) -> int:
    with log_context(article_id=article_id, revision_id=revision_id):
        return notifications.notifications_fan_out(article_id=article_id, after_subscriber_id=after_subscriber_id,
                                                   revision_id=revision_id)


@shared_task(name="publisher.tasks.send_notifications", **RETRY_POLICY)
def send_notifications(self, article_id: int, first_subscriber_id: int, last_subscriber_id: int,
                       revision_id: int | None = None) -> list[int]:
    with log_context(article_id=article_id, revision_id=revision_id):
        try:
            sent, failed = notifications.notifications_send(
                article_id=article_id, first_subscriber_id=first_subscriber_id, last_subscriber_id=last_subscriber_id,
                revision_id=revision_id)
        except notifications.DeliveryDeferred as exc:
            # Temporary (greylisting, a dropped connection, a full disk): retried with backoff for
            # as long as it takes; the rows' expires_at ends it (expired rows are never claimed).
            raise self.retry(exc=exc, countdown=backoff(self.request.retries), max_retries=None)
    return [sent, failed]


@shared_task(name="publisher.tasks.send_failure_alerts", **RETRY_POLICY)
def send_failure_alerts(self, article_ids: list[int]) -> int:
    with log_context(article_ids=article_ids):
        return alerts.failure_alerts_send(article_ids=article_ids)


@shared_task(name="publisher.tasks.preflight_articles", **RETRY_POLICY)
def preflight_articles(self, article_ids: list[int]) -> dict:
    with log_context(article_ids=article_ids):
        return preflight.articles_preflight(article_ids=article_ids)


@shared_task(name="publisher.tasks.send_preflight_alerts", **RETRY_POLICY)
def send_preflight_alerts(self, article_ids: list[int]) -> int:
    with log_context(article_ids=article_ids):
        return alerts.preflight_alerts_send(article_ids=article_ids)


def backoff(retries: int) -> float:
    """Exponential with full jitter, capped at PUBLISHER_RETRY_BACKOFF_MAX."""
    return random.uniform(0.5, 1.0) * min(settings.PUBLISHER_RETRY_BACKOFF_MAX, 2 ** retries)


@shared_task(name="publisher.tasks.send_confirmation", **RETRY_POLICY)
def send_confirmation(self, email: str, site_url: str) -> str:
    # A retry must not spend the address's hourly share of confirmation mails again.
    return subscriptions.subscriptions_send_confirmation(email=email, site_url=site_url,
                                                         count=not self.request.retries).value


# --- Releases (publisher.releases) ---------------------------------------------------------------

@shared_task(name="publisher.tasks.release_members_prepared", **RETRY_POLICY)
def release_members_prepared(self, article_ids: list[int], token: str, release_id: int) -> bool:
    with log_context(claim_token=token, article_ids=article_ids):
        return releases.release_members_prepared(release_id=release_id, token=token, article_ids=article_ids)


@shared_task(name="publisher.tasks.release_flip", **RETRY_POLICY)
def release_flip(self, release_id: int, token: str) -> list[int]:
    with log_context(claim_token=token):
        flip = releases.release_flip(release_id=release_id, token=token)
    if flip.wait:
        # Delivered before the database clock reached the release time (clock skew): never early.
        raise self.retry(countdown=flip.wait, max_retries=EARLY_RETRIES)
    with log_context(claim_token=token, article_ids=flip.published):
        pipeline.step_notify(article_ids=flip.published, token=token)
    return flip.published


@shared_task(name="publisher.tasks.release_roll_back", **RETRY_POLICY)
def release_roll_back(self, release_id: int, at: str) -> int:
    rolled = releases.release_roll_back(release_id=release_id, at=datetime.fromisoformat(at))
    if rolled.wait:
        # Delivered before the database clock reached the rollback time (clock skew): never early.
        raise self.retry(countdown=rolled.wait, max_retries=EARLY_RETRIES)
    return rolled.done


@shared_task(name="publisher.tasks.record_release_chunk_failure")
def record_release_chunk_failure(request, exc, traceback, release_id: int, article_ids: list[int], token: str) -> int:
    task = getattr(request, "task", None) or "a publishing step"
    with log_context(claim_token=token, article_ids=article_ids):
        return releases.release_chunk_gave_up(release_id=release_id, article_ids=article_ids, token=token,
                                              reason=f"{task} failed: {type(exc).__name__}: {exc}",
                                              transient=isinstance(exc, TRANSIENT_ERRORS + (SoftTimeLimitExceeded,)))


@shared_task(name="publisher.tasks.release_changes_prepared", **RETRY_POLICY)
def release_changes_prepared(self, revision_ids: list[int], token: str, release_id: int) -> bool:
    with log_context(claim_token=token, revision_ids=revision_ids):
        return releases.release_members_prepared(release_id=release_id, token=token, article_ids=[],
                                                 revision_ids=revision_ids)


@shared_task(name="publisher.tasks.record_release_changes_failure")
def record_release_changes_failure(request, exc, traceback, release_id: int, revision_ids: list[int],
                                   token: str) -> int:
    task = getattr(request, "task", None) or "a publishing step"
    with log_context(claim_token=token, revision_ids=revision_ids):
        return releases.release_change_chunk_gave_up(
            release_id=release_id, revision_ids=revision_ids, token=token,
            reason=f"{task} failed: {type(exc).__name__}: {exc}",
            transient=isinstance(exc, TRANSIENT_ERRORS + (SoftTimeLimitExceeded,)))


@shared_task(name="publisher.tasks.send_release_alert", **RETRY_POLICY)
def send_release_alert(self, release_id: int) -> int:
    return releases.release_alert_send(release_id=release_id)


# --- Changes to live articles (publisher.revisions) ---------------------------------------------

@shared_task(name="publisher.tasks.process_revisions", **RETRY_POLICY)
def process_revisions(self, revision_ids: list[int], token: str) -> list[int]:
    with log_context(claim_token=token, revision_ids=revision_ids):
        return revisions.step_process(revision_ids=revision_ids, token=token)


@shared_task(name="publisher.tasks.generate_revision_thumbnails", **RETRY_POLICY)
def generate_revision_thumbnails(self, revision_ids: list[int], token: str) -> list[int]:
    with log_context(claim_token=token, revision_ids=revision_ids):
        return revisions.step_thumbnails(revision_ids=revision_ids, token=token)


@shared_task(name="publisher.tasks.apply_revisions", **RETRY_POLICY)
def apply_revisions(self, revision_ids: list[int], token: str) -> list[int]:
    with log_context(claim_token=token, revision_ids=revision_ids):
        applied, wait = revisions.step_apply(revision_ids=revision_ids, token=token)
    if wait:
        # Delivered before the database clock reached the change's time: wait, never early.
        raise self.retry(countdown=wait, max_retries=EARLY_RETRIES)
    return applied


@shared_task(name="publisher.tasks.record_revision_chain_failure")
def record_revision_chain_failure(request, exc, traceback, revision_ids: list[int], token: str) -> int:
    """Errback of a change's chain: runs once a step's retries are spent."""
    task = getattr(request, "task", None) or "a publishing step"
    with log_context(claim_token=token, revision_ids=revision_ids):
        return revisions.revisions_step_gave_up(
            revision_ids=revision_ids, token=token, reason=f"{task} failed: {type(exc).__name__}: {exc}",
            transient=isinstance(exc, TRANSIENT_ERRORS + (SoftTimeLimitExceeded,)))


@shared_task(name="publisher.tasks.send_revision_failure_alerts", **RETRY_POLICY)
def send_revision_failure_alerts(self, revision_ids: list[int]) -> int:
    with log_context(revision_ids=revision_ids):
        return revisions.revision_failure_alerts_send(revision_ids=revision_ids)


@shared_task(name="publisher.tasks.preflight_release", **RETRY_POLICY)
def preflight_release(self, release_id: int) -> str:
    with log_context(release_id=release_id):
        return release_preflight.release_preflight(release_id=release_id)


@shared_task(name="publisher.tasks.send_release_preflight_alert", **RETRY_POLICY)
def send_release_preflight_alert(self, release_id: int) -> int:
    with log_context(release_id=release_id):
        return alerts.release_preflight_alert_send(release_id=release_id)


@shared_task(name="publisher.tasks.preflight_revisions", **RETRY_POLICY)
def preflight_revisions(self, revision_ids: list[int]) -> dict:
    with log_context(revision_ids=revision_ids):
        return revision_preflight.revisions_preflight(revision_ids=revision_ids)


@shared_task(name="publisher.tasks.send_revision_preflight_alerts", **RETRY_POLICY)
def send_revision_preflight_alerts(self, revision_ids: list[int]) -> int:
    with log_context(revision_ids=revision_ids):
        return alerts.revision_preflight_alerts_send(revision_ids=revision_ids)
