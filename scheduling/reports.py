"""The daily report: built once per past local day, caught up after downtime, mailed at most once.

One row per date (a unique constraint), so reruns, a second beat and the catch-up at beat start
all end with one report; its e-mail is claimed on the row (pending -> sending) by
compare-and-set before anything is sent, so it goes out at most once.
"""

import logging
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from publisher.selectors import local_day_bounds
from publisher.text import duration_text

from . import charts, selectors
from .models import DailyReport, ReportEmailStatus
from .services import heartbeat_record, job_run_record

logger = logging.getLogger(__name__)

HEARTBEAT = "daily-report"


class ReportError(Exception):
    """A date no report can be built for (the message says why)."""


def daily_report_build(*, report_date: date, rebuild: bool = False, email: bool = True,
                       now: datetime | None = None) -> tuple[DailyReport, bool]:
    """Build and store the report of one past local day (TIME_ZONE). Idempotent: an existing
    row is returned untouched unless `rebuild`, which recomputes its numbers in place and keeps
    its e-mail state (a rebuilt report is never mailed again). Two concurrent builds of one date
    store one row: the database's unique constraint turns the second insert away. A new row's
    e-mail is `pending` (the job mails it) or, with email=False, `skipped`.
    Returns (report, created)."""
    now = now or timezone.now()
    zone = selectors.site_zone()
    try:
        start, end = local_day_bounds(day=report_date, zone=zone)
    except OverflowError:
        raise ReportError(f"{report_date:%Y-%m-%d} is out of range.") from None
    if end > now:
        raise ReportError(
            f"{report_date:%Y-%m-%d} has not ended yet in {zone.key} (it ends at "
            f"{end.astimezone(zone):%Y-%m-%d %H:%M %Z}); a report covers a whole past day.")
    existing = DailyReport.objects.filter(date=report_date).first()
    if existing is not None and not rebuild:
        return existing, False
    values = {**selectors.report_stats(start=start, end=end, zone=zone),
              "time_zone": zone.key, "window_start": start, "window_end": end, "built_at": now}
    if existing is None:
        try:
            with transaction.atomic():
                status = ReportEmailStatus.PENDING if email else ReportEmailStatus.SKIPPED
                return DailyReport.objects.create(date=report_date, email_status=status, **values), True
        except IntegrityError:
            # Another run (a second beat, an overlapping catch-up) stored it first: that row is the report.
            existing = DailyReport.objects.get(date=report_date)
            if not rebuild:
                return existing, False
    DailyReport.objects.filter(pk=existing.pk).update(**values)
    existing.refresh_from_db()
    return existing, False


def _lateness(seconds: float | None) -> str:
    return "–" if seconds is None else duration_text(seconds)


def report_context(report: DailyReport) -> dict:
    """What the e-mail templates and the admin show of a report."""
    return {
        "report": report,
        "lateness": {"p50": _lateness(report.lateness_p50), "p95": _lateness(report.lateness_p95),
                     "max": _lateness(report.lateness_max)},
        "hours": len(report.publications_per_hour),
        "rows": charts.hourly_rows(report.publications_per_hour),
        "text_chart": charts.hourly_text(report.publications_per_hour),
    }


def report_subject(report: DailyReport) -> str:
    return (f"Daily report {report.date:%Y-%m-%d}: {report.articles_published} published, "
            f"{report.articles_failed} failed, {report.articles_expired} expired")


def _message(report: DailyReport) -> EmailMultiAlternatives:
    context = report_context(report)
    message = EmailMultiAlternatives(subject=report_subject(report),
                                     body=render_to_string("scheduling/email/daily_report.txt", context),
                                     from_email=settings.DEFAULT_FROM_EMAIL)
    message.attach_alternative(render_to_string("scheduling/email/daily_report.html", context), "text/html")
    return message


def _status(report_id: int) -> str:
    return DailyReport.objects.filter(pk=report_id).values_list("email_status", flat=True).first() or ""


# Plain strings in job summaries (JSON) and logs.
PENDING, SENT, FAILED = ReportEmailStatus.PENDING.value, ReportEmailStatus.SENT.value, ReportEmailStatus.FAILED.value


