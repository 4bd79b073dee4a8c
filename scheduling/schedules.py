"""The periodic jobs, declared once. `manage.py sync_schedules` writes them into
django-celery-beat's tables; beat (DatabaseScheduler) reads them from there, so an operator's
edit in the admin takes effect without a restart."""

from dataclasses import dataclass, field
from datetime import time

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# The PeriodicTask names: the keys the sync upserts by, and how other code finds a job's row.
SCAN = "publisher: scan for due articles"
NOTIFICATION_EXPIRY = "publisher: expire notifications"
CLEANUP = "publisher: clean up old records"
DAILY_REPORT = "publisher: daily report"
WEBHOOKS = "publisher: deliver due webhooks"


@dataclass(frozen=True)
class PeriodicJob:
    name: str  # the PeriodicTask name: the key the sync upserts by
    task: str
    every_seconds: float | None = None
    crontab: dict | None = None  # minute, hour, day_of_week, day_of_month, month_of_year (in TIME_ZONE)
    queue: str = "scan"
    description: str = ""
    kwargs: dict = field(default_factory=dict)
    # Beat drops a run whose message waited longer than this (seconds): a stale scan is useless
    # because the next one is already due.
    expires_seconds: float | None = None


def report_time() -> time:
    """PUBLISHER_REPORT_AT ("HH:MM", local time) as a time."""
    raw = settings.PUBLISHER_REPORT_AT
    try:
        hour, minute = (int(part) for part in str(raw).split(":"))
        return time(hour, minute)
    except ValueError:
        raise ImproperlyConfigured(
            f"PUBLISHER_REPORT_AT must be a local time as HH:MM (e.g. 08:00), got {raw!r}.") from None


def declared_jobs() -> list[PeriodicJob]:
    interval = settings.PUBLISHER_SCAN_INTERVAL
    expiry = settings.PUBLISHER_EXPIRY_INTERVAL
    at = report_time()
    return [
        PeriodicJob(
            name=SCAN,
            task="scheduling.tasks.scan",
            every_seconds=interval,
            description="Claims due articles and dispatches their publishing chains; re-dispatches "
                        "expired claims; takes down articles whose unpublish time passed.",
            expires_seconds=max(interval * 3, 30),
        ),
        PeriodicJob(
            name=NOTIFICATION_EXPIRY,
            task="scheduling.tasks.expire_notifications",
            every_seconds=expiry,
            description="Pending notifications past their expiry time become expired and are never sent.",
            expires_seconds=max(expiry * 2, 30),
        ),
        PeriodicJob(
            name=CLEANUP,
            task="scheduling.tasks.cleanup",
            every_seconds=settings.PUBLISHER_CLEANUP_INTERVAL,
            description="Prunes task results, old notifications and job runs past their retention; "
                        "hands stuck claims to the sweeper. Never articles, audit events or reports.",
            expires_seconds=settings.PUBLISHER_CLEANUP_INTERVAL / 2,
        ),
        PeriodicJob(
            name=DAILY_REPORT,
            task="scheduling.tasks.daily_report",
            # A crontab in TIME_ZONE (the sync stores the zone on the schedule): 08:00 local on
            # every day, 23- and 25-hour days included. No expiry: a late report beats none.
            crontab={"minute": str(at.minute), "hour": str(at.hour), "day_of_week": "*",
                     "day_of_month": "*", "month_of_year": "*"},
            description="Builds the previous local day's report (and any missed day within "
                        "PUBLISHER_REPORT_CATCH_UP_DAYS) and mails it once to opted-in staff.",
        ),
        PeriodicJob(
            name=WEBHOOKS,
            task="publisher.webhooks.tasks.sweep",
            every_seconds=settings.PUBLISHER_WEBHOOKS_SWEEP_INTERVAL,
            description="Enqueues webhook deliveries that are due with no message on its way (a retry "
                        "due later, a lost message) or whose sender died mid-send.",
            expires_seconds=max(settings.PUBLISHER_WEBHOOKS_SWEEP_INTERVAL * 3, 30),
        ),
    ]
