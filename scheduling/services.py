"""The periodic jobs' business rules: writing the declared schedules, the scan, heartbeats,
notification expiry, cleanup and the beat lock. The daily report lives in reports.py."""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from publisher import notifications, preflight, release_preflight, releases, revision_preflight, revisions
from publisher import services as publisher_services
from publisher.models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber
from publisher.webhooks.models import Delivery, DeliveryStatus

from .models import DailyReport, Heartbeat, JobRun, ReportEmailStatus, SchedulerLock
from .schedules import PeriodicJob, declared_jobs

logger = logging.getLogger(__name__)


@dataclass
class SyncResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    disabled: list[str]
    # Rows kept as they are although they differ from the declaration (an operator's edit in the
    # admin): name -> what differs.
    edited: dict[str, list[str]] = field(default_factory=dict)


def _interval(seconds: float) -> IntervalSchedule:
    every, period = _interval_spec(seconds)
    schedule = IntervalSchedule.objects.filter(every=every, period=period).order_by("pk").first()
    return schedule or IntervalSchedule.objects.create(every=every, period=period)


def _interval_spec(seconds: float) -> tuple[int, str]:
    if float(seconds).is_integer():
        return int(seconds), IntervalSchedule.SECONDS
    return int(round(seconds * 1_000_000)), IntervalSchedule.MICROSECONDS


def _crontab(spec: dict) -> CrontabSchedule:
    # The admin lets operators create duplicates: take the oldest match rather than fail.
    schedule = CrontabSchedule.objects.filter(timezone=settings.TIME_ZONE, **spec).order_by("pk").first()
    return schedule or CrontabSchedule.objects.create(timezone=settings.TIME_ZONE, **spec)


def _schedule_fields(job: PeriodicJob) -> dict:
    fields = {
        "task": job.task,
        "queue": job.queue,
        "kwargs": json.dumps(job.kwargs, sort_keys=True),
        "description": job.description,
        "expire_seconds": int(job.expires_seconds) if job.expires_seconds else None,
        "interval": None,
        "crontab": None,
        "solar": None,
        "clocked": None,
    }
    if job.every_seconds is not None:
        fields["interval"] = _interval(job.every_seconds)
    else:
        fields["crontab"] = _crontab(job.crontab)
    return fields


def _differences(task: PeriodicTask, job: PeriodicJob) -> list[str]:
    """What an operator changed on a declared row (compared without creating schedule rows)."""
    diffs = []
    if task.task != job.task:
        diffs.append("task")
    if job.every_seconds is not None:
        interval = task.interval
        if interval is None or (interval.every, interval.period) != _interval_spec(job.every_seconds):
            diffs.append("schedule")
    else:
        crontab = task.crontab
        if crontab is None or str(crontab.timezone) != settings.TIME_ZONE or any(
                str(getattr(crontab, key)) != str(value) for key, value in job.crontab.items()):
            diffs.append("schedule")
    if (task.queue or None) != job.queue:
        diffs.append("queue")
    if json.loads(task.kwargs or "{}") != job.kwargs:
        diffs.append("kwargs")
    if task.expire_seconds != (int(job.expires_seconds) if job.expires_seconds else None):
        diffs.append("expiry")
    if not task.enabled:
        diffs.append("disabled")
    return diffs


def schedules_sync(*, reset: bool = False, jobs: list[PeriodicJob] | None = None, dry_run: bool = False) -> SyncResult:
    """Upsert the declared jobs into django-celery-beat by name. Idempotent. Rows that exist are
    left as an operator edited them unless `reset`; declared rows that were removed from code
    are disabled, never deleted (their run history stays). Beat notices every change through
    PeriodicTasks (no restart). With `dry_run` nothing is written."""
    jobs = declared_jobs() if jobs is None else jobs
    result = SyncResult([], [], [], [])
    with transaction.atomic():
        for job in jobs:
            existing = PeriodicTask.objects.filter(name=job.name).select_related("interval", "crontab").first()
            if existing is None:
                PeriodicTask.objects.create(name=job.name, enabled=True, **_schedule_fields(job))
                result.created.append(job.name)
            elif reset:
                for field_name, value in _schedule_fields(job).items():
                    setattr(existing, field_name, value)
                existing.enabled = True
                existing.save()
                result.updated.append(job.name)
            else:
                result.unchanged.append(job.name)
                diffs = _differences(existing, job)
                if diffs:
                    result.edited[job.name] = diffs
        declared = {job.name for job in jobs}
        ours = (PeriodicTask.objects.filter(task__startswith="scheduling.tasks.", enabled=True)
                .exclude(name__in=declared))
        result.disabled = list(ours.values_list("name", flat=True))
        if result.disabled:
            ours.update(enabled=False)
            PeriodicTasks.update_changed()
        if dry_run:
            transaction.set_rollback(True)
    return result


