"""Reads for the periodic jobs: the daily report's numbers and its recipients (health: health.py)."""

import math
import zoneinfo
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, DateTimeField
from django.db.models.functions import Coalesce, Greatest
from django_celery_beat.models import PeriodicTask

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus

from . import schedules
from .models import DailyReport

# --- Daily report -----------------------------------------------------------------------------


def site_zone() -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(settings.TIME_ZONE)


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
        "notifications_interrupted": Notification.objects.filter(
            status=NotificationStatus.INTERRUPTED, updated_at__gte=start, updated_at__lt=end).count(),
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
