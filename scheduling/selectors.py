"""Reads for the periodic jobs: the daily report's numbers, its recipients, the scheduler's health."""

import math
import zoneinfo
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time, timedelta
from datetime import timezone as dt_timezone

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.db.models import Count, DateTimeField
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus

from . import schedules
from .models import DailyReport, Heartbeat

# --- Daily report -----------------------------------------------------------------------------


def site_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


def report_window(*, report_date: date, zone: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end) of one local day as UTC instants: 24 hours, or 23 / 25 on DST days. A
    midnight that does not exist (a zone that springs forward at 00:00) resolves to the instant
    the day starts; consecutive days tile with neither gap nor overlap."""
    start = datetime.combine(report_date, time.min, tzinfo=zone).astimezone(dt_timezone.utc)
    end = datetime.combine(report_date + timedelta(days=1), time.min, tzinfo=zone).astimezone(dt_timezone.utc)
    return start, end


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def hourly_buckets(*, start: datetime, end: datetime, zone: zoneinfo.ZoneInfo) -> list[dict]:
    """One bucket per elapsed hour of the local day, labelled with its local start time and zone
    abbreviation (a fall-back day has two "02:00" hours, CEST then CET)."""
    hours = math.ceil((end - start).total_seconds() / 3600)
    buckets = []
    for i in range(hours):
        instant = start + timedelta(hours=i)
        local = instant.astimezone(zone)
        buckets.append({"start": instant.isoformat(), "label": f"{local:%H:%M}", "zone": local.tzname() or "",
                        "count": 0})
    return buckets


def _failed_at():
    # No column records when an article failed; the failure comes after it fell due and is the
    # last change stamped on the row, so the later of the two places it in its day.
    return Greatest(Coalesce("publish_at", "updated_at"), "updated_at", output_field=DateTimeField())


def report_stats(*, start: datetime, end: datetime, zone: zoneinfo.ZoneInfo, worst: int | None = None) -> dict:
    """The numbers of the local day [start, end), by when each thing happened:
    published by published_at, failed by when it failed, expired by unpublish_at (the moment
    its window closed), notifications sent by sent_at, failed by their last update, expired by
    expires_at. A fixed number of queries whatever the day's size; lateness and the hourly chart
    read two timestamps per published article."""
    worst = worst or settings.PUBLISHER_REPORT_WORST_FAILURES
    published = Article.objects.filter(published_at__gte=start, published_at__lt=end)
    lateness, buckets = [], hourly_buckets(start=start, end=end, zone=zone)
    for publish_at, published_at in published.values_list("publish_at", "published_at").iterator(chunk_size=5000):
        index = int((published_at - start).total_seconds() // 3600)
        buckets[min(index, len(buckets) - 1)]["count"] += 1
        if publish_at is not None:
            lateness.append(max((published_at - publish_at).total_seconds(), 0.0))
    lateness.sort()

    failed = (Article.objects.filter(status=ArticleStatus.FAILED).annotate(failed_at=_failed_at())
              .filter(failed_at__gte=start, failed_at__lt=end))
    missed = (Article.objects.filter(status=ArticleStatus.MISSED).annotate(missed_at=_failed_at())
              .filter(missed_at__gte=start, missed_at__lt=end))
    expired = Article.objects.filter(status=ArticleStatus.EXPIRED, unpublish_at__gte=start, unpublish_at__lt=end)
    notifications_failed = Notification.objects.filter(status=NotificationStatus.FAILED, updated_at__gte=start,
                                                       updated_at__lt=end)
    worst_failures = [
        {"article_id": row["pk"], "title": row["title"], "reason": row["last_error"], "attempts": row["attempts"],
         "publish_at": row["publish_at"].isoformat() if row["publish_at"] else None}
        for row in failed.order_by("-attempts", "publish_at", "pk").values(
            "pk", "title", "last_error", "attempts", "publish_at")[:worst]
    ]
    notification_failures = [
        {"reason": row["last_error"] or "(no reason recorded)", "count": row["n"]}
        for row in notifications_failed.values("last_error").annotate(n=Count("pk")).order_by("-n", "last_error")[:5]
    ]
    return {
        "articles_published": sum(bucket["count"] for bucket in buckets),
        "articles_failed": failed.count(),
        "articles_expired": expired.count(),
        "articles_missed": missed.count(),
        "lateness_p50": percentile(lateness, 50),
        "lateness_p95": percentile(lateness, 95),
        "lateness_max": lateness[-1] if lateness else None,
        "notifications_sent": Notification.objects.filter(sent_at__gte=start, sent_at__lt=end).count(),
        "notifications_failed": notifications_failed.count(),
        "notifications_expired": Notification.objects.filter(status=NotificationStatus.EXPIRED, expires_at__gte=start,
                                                             expires_at__lt=end).count(),
        "publications_per_hour": buckets,
        "worst_failures": worst_failures,
        "notification_failures": notification_failures,
    }


def report_recipients() -> list[str]:
    """E-mail addresses of active staff users who opted in to the daily report."""
    users = get_user_model().objects.filter(is_active=True, is_staff=True, report_subscription__daily_report=True)
    return sorted({email for email in users.exclude(email="").values_list("email", flat=True)})


def report_dates_existing(*, first: date, last: date) -> set[date]:
    return set(DailyReport.objects.filter(date__gte=first, date__lte=last).values_list("date", flat=True))


def report_job_enabled() -> bool:
    return PeriodicTask.objects.filter(name=schedules.DAILY_REPORT, enabled=True).exists()


def report_time_effective() -> time:
    """The time of day the daily report job runs: the crontab an operator may have edited in the
    admin when it names one plain hour and minute, else PUBLISHER_REPORT_AT."""
    task = (PeriodicTask.objects.filter(name=schedules.DAILY_REPORT, enabled=True, crontab__isnull=False)
            .select_related("crontab").first())
    if task is not None and task.crontab.hour.isdigit() and task.crontab.minute.isdigit():
        hour, minute = int(task.crontab.hour), int(task.crontab.minute)
        if hour < 24 and minute < 60:
            return time(hour, minute)
    return schedules.report_time()


# --- Health -----------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True  # False: reported, but does not make the whole thing unhealthy


@dataclass
class Health:
    checks: list[Check] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(check.ok for check in self.checks if check.required)

    def as_dict(self, *, public: bool = False) -> dict:
        """`public` (the unauthenticated endpoint) keeps error text, which names hosts and
        ports, out of the database and broker checks; the command shows it in full."""
        checks = [asdict(check) for check in self.checks]
        if public:
            for check in checks:
                if check["name"] in ("database", "broker") and not check["ok"]:
                    check["detail"] = "does not answer"
        return {"healthy": self.healthy, "checks": checks}


def _database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        return Check("database", False, f"{type(exc).__name__}: {exc}".strip())
    return Check("database", True, f"{connection.vendor} answers")


def _broker_check(timeout: float) -> Check:
    try:
        with current_app.connection_for_write(connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:  # kombu raises many types for an unreachable broker
        return Check("broker", False, f"{type(exc).__name__}: {exc}".strip())
    return Check("broker", True, f"{transport} answers")


def scan_interval_seconds() -> float | None:
    """The scan's interval as beat runs it (the admin may have changed it); None if it has no
    enabled interval schedule."""
    task = (PeriodicTask.objects.filter(name=schedules.SCAN, enabled=True, interval__isnull=False)
            .select_related("interval").first())
    if task is None:
        return None
    return task.interval.schedule.run_every.total_seconds()


def scan_max_age() -> float:
    """How old the last scan may be: PUBLISHER_HEALTH_SCAN_MAX_AGE, else six scan intervals and
    at least a minute."""
    if settings.PUBLISHER_HEALTH_SCAN_MAX_AGE:
        return settings.PUBLISHER_HEALTH_SCAN_MAX_AGE
    interval = scan_interval_seconds() or settings.PUBLISHER_SCAN_INTERVAL
    return max(6 * interval, 60.0)


def _heartbeat_check(name: str, *, max_age: float, required: bool, now: datetime, what: str) -> Check:
    beat = Heartbeat.objects.filter(name=name).first()
    if beat is None:
        return Check(name, False, f"no {what} recorded yet", required)
    age = (now - beat.last_seen_at).total_seconds()
    ok = age <= max_age
    return Check(name, ok, f"last {what} {age:.1f} s ago ({'within' if ok else 'older than'} {max_age:.0f} s)",
                 required)


def health_check(*, max_scan_age: float | None = None, now: datetime | None = None) -> Health:
    """Healthy only when the database and the broker answer and the last scan is recent (which
    needs beat and a worker on the `scan` queue). Beat's own heartbeat is reported alongside,
    to tell a stopped beat from stopped workers."""
    now = now or timezone.now()
    health = Health([_database_check(), _broker_check(settings.PUBLISHER_HEALTH_BROKER_TIMEOUT)])
    if not health.checks[0].ok:
        health.checks.append(Check("scan", False, "unknown: the database does not answer"))
        return health
    limit = max_scan_age or scan_max_age()
    health.checks.append(_heartbeat_check("scan", max_age=limit, required=True, now=now, what="scan"))
    beat_limit = max(3 * settings.PUBLISHER_BEAT_HEARTBEAT_INTERVAL, 3 * settings.CELERY_BEAT_MAX_LOOP_INTERVAL)
    health.checks.append(_heartbeat_check("beat", max_age=beat_limit, required=False, now=now,
                                          what="beat heartbeat"))
    return health


# --- Broker queues ----------------------------------------------------------------------------


def queue_depths(*, timeout: float | None = None) -> dict[str, int | None]:
    """Messages waiting (ready, not yet taken by a worker) in each of the product's queues, on
    Redis or RabbitMQ alike (a passive declare). Messages a worker already holds, such as ETA
    tasks, are not counted. Every value is None when the broker does not answer."""
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    timeout = timeout or settings.PUBLISHER_HEALTH_BROKER_TIMEOUT
    depths: dict[str, int | None] = {}
    try:
        with current_app.connection_for_read(connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
            for name in names:
                channel = conn.channel()  # one per queue: RabbitMQ closes a channel on NOT_FOUND
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except conn.channel_errors:
                    depths[name] = 0  # not declared yet (RabbitMQ), or empty (Redis keeps no empty list)
                finally:
                    try:
                        channel.close()
                    except conn.connection_errors + conn.channel_errors:
                        pass
    except Exception:  # kombu raises many types for an unreachable broker
        return {name: None for name in names}
    return depths


def heartbeat_age(name: str, *, now: datetime | None = None) -> float | None:
    """Seconds since the heartbeat `name` (`scan`, `beat`) was last written; None if never."""
    seen = Heartbeat.objects.filter(name=name).values_list("last_seen_at", flat=True).first()
    if seen is None:
        return None
    return max(((now or timezone.now()) - seen).total_seconds(), 0.0)
