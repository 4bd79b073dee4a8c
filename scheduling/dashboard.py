"""The pipeline status panel on the admin index: is anything publishing, and does it need a person?

Lives in `scheduling` because it reads both floors: the scan's heartbeat from health.py (by the
rule /health/ applies), article counts and failures from publisher.selectors (publisher never
imports scheduling).
A fixed handful of queries, whatever the table sizes.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from publisher import selectors
from publisher.models import Article, ArticleRevision, ArticleStatus
from publisher.text import duration_text

from . import health

RECENT_FAILURES = 5


@dataclass(frozen=True)
class ScanHealth:
    alive: bool
    message: str
    last_scan_at: datetime | None
    interval_seconds: float | None  # None: no enabled periodic task runs the scan
    age_seconds: float | None


@dataclass(frozen=True)
class PipelineStatus:
    counts: dict[str, int]
    scan: ScanHealth
    overdue: int
    stalled: int
    failures: list[Article] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    at_risk: list[Article] = field(default_factory=list)  # the pre-flight's findings, soonest first
    at_risk_count: int = 0
    # Changes to live articles (publisher.revisions): at risk (the pre-flight), and failed at their time.
    changes_at_risk: list[ArticleRevision] = field(default_factory=list)
    changes_at_risk_count: int = 0
    change_failures: list[ArticleRevision] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def scan_health() -> ScanHealth:
    """The scan's heartbeat as health.pulses() judges it (the rule /health/ applies), in words."""
    beats = health.pulses()
    scan, beat = beats[health.SCAN], beats[health.BEAT]
    interval = scan.interval_seconds
    if not scan.scheduled:
        return ScanHealth(False, "The scan is not scheduled: no enabled periodic task runs it. Run "
                                 "“manage.py sync_schedules”, or enable it under Periodic tasks.",
                          scan.last_seen_at, None, scan.age_seconds)
    if scan.age_seconds is None:
        return ScanHealth(False, "No scan has run yet: start beat and a worker "
                                 "(celery -A settings beat, celery -A settings worker).", None, interval, None)
    age = scan.age_seconds
    if scan.fresh:
        return ScanHealth(True, f"Beat is alive: the last scan ran {duration_text(age)} ago "
                                f"(every {duration_text(interval)}).", scan.last_seen_at, interval, age)
    stale = f"The last scan ran {duration_text(age)} ago but should run every {duration_text(interval)}"
    if beat.fresh:
        return ScanHealth(False, f"{stale}: beat is running, but no worker takes the scan queue. Start a worker "
                                 "(celery -A settings worker). Scheduled articles are not being published.",
                          scan.last_seen_at, interval, age)
    return ScanHealth(False, f"{stale}: beat, or the worker that runs the scan queue, is down. Scheduled articles "
                             "are not being published.", scan.last_seen_at, interval, age)


def pipeline_status(*, now: datetime | None = None, failures: int = RECENT_FAILURES) -> PipelineStatus:
    """Counts by status, scan health, and what needs attention now."""
    now = now or timezone.now()
    scan = scan_health()
    grace = timedelta(seconds=max(2 * (scan.interval_seconds or settings.PUBLISHER_SCAN_INTERVAL), 30))
    overdue = selectors.articles_overdue_count(grace=grace, now=now)
    stalled = selectors.articles_stalled_claims_count(now=now)
    warnings = []
    if overdue:
        warnings.append(f"{overdue} scheduled article{'s are' if overdue != 1 else ' is'} more than "
                        f"{duration_text(grace)} past due: nothing is claiming them.")
    if stalled:
        warnings.append(f"{stalled} article{'s are' if stalled != 1 else ' is'} stuck in publishing (their claim's "
                        "lease ran out: the worker stopped). The scan re-dispatches them; if this stays, start a "
                        "worker.")
    at_risk, at_risk_count = selectors.articles_at_risk_first(limit=failures)
    if at_risk_count:
        warnings.append(f"{at_risk_count} scheduled article{'s are' if at_risk_count != 1 else ' is'} at risk: the "
                        "pre-flight check found what would fail when it goes live. Fix it before then.")
    changes_at_risk, changes_at_risk_count = selectors.changes_at_risk_first(limit=failures)
    if changes_at_risk_count:
        warnings.append(f"{changes_at_risk_count} scheduled change{'s' if changes_at_risk_count != 1 else ''} to live "
                        f"articles {'are' if changes_at_risk_count != 1 else 'is'} at risk: the pre-flight check found "
                        "what would fail when it goes live. Fix it before then.")
    for release in selectors.releases_at_risk(limit=failures):
        warnings.append(f"Release “{release}” is at risk: the pre-flight check found what would fail when it goes "
                        f"live. {release.at_risk_reason}")
    for release in selectors.releases_blocked(limit=failures):
        warnings.append(f"Release “{release}” is blocked: none of its articles went live. {release.last_error}")
    return PipelineStatus(counts=selectors.article_status_counts(), scan=scan, overdue=overdue, stalled=stalled,
                          failures=selectors.articles_recent_failures(limit=failures), warnings=warnings,
                          at_risk=at_risk, at_risk_count=at_risk_count, changes_at_risk=changes_at_risk,
                          changes_at_risk_count=changes_at_risk_count,
                          change_failures=selectors.changes_recent_failures(limit=failures))


STATUS_ORDER = [ArticleStatus.SCHEDULED, ArticleStatus.IN_RELEASE, ArticleStatus.PUBLISHING, ArticleStatus.PUBLISHED,
                ArticleStatus.FAILED,
                ArticleStatus.MISSED, ArticleStatus.EXPIRED, ArticleStatus.DRAFT]