def heartbeat_record(*, name: str, detail: dict | None = None) -> None:
    """Stamped with the database's clock, as health.py reads it: a skewed host writes no heartbeat
    from the past or the future."""
    Heartbeat.objects.update_or_create(name=name, defaults={"last_seen_at": Now(), "detail": detail or {}})


def scan_run() -> dict:
    """One scan: publish what is due, re-dispatch expired claims, take down what expired.
    Safe to run concurrently (claims are compare-and-set). Returns what it did, and whether
    it hit the batch cap (the caller then runs it again at once)."""
    claim = publisher_services.articles_claim_due()
    releases_claimed = releases.releases_claim_due()
    reclaimed, given_up = publisher_services.articles_reclaim_expired_leases()
    releases_reclaimed, releases_blocked = releases.releases_reclaim_expired_leases()
    # Changes to live articles: the same claim and sweeper (publisher.revisions).
    changes = revisions.revisions_claim_due()
    changes_reclaimed, changes_given_up = revisions.revisions_reclaim_expired_leases()
    taken_down = publisher_services.articles_take_down_expired()
    releases_rolled_back = releases.releases_roll_back_due()  # the safety net: a rollback message lost
    rollbacks_dispatched = releases.releases_dispatch_rollbacks_due()
    resent, interrupted = notifications.notifications_recover_stale(older_than=settings.PUBLISHER_LEASE_SECONDS)
    fan_outs = notifications.notifications_recover_fan_outs()
    # After the claim: what is due within the look-ahead is published, not checked ahead.
    preflights = preflight.articles_preflight_dispatch()
    release_preflights = release_preflight.releases_preflight_dispatch()
    change_preflights = revision_preflight.revisions_preflight_dispatch()
    summary = {
        "claimed": len(claim.article_ids) if claim else 0,
        "reclaimed": len(reclaimed.article_ids) if reclaimed else 0,
        "given_up": given_up,
        "taken_down": taken_down,
        "notifications_resent": resent,
        "notifications_interrupted": interrupted,
        "fan_outs_redispatched": fan_outs,
        "preflights_dispatched": preflights,
        "releases_claimed": len(releases_claimed),
        "releases_reclaimed": len(releases_reclaimed),
        "releases_blocked": releases_blocked,
        "releases_rolled_back": releases_rolled_back,
        "release_rollbacks_dispatched": rollbacks_dispatched,
        "changes_claimed": len(changes.article_ids) if changes else 0,
        "changes_reclaimed": len(changes_reclaimed.article_ids) if changes_reclaimed else 0,
        "changes_given_up": changes_given_up,
        "release_preflights_dispatched": release_preflights,
        "change_preflights_dispatched": change_preflights,
    }
    # The cap applies to the rows the claim examined: a batch used up by articles found expired or
    # missed after downtime still means due ones may wait behind it.
    summary["more"] = ((bool(claim) and claim.examined >= settings.PUBLISHER_SCAN_BATCH)
                       or (bool(changes) and changes.examined >= settings.PUBLISHER_SCAN_BATCH))
    heartbeat_record(name="scan", detail=summary)
    if any(value for key, value in summary.items() if key != "more"):
        logger.info("scan: %s", summary)
    return summary