def daily_report_email(*, report_id: int, include_skipped: bool = False) -> str:
    """Mail one report (HTML and plain text) to each opted-in staff user, at most once. The row
    is claimed (pending -> sending) by compare-and-set before anything is sent, so a rerun or a
    second beat sends nothing; mail goes out after the claim committed, outside any transaction.
    If the mail server cannot be reached nothing went out and the claim is given back (the next
    run tries again); a crash while sending leaves `sending`, which cleanup marks failed and
    nobody resends. `include_skipped` also mails a report that was not mailed when built (nobody
    had opted in, or built by hand). Returns the report's e-mail status afterwards."""
    if include_skipped:
        DailyReport.objects.filter(pk=report_id, email_status=ReportEmailStatus.SKIPPED).update(
            email_status=ReportEmailStatus.PENDING, email_error="")
    recipients = selectors.report_recipients()
    if not recipients:
        DailyReport.objects.filter(pk=report_id, email_status=ReportEmailStatus.PENDING).update(
            email_status=ReportEmailStatus.SKIPPED, email_error="No active staff user had opted in.")
        return _status(report_id)
    claimed = DailyReport.objects.filter(pk=report_id, email_status=ReportEmailStatus.PENDING).update(
        email_status=ReportEmailStatus.SENDING, email_claimed_at=timezone.now())
    if not claimed:
        return _status(report_id)
    template = _message(DailyReport.objects.get(pk=report_id))
    mail = get_connection(fail_silently=False)
    try:
        mail.open()
    except OSError as exc:
        DailyReport.objects.filter(pk=report_id, email_status=ReportEmailStatus.SENDING).update(
            email_status=ReportEmailStatus.PENDING, email_claimed_at=None, email_error=f"Not sent yet: {exc}"[:2000])
        logger.warning("daily report #%s: mail server unreachable (%s); the next run tries again", report_id, exc)
        return PENDING
    sent, errors = 0, []
    try:
        for address in recipients:
            message = EmailMultiAlternatives(subject=template.subject, body=template.body,
                                             from_email=template.from_email, to=[address],
                                             alternatives=template.alternatives, connection=mail)
            try:
                message.send()
            except Exception as exc:  # one refused address must not stop the others
                errors.append(f"{address}: {type(exc).__name__}: {exc}")
            else:
                sent += 1
    finally:
        mail.close()
        DailyReport.objects.filter(pk=report_id, email_status=ReportEmailStatus.SENDING).update(
            email_status=ReportEmailStatus.SENT if sent else ReportEmailStatus.FAILED, emailed_at=timezone.now(),
            email_recipients=sent, email_error="\n".join(errors)[:5000])
    if errors:
        logger.error("daily report #%s: %d of %d e-mails failed", report_id, len(errors), len(recipients))
    return SENT if sent else FAILED


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def daily_reports_run(*, catch_up: bool = False, now: datetime | None = None) -> dict:
    """The daily report job: at the report time (08:00 local) and once at every beat start
    (`catch_up`). Builds the report of each past local day that has none, from
    PUBLISHER_REPORT_CATCH_UP_DAYS back to yesterday, at most PUBLISHER_REPORT_BATCH per run
    (`more` says run again), then mails every report in that range still pending, once each.
    At a beat start yesterday counts only once the report time has passed today. History starts
    with the first report ever built: a fresh install builds yesterday's and backfills nothing."""
    now = now or timezone.now()
    local_now = now.astimezone(selectors.site_zone())
    today = local_now.date()
    last = today - timedelta(days=1)
    if catch_up and local_now.time() < selectors.report_time_effective():
        last -= timedelta(days=1)
    # History starts with the first report ever built: no backfill of the days before it.
    earliest = DailyReport.objects.order_by("date").values_list("date", flat=True).first()
    if earliest is not None:
        first = max(today - timedelta(days=settings.PUBLISHER_REPORT_CATCH_UP_DAYS), earliest)
    elif catch_up:
        first = last + timedelta(days=1)  # a fresh install: nothing to catch up on
    else:
        first = last
    missing = []
    if first <= last:
        existing = selectors.report_dates_existing(first=first, last=last)
        missing = [day for day in _days(first, last) if day not in existing]
    batch = settings.PUBLISHER_REPORT_BATCH
    built = []
    for day in missing[:batch]:
        _, created = daily_report_build(report_date=day, now=now)
        if created:
            built.append(day.isoformat())
    emailed = {}
    pending = (DailyReport.objects.filter(email_status=ReportEmailStatus.PENDING, date__gte=first, date__lte=last)
               .order_by("date").values_list("pk", "date"))
    for report_id, day in pending:
        emailed[day.isoformat()] = daily_report_email(report_id=report_id)
    summary = {"built": built, "emailed": emailed, "more": len(missing) > batch}
    heartbeat_record(name=HEARTBEAT, detail=summary)
    if built or emailed:
        job_run_record(job=HEARTBEAT, started_at=now, detail=summary)
        logger.info("daily report: %s", summary)
    return summary
