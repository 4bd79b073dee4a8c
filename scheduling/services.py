"""The periodic jobs' business rules: writing the declared schedules, the scan, heartbeats."""

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask, PeriodicTasks

from publisher import notifications
from publisher import services as publisher_services

from .models import Heartbeat
from .schedules import PeriodicJob, declared_jobs

logger = logging.getLogger(__name__)


@dataclass
class SyncResult:
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    disabled: list[str]


def _interval(seconds: float) -> IntervalSchedule:
    if float(seconds).is_integer():
        every, period = int(seconds), IntervalSchedule.SECONDS
    else:
        every, period = int(round(seconds * 1_000_000)), IntervalSchedule.MICROSECONDS
    schedule, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    return schedule


def _schedule_fields(job: PeriodicJob) -> dict:
    fields = {
        "task": job.task,
        "queue": job.queue,
        "kwargs": json.dumps(job.kwargs, sort_keys=True),
        "description": job.description,
        "expire_seconds": int(job.expires_seconds) if job.expires_seconds else None,
        "interval": None,
        "crontab": None,
    }
    if job.every_seconds is not None:
        fields["interval"] = _interval(job.every_seconds)
    else:
        fields["crontab"], _ = CrontabSchedule.objects.get_or_create(timezone=settings.TIME_ZONE, **job.crontab)
    return fields


def schedules_sync(*, reset: bool = False, jobs: list[PeriodicJob] | None = None) -> SyncResult:
    """Upsert the declared jobs into django-celery-beat by name. Idempotent. Rows that exist are
    left as an operator edited them unless `reset`; declared rows that were removed from code
    are disabled, never deleted (their run history stays)."""
    jobs = declared_jobs() if jobs is None else jobs
    result = SyncResult([], [], [], [])
    with transaction.atomic():
        for job in jobs:
            existing = PeriodicTask.objects.filter(name=job.name).first()
            if existing is None:
                PeriodicTask.objects.create(name=job.name, enabled=True, **_schedule_fields(job))
                result.created.append(job.name)
            elif reset:
                for field, value in _schedule_fields(job).items():
                    setattr(existing, field, value)
                existing.enabled = True
                existing.save()
                result.updated.append(job.name)
            else:
                result.unchanged.append(job.name)
        declared = {job.name for job in jobs}
        ours = PeriodicTask.objects.filter(task__startswith="scheduling.tasks.", enabled=True).exclude(name__in=declared)
        result.disabled = list(ours.values_list("name", flat=True))
        if result.disabled:
            ours.update(enabled=False)
            PeriodicTasks.update_changed()
    return result


def heartbeat_record(*, name: str, detail: dict | None = None) -> None:
    Heartbeat.objects.update_or_create(name=name, defaults={"last_seen_at": timezone.now(), "detail": detail or {}})


def scan_run() -> dict:
    """One scan: publish what is due, re-dispatch expired claims, take down what expired.
    Safe to run concurrently (claims are compare-and-set). Returns what it did, and whether
    it hit the batch cap (the caller then runs it again at once)."""
    claim = publisher_services.articles_claim_due()
    reclaimed, given_up = publisher_services.articles_reclaim_expired_leases()
    taken_down = publisher_services.articles_take_down_expired()
    resent, interrupted = notifications.notifications_recover_stale(older_than=settings.PUBLISHER_LEASE_SECONDS)
    summary = {
        "claimed": len(claim.article_ids) if claim else 0,
        "reclaimed": len(reclaimed.article_ids) if reclaimed else 0,
        "given_up": given_up,
        "taken_down": taken_down,
        "notifications_resent": resent,
        "notifications_interrupted": interrupted,
    }
    summary["more"] = summary["claimed"] >= settings.PUBLISHER_SCAN_BATCH
    heartbeat_record(name="scan", detail=summary)
    if any(value for key, value in summary.items() if key != "more"):
        logger.info("scan: %s", summary)
    return summary
