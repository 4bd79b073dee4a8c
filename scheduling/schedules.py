"""The periodic jobs, declared once. `manage.py sync_schedules` writes them into
django-celery-beat's tables; beat (DatabaseScheduler) reads them from there, so an operator's
edit in the admin takes effect without a restart."""

from dataclasses import dataclass, field

from django.conf import settings


@dataclass(frozen=True)
class PeriodicJob:
    name: str  # the PeriodicTask name: the key the sync upserts by
    task: str
    every_seconds: float | None = None
    crontab: dict | None = None  # minute, hour, day_of_week, day_of_month, month_of_year
    queue: str = "scan"
    description: str = ""
    kwargs: dict = field(default_factory=dict)
    # Beat drops a run whose message waited longer than this (seconds): a stale scan is useless
    # because the next one is already due.
    expires_seconds: float | None = None


def declared_jobs() -> list[PeriodicJob]:
    interval = settings.PUBLISHER_SCAN_INTERVAL
    return [
        PeriodicJob(
            name="publisher: scan for due articles",
            task="scheduling.tasks.scan",
            every_seconds=interval,
            description="Claims due articles and dispatches their publishing chains; re-dispatches "
                        "expired claims; takes down articles whose unpublish time passed.",
            expires_seconds=max(interval * 3, 30),
        ),
    ]