def job_run_record(*, job: str, started_at: datetime, detail: dict) -> JobRun:
    """Keep what one run of a periodic job did (pruned after PUBLISHER_RUN_RETENTION_DAYS)."""
    return JobRun.objects.create(job=job, started_at=started_at, finished_at=timezone.now(), detail=detail)


# --- Notification expiry ------------------------------------------------------------------------

def notifications_expiry_run() -> dict:
    """Pending notifications past their expires_at become `expired` and are never sent. The
    send path refuses expired rows too, so a message redelivered late sends nothing even
    before this job has run; this job makes the state visible and final."""
    started = timezone.now()
    expired = notifications.notifications_expire()
    summary = {"expired": expired}
    heartbeat_record(name="notification-expiry", detail=summary)
    if expired:
        job_run_record(job="notification-expiry", started_at=started, detail=summary)
        logger.info("expired %d notifications not sent in time", expired)
    return summary


# --- Cleanup ------------------------------------------------------------------------------------

# Notifications in these states are finished; pending and sending ones belong to the sender and
# the sweeper, whatever their age.
FINISHED_NOTIFICATIONS = (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.EXPIRED,
                          NotificationStatus.INTERRUPTED)
# A report e-mail claimed this long ago and never finished was interrupted mid-send.
REPORT_EMAIL_LEASE = timedelta(hours=1)


@dataclass
class CleanupResult:
    task_results: str
    notifications: int = 0
    webhook_deliveries: int = 0
    job_runs: int = 0
    pending_subscribers: int = 0
    claims_redispatched: int = 0
    claims_given_up: int = 0
    report_emails_interrupted: int = 0
    more: bool = False
    dry_run: bool = False

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _delete_in_batches(queryset, *, batch: int, max_batches: int) -> tuple[int, bool]:
    """Delete the rows of `queryset` by primary key, `batch` at a time, at most `max_batches`
    times: short transactions and short locks, whatever the backlog. Each DELETE repeats the
    queryset's conditions, so a row that changed since it was selected stays.
    Returns (deleted, whether more is left)."""
    deleted = 0
    for _ in range(max_batches):
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch])
        if not ids:
            return deleted, False
        count, _ = queryset.filter(pk__in=ids).delete()
        deleted += count
        if len(ids) < batch:
            return deleted, False
    return deleted, queryset.exists()


def result_expires_seconds() -> float:
    expires = current_app.conf.result_expires
    return expires.total_seconds() if isinstance(expires, timedelta) else float(expires or 0)


def task_results_prune(*, backend=None, dry_run: bool = False) -> str:
    """Task results past result_expires, if the result backend keeps them (a database or file
    backend): its own `cleanup()`, the one Celery defines for this. Redis and the other
    key-value backends expire results themselves (a TTL of result_expires); with results
    disabled there is nothing to prune. Returns what happened, in words."""
    backend = backend or current_app.backend
    name = type(backend).__name__
    expires = result_expires_seconds()
    if name == "DisabledBackend":
        return "skipped: no result backend is configured"
    if getattr(backend, "supports_autoexpire", False):
        return f"skipped: {name} expires results itself"
    if not expires:
        return f"skipped: result_expires is off, {name} keeps results"
    if dry_run:
        return f"would run {name}.cleanup() (results older than {expires:.0f} s)"
    backend.cleanup()
    return f"pruned by {name}.cleanup() (results older than {expires:.0f} s)"


