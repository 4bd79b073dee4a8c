"""The pipeline status panel on the admin index: is anything publishing, and does it need a person?

Lives in `scheduling` because it reads both floors: the scan's heartbeat and beat schedule from
here, article counts and failures from publisher.selectors (publisher never imports scheduling).
A fixed handful of queries, whatever the table sizes.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from publisher import selectors
from publisher.models import Article, ArticleStatus

from .models import Heartbeat

SCAN_TASK = "scheduling.tasks.scan"
SCAN_HEARTBEAT = "scan"  # written by every scan: beat sent it and a worker ran it
BEAT_HEARTBEAT = "beat"  # written by beat itself where its scheduler does (scheduling/beat.py)
# Beat is presumed down when the scan's heartbeat is older than this many intervals (and at
# least ALIVE_MIN_SECONDS: beat wakes every CELERY_BEAT_MAX_LOOP_INTERVAL and a worker may be busy).
ALIVE_INTERVALS = 3
ALIVE_MIN_SECONDS = 15.0
RECENT_FAILURES = 5


@dataclass(frozen=True)
class ScanHealth:
    alive: bool
    message: str
    last_scan_at: datetime | None
    interval_seconds: float | None  # None: the scan has no enabled interval schedule
    age_seconds: float | None


@dataclass(frozen=True)
class PipelineStatus:
    counts: dict[str, int]
    scan: ScanHealth
    overdue: int
    stalled: int
    failures: list[Article] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def scan_interval_seconds() -> tuple[bool, float | None]:
    """(whether an enabled beat entry runs the scan, its interval in seconds if it has one)."""
    task = (PeriodicTask.objects.filter(task=SCAN_TASK, enabled=True).select_related("interval")
            .order_by("id").first())
    if task is None:
        return False, None
    if task.interval is None:
        return True, None  # a crontab (or other) schedule: no fixed interval to judge by
    return True, timedelta(**{task.interval.period: task.interval.every}).total_seconds()


def scan_health(*, now: datetime | None = None) -> ScanHealth:
    now = now or timezone.now()
    enabled, interval = scan_interval_seconds()
    seen = dict(Heartbeat.objects.filter(name__in=[SCAN_HEARTBEAT, BEAT_HEARTBEAT])
                .values_list("name", "last_seen_at"))
    beat = seen.get(SCAN_HEARTBEAT)
    if not enabled:
        return ScanHealth(False, "The scan is not scheduled: no enabled periodic task runs it. Run "
                                 "“manage.py sync_schedules”, or enable it under Periodic tasks.", beat, None, None)
    if beat is None:
        return ScanHealth(False, "No scan has run yet: start beat and a worker "
                                 "(celery -A settings beat, celery -A settings worker).", None, interval, None)
    age = max((now - beat).total_seconds(), 0.0)
    expected = interval or float(settings.PUBLISHER_SCAN_INTERVAL)
    limit = max(ALIVE_INTERVALS * expected, ALIVE_MIN_SECONDS)
    if age <= limit:
        return ScanHealth(True, f"Beat is alive: the last scan ran {_ago(age)} ago (every {_ago(expected)}).",
                          beat, interval, age)
    stale = f"The last scan ran {_ago(age)} ago but should run every {_ago(expected)}"
    beat_seen = seen.get(BEAT_HEARTBEAT)
    beat_every = float(getattr(settings, "PUBLISHER_BEAT_HEARTBEAT_INTERVAL", 10))
    if beat_seen is not None and (now - beat_seen).total_seconds() <= max(ALIVE_INTERVALS * beat_every, 30):
        return ScanHealth(False, f"{stale}: beat is running, but no worker takes the scan queue. Start a worker "
                                 "(celery -A settings worker). Scheduled articles are not being published.",
                          beat, interval, age)
    return ScanHealth(False, f"{stale}: beat, or the worker that runs the scan queue, is down. Scheduled articles "
                             "are not being published.", beat, interval, age)


def pipeline_status(*, now: datetime | None = None, failures: int = RECENT_FAILURES) -> PipelineStatus:
    """Counts by status, scan health, and what needs attention now."""
    now = now or timezone.now()
    health = scan_health(now=now)
    grace = timedelta(seconds=max(2 * (health.interval_seconds or settings.PUBLISHER_SCAN_INTERVAL), 30))
    overdue = selectors.articles_overdue_count(grace=grace, now=now)
    stalled = selectors.articles_stalled_claims_count(now=now)
    warnings = []
    if overdue:
        warnings.append(f"{overdue} scheduled article{'s are' if overdue != 1 else ' is'} more than "
                        f"{_ago(grace.total_seconds())} past due: nothing is claiming them.")
    if stalled:
        warnings.append(f"{stalled} article{'s are' if stalled != 1 else ' is'} stuck in publishing (their claim's "
                        "lease ran out: the worker stopped). The scan re-dispatches them; if this stays, start a "
                        "worker.")
    return PipelineStatus(counts=selectors.article_status_counts(), scan=health, overdue=overdue, stalled=stalled,
                          failures=selectors.articles_recent_failures(limit=failures), warnings=warnings)


def _ago(seconds: float) -> str:
    seconds = float(seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


STATUS_ORDER = [ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING, ArticleStatus.PUBLISHED, ArticleStatus.FAILED,
                ArticleStatus.MISSED, ArticleStatus.EXPIRED, ArticleStatus.DRAFT]