def cleanup_run(*, now: datetime | None = None, dry_run: bool = False, backend=None) -> CleanupResult:
    """Keep state bounded: prune task results past result_expires (database result backends),
    finished notifications older than PUBLISHER_NOTIFICATION_RETENTION_DAYS, job runs older
    than PUBLISHER_RUN_RETENTION_DAYS and finished webhook deliveries older than
    PUBLISHER_WEBHOOKS_RETENTION_DAYS, and subscribers who never confirmed and whose newest
    confirmation link expired (PUBLISHER_CONFIRM_DAYS), in batches of PUBLISHER_CLEANUP_BATCH
    (`more` says run again); hand stuck article claims to the sweeper; mark report e-mails interrupted mid-send
    as failed (never resent). Never touches articles, their audit events or the daily reports.
    Safe to run twice at once: each delete repeats its conditions."""
    now = now or timezone.now()
    batch, max_batches = settings.PUBLISHER_CLEANUP_BATCH, settings.PUBLISHER_CLEANUP_MAX_BATCHES
    result = CleanupResult(task_results=task_results_prune(backend=backend, dry_run=dry_run), dry_run=dry_run)
    old_notifications = Notification.objects.filter(
        status__in=FINISHED_NOTIFICATIONS,
        created_at__lt=now - timedelta(days=settings.PUBLISHER_NOTIFICATION_RETENTION_DAYS))
    old_runs = JobRun.objects.filter(started_at__lt=now - timedelta(days=settings.PUBLISHER_RUN_RETENTION_DAYS))
    old_deliveries = Delivery.objects.filter(
        status__in=(DeliveryStatus.DELIVERED, DeliveryStatus.FAILED),
        created_at__lt=now - timedelta(days=settings.PUBLISHER_WEBHOOKS_RETENTION_DAYS))
    unconfirmed = Subscriber.objects.confirmation_lapsed(before=now - timedelta(days=settings.PUBLISHER_CONFIRM_DAYS))
    interrupted = DailyReport.objects.filter(email_status=ReportEmailStatus.SENDING,
                                             email_claimed_at__lt=now - REPORT_EMAIL_LEASE)
    if dry_run:
        result.notifications = old_notifications.count()
        result.job_runs = old_runs.count()
        result.webhook_deliveries = old_deliveries.count()
        result.pending_subscribers = unconfirmed.count()
        result.claims_redispatched = Article.objects.filter(status=ArticleStatus.PUBLISHING,
                                                            lease_expires_at__lte=now).count()
        result.report_emails_interrupted = interrupted.count()
        return result
    result.notifications, more_notifications = _delete_in_batches(old_notifications, batch=batch,
                                                                  max_batches=max_batches)
    result.job_runs, more_runs = _delete_in_batches(old_runs, batch=batch, max_batches=max_batches)
    result.webhook_deliveries, more_deliveries = _delete_in_batches(old_deliveries, batch=batch,
                                                                    max_batches=max_batches)
    result.pending_subscribers, more_pending = _delete_in_batches(unconfirmed, batch=batch, max_batches=max_batches)
    result.more = more_notifications or more_runs or more_deliveries or more_pending
    claim, result.claims_given_up = publisher_services.articles_reclaim_expired_leases()
    result.claims_redispatched = len(claim.article_ids) if claim else 0
    result.report_emails_interrupted = interrupted.update(
        email_status=ReportEmailStatus.FAILED,
        email_error="Interrupted while sending; not resent because some messages may already have gone out.")
    summary = result.as_dict()
    heartbeat_record(name="cleanup", detail=summary)
    job_run_record(job="cleanup", started_at=now, detail=summary)
    logger.info("cleanup: %s", summary)
    return result


# --- Beat lock ------------------------------------------------------------------------------------

def _lease(ttl: float):
    return ExpressionWrapper(Now() + timedelta(seconds=ttl), output_field=DateTimeField())


def scheduler_lock_acquire(*, name: str, owner: str, ttl: float) -> bool:
    """Take or renew the lease on `name` for `ttl` seconds: compare-and-set on the lock row,
    by the database clock (the one clock every host shares). True if `owner` holds it now."""
    if SchedulerLock.objects.filter(name=name).filter(Q(owner=owner) | Q(expires_at__lte=Now())).update(
            owner=owner, expires_at=_lease(ttl)):
        return True
    try:
        with transaction.atomic():
            SchedulerLock.objects.create(name=name, owner=owner, expires_at=_lease(ttl))
    except IntegrityError:
        return False  # someone else holds it (or just took it)
    return True


def scheduler_lock_release(*, name: str, owner: str) -> bool:
    """Give the lease up at once (a clean stop), so a standby need not wait for it to run out."""
    return bool(SchedulerLock.objects.filter(name=name, owner=owner).delete()[0])
