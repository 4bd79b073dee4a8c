"""The daily report: what one local day counts (DST days included), one row and one e-mail per
date under reruns and two beats, catch-up after a missed 08:00 or a week of downtime, the command."""

import threading
from datetime import date, timedelta

import pytest
import time_machine
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus
from publisher.selectors import local_day_bounds
from scheduling import reports, selectors
from scheduling.models import DailyReport, JobRun, ReportEmailStatus
from tests.factories import make_article, make_subscriber
from tests.support.clock import BERLIN, UTC, local, utc


# --- helpers --------------------------------------------------------------------------------------

def published(at, *, late: float = 1.0, status=ArticleStatus.PUBLISHED, **fields) -> Article:
    fields.setdefault("title", f"Published {at:%H:%M:%S}")
    return make_article(body="Body.", status=status, publish_at=at - timedelta(seconds=late),
                        published_at=at, **fields)


def failed(at, *, reason: str, attempts: int = 1, title: str = "Broken") -> Article:
    article = make_article(title=title, body="Body.", status=ArticleStatus.FAILED,
                           publish_at=at - timedelta(seconds=30), last_error=reason, attempts=attempts)
    Article.objects.filter(pk=article.pk).update(updated_at=at)  # when the pipeline gave up
    return article


_subscribers = iter(range(1, 10_000))


def notification(*, status, article=None, **fields) -> Notification:
    article = article or published(utc(2020, 1, 1), title="Old news")
    subscriber = make_subscriber(f"reader{next(_subscribers)}@example.com")
    fields.setdefault("expires_at", utc(2030, 1, 1))
    updated_at = fields.pop("updated_at", None)
    row = Notification.objects.create(article=article, subscriber=subscriber, status=status, **fields)
    if updated_at:
        Notification.objects.filter(pk=row.pk).update(updated_at=updated_at)
    return row


def build(day: date) -> DailyReport:
    report, _ = reports.daily_report_build(report_date=day)
    return report


def counts(report: DailyReport) -> list[int]:
    return [bucket["count"] for bucket in report.publications_per_hour]


# --- what one day counts --------------------------------------------------------------------------

@pytest.mark.django_db
def test_an_ordinary_day_counts_what_happened_between_its_midnights(django_assert_num_queries):
    day = date(2026, 11, 20)  # TIME_ZONE is UTC in the test settings
    published(utc(2026, 11, 19, 23, 59, 59), late=100)  # the day before: not counted
    published(utc(2026, 11, 20, 0, 0, 0), late=1.0)  # the first instant of the day
    for late in (0.2, 0.4, 5.0):
        published(utc(2026, 11, 20, 8, 30), late=late)
    published(utc(2026, 11, 20, 12, 0), late=2.0, status=ArticleStatus.EXPIRED,
              unpublish_at=utc(2026, 11, 21, 0, 30))  # went live that day, taken down the next
    published(utc(2026, 11, 20, 23, 59, 59, 999999), late=1.0)  # the last instant of the day
    published(utc(2026, 11, 21, 0, 0, 0), late=100)  # the next day: not counted

    failed(utc(2026, 11, 20, 9, 0), reason="process: the article has no body", attempts=1, title="Empty")
    failed(utc(2026, 11, 20, 14, 0), reason="Gave up after 3 attempts", attempts=3, title="Killer")
    failed(utc(2026, 11, 19, 14, 0), reason="yesterday's", attempts=3)
    published(utc(2026, 11, 10), status=ArticleStatus.EXPIRED, unpublish_at=utc(2026, 11, 20, 18, 0))
    missed = make_article(title="Too late", body="b", status=ArticleStatus.MISSED,
                          publish_at=utc(2026, 11, 20, 3, 0))
    Article.objects.filter(pk=missed.pk).update(updated_at=utc(2026, 11, 19, 12, 0))  # scheduled the day before

    notification(status=NotificationStatus.SENT, sent_at=utc(2026, 11, 20, 8, 31))
    notification(status=NotificationStatus.SENT, sent_at=utc(2026, 11, 20, 8, 32))
    notification(status=NotificationStatus.SENT, sent_at=utc(2026, 11, 20, 23, 0))
    notification(status=NotificationStatus.SENT, sent_at=utc(2026, 11, 19, 23, 0))
    for _ in range(2):
        notification(status=NotificationStatus.FAILED, last_error="550 mailbox unavailable",
                     updated_at=utc(2026, 11, 20, 10, 0))
    notification(status=NotificationStatus.FAILED, last_error="timed out", updated_at=utc(2026, 11, 20, 11, 0))
    notification(status=NotificationStatus.INTERRUPTED, updated_at=utc(2026, 11, 20, 12, 0))
    notification(status=NotificationStatus.INTERRUPTED, updated_at=utc(2026, 11, 21, 12, 0))  # the next day
    notification(status=NotificationStatus.EXPIRED, expires_at=utc(2026, 11, 20, 5, 0))
    notification(status=NotificationStatus.EXPIRED, expires_at=utc(2026, 11, 21, 5, 0))
    notification(status=NotificationStatus.PENDING, expires_at=utc(2026, 11, 20, 6, 0))

    start, end = local_day_bounds(day=day, zone=UTC)
    with django_assert_num_queries(10):  # a fixed number, whatever the day's size
        stats = selectors.report_stats(start=start, end=end, zone=UTC)

    assert stats["articles_published"] == 6
    # Nearest rank over [0.2, 0.4, 1, 1, 2, 5]: p50 is the 3rd, p95 the 6th.
    assert (stats["lateness_p50"], stats["lateness_p95"], stats["lateness_max"]) == (1.0, 5.0, 5.0)
    assert stats["articles_failed"] == 2
    assert stats["articles_expired"] == 1
    assert stats["articles_missed"] == 1
    assert [f["title"] for f in stats["worst_failures"]] == ["Killer", "Empty"]
    assert stats["worst_failures"][0]["reason"] == "Gave up after 3 attempts"
    assert (stats["notifications_sent"], stats["notifications_failed"], stats["notifications_interrupted"],
            stats["notifications_expired"]) == (3, 3, 1, 1)
    assert stats["notification_failures"] == [{"reason": "550 mailbox unavailable", "count": 2},
                                              {"reason": "timed out", "count": 1}]
    hours = stats["publications_per_hour"]
    assert len(hours) == 24 and [h["label"] for h in hours[:2]] == ["00:00", "01:00"]
    assert {i: h["count"] for i, h in enumerate(hours) if h["count"]} == {0: 1, 8: 3, 12: 1, 23: 1}


@pytest.mark.django_db
def test_spring_forward_day_is_23_hours_and_has_no_2am(berlin):
    day = date(2026, 3, 29)  # Europe/Berlin: 02:00 CET -> 03:00 CEST
    published(local(BERLIN, 2026, 3, 28, 23, 59, 59))  # previous local day
    published(local(BERLIN, 2026, 3, 29, 0, 0))  # 23:00 UTC on the 28th: this day
    published(local(BERLIN, 2026, 3, 29, 1, 59, 59))
    published(local(BERLIN, 2026, 3, 29, 3, 0))  # the first instant after the gap
    published(local(BERLIN, 2026, 3, 29, 23, 59, 59))
    published(local(BERLIN, 2026, 3, 30, 0, 0))  # next local day

    with time_machine.travel(utc(2026, 3, 30, 7, 0), tick=False):
        report = build(day)

    assert report.window_start == utc(2026, 3, 28, 23, 0)
    assert report.window_end == utc(2026, 3, 29, 22, 0)
    assert report.articles_published == 4
    labels = [h["label"] for h in report.publications_per_hour]
    assert len(labels) == 23
    assert "02:00" not in labels and labels[:3] == ["00:00", "01:00", "03:00"]
    assert counts(report)[0] == 1 and counts(report)[1] == 1 and counts(report)[2] == 1 and counts(report)[-1] == 1


@pytest.mark.django_db
def test_fall_back_day_is_25_hours_and_keeps_both_2ams_apart(berlin):
    day = date(2026, 10, 25)  # Europe/Berlin: 03:00 CEST -> 02:00 CET
    published(local(BERLIN, 2026, 10, 25, 2, 30, fold=0))  # 00:30 UTC, CEST
    published(local(BERLIN, 2026, 10, 25, 2, 30, fold=1))  # 01:30 UTC, CET
    published(local(BERLIN, 2026, 10, 25, 2, 45, fold=1))
    published(local(BERLIN, 2026, 10, 25, 23, 59, 59))
    published(local(BERLIN, 2026, 10, 26, 0, 0))  # next local day

    with time_machine.travel(utc(2026, 10, 26, 7, 0), tick=False):
        report = build(day)

    assert (report.window_end - report.window_start) == timedelta(hours=25)
    assert report.articles_published == 4
    hours = report.publications_per_hour
    assert len(hours) == 25
    assert [(h["label"], h["zone"], h["count"]) for h in hours[2:4]] == [("02:00", "CEST", 1), ("02:00", "CET", 2)]
    assert hours[-1]["count"] == 1


@pytest.mark.django_db
def test_consecutive_days_across_dst_changes_count_every_article_exactly_once(berlin):
    first = local(BERLIN, 2026, 3, 28, 0, 0)
    last = local(BERLIN, 2026, 3, 31, 0, 0)
    at, made = first - timedelta(hours=1), 0
    while at < last + timedelta(hours=1):
        published(at)
        made += first <= at < last
        at += timedelta(minutes=20)

    with time_machine.travel(utc(2026, 4, 2), tick=False):
        days = [build(date(2026, 3, d)) for d in (28, 29, 30)]

    assert [len(r.publications_per_hour) for r in days] == [24, 23, 24]
    assert [r.articles_published for r in days] == [72, 69, 72]
    assert sum(r.articles_published for r in days) == made
    assert days[0].window_end == days[1].window_start and days[1].window_end == days[2].window_start


@pytest.mark.django_db
def test_a_day_that_has_not_ended_cannot_be_reported(berlin):
    with time_machine.travel(local(BERLIN, 2026, 3, 29, 23, 59), tick=False):
        with pytest.raises(reports.ReportError, match="has not ended yet in Europe/Berlin"):
            reports.daily_report_build(report_date=date(2026, 3, 29))
    assert not DailyReport.objects.exists()


# --- once per date, mailed once --------------------------------------------------------------------

@pytest.mark.django_db
def test_the_08_00_run_builds_yesterday_and_mails_it_once_to_opted_in_staff(recipients):
    published(utc(2026, 11, 20, 9, 15))
    with time_machine.travel(utc(2026, 11, 21, 8, 0, 1), tick=False):
        first = reports.daily_reports_run()
        again = reports.daily_reports_run()

    assert first == {"built": ["2026-11-20"], "emailed": {"2026-11-20": "sent"}, "more": False}
    assert again == {"built": [], "emailed": {}, "more": False}
    report = DailyReport.objects.get()
    assert report.date == date(2026, 11, 20) and report.email_status == ReportEmailStatus.SENT
    assert report.email_recipients == 2
    assert sorted(m.to[0] for m in mail.outbox) == recipients
    assert all(len(m.to) == 1 for m in mail.outbox), "recipients see each other's addresses"
    message = mail.outbox[0]
    assert message.subject == "Daily report 2026-11-20: 1 published, 0 failed, 0 expired"
    assert "Publications per hour" in message.body and "09:00 " in message.body
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html" and "<table" in html and "width: 300px" in html
    assert JobRun.objects.filter(job="daily-report").count() == 1


@pytest.mark.django_db
def test_nobody_opted_in_means_no_mail_and_a_reason():
    with time_machine.travel(utc(2026, 11, 21, 8, 0, 1), tick=False):
        reports.daily_reports_run()
    report = DailyReport.objects.get()
    assert report.email_status == ReportEmailStatus.SKIPPED
    assert "opted in" in report.email_error
    assert mail.outbox == []


@pytest.mark.django_db(transaction=True)
def test_two_beats_running_the_job_at_once_leave_one_report_and_one_email_each(recipients, settings):
    # Both beats send the 08:00 job; two workers run it at the same moment.
    settings.PUBLISHER_REPORT_CATCH_UP_DAYS = 5
    published(utc(2026, 11, 20, 9, 15))
    DailyReport.objects.create(date=date(2026, 11, 16), time_zone="UTC", window_start=utc(2026, 11, 16),
                               window_end=utc(2026, 11, 17), built_at=utc(2026, 11, 17),
                               email_status=ReportEmailStatus.SENT)
    barrier = threading.Barrier(2)
    results, errors = [], []

    def beat_run():
        try:
            barrier.wait()
            results.append(reports.daily_reports_run())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    with time_machine.travel(utc(2026, 11, 21, 8, 0, 1), tick=False):
        threads = [threading.Thread(target=beat_run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert not errors
    assert sorted(DailyReport.objects.values_list("date", flat=True)) == [
        date(2026, 11, d) for d in (16, 17, 18, 19, 20)]
    built = sorted(day for result in results for day in result["built"])
    assert built == ["2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"], "a date was built twice"
    sent = sorted((m.to[0], m.subject) for m in mail.outbox)
    assert len(sent) == 4 * 2 and len(set(sent)) == len(sent), "someone got the same report twice"


@pytest.mark.django_db
def test_an_unreachable_mail_server_leaves_the_report_pending_for_the_next_run(recipients, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 1, 2  # nothing listens there
    with time_machine.travel(utc(2026, 11, 21, 8, 0, 1), tick=False):
        summary = reports.daily_reports_run()
        assert summary["emailed"] == {"2026-11-20": "pending"}
        report = DailyReport.objects.get()
        assert report.email_status == ReportEmailStatus.PENDING and "Not sent yet" in report.email_error

        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        assert reports.daily_reports_run()["emailed"] == {"2026-11-20": "sent"}
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_a_claimed_report_is_never_mailed_again(recipients):
    with time_machine.travel(utc(2026, 11, 21, 8, 0, 1), tick=False):
        report = build(date(2026, 11, 20))
        # Another worker claimed it and died mid-send.
        DailyReport.objects.filter(pk=report.pk).update(email_status=ReportEmailStatus.SENDING)
        assert reports.daily_report_email(report_id=report.pk) == ReportEmailStatus.SENDING
        assert reports.daily_reports_run()["emailed"] == {}
    assert mail.outbox == []


# --- catch-up ----------------------------------------------------------------------------------------

def _report_row(day: date, status=ReportEmailStatus.SENT) -> DailyReport:
    start, end = local_day_bounds(day=day, zone=UTC)
    return DailyReport.objects.create(date=day, time_zone="UTC", window_start=start, window_end=end, built_at=end,
                                      email_status=status)


def history(*, until: date, days: int = 30) -> None:
    """Reports for the `days` days up to `until`, as a system that has been running leaves them."""
    for i in range(days):
        _report_row(until - timedelta(days=i))


@pytest.mark.django_db
def test_beat_starting_after_a_missed_08_00_builds_yesterday_at_once(recipients):
    history(until=date(2026, 11, 19))
    published(utc(2026, 11, 20, 12, 0))
    with time_machine.travel(utc(2026, 11, 21, 10, 30), tick=False):  # beat was down at 08:00
        summary = reports.daily_reports_run(catch_up=True)
    assert summary["built"] == ["2026-11-20"]
    assert DailyReport.objects.get(date=date(2026, 11, 20)).articles_published == 1
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_beat_starting_before_08_00_leaves_yesterday_to_the_08_00_run(recipients):
    history(until=date(2026, 11, 18))
    with time_machine.travel(utc(2026, 11, 21, 6, 0), tick=False) as traveller:
        assert reports.daily_reports_run(catch_up=True)["built"] == ["2026-11-19"]  # the one that was missed
        traveller.move_to(utc(2026, 11, 21, 8, 0, 1))
        assert reports.daily_reports_run()["built"] == ["2026-11-20"]
        assert reports.daily_reports_run()["built"] == []
    assert DailyReport.objects.filter(date__gt=date(2026, 11, 18)).count() == 2
    assert len(mail.outbox) == 2 * 2


@pytest.mark.django_db
def test_catch_up_follows_the_report_time_edited_in_the_admin(recipients):
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    from scheduling import schedules
    from scheduling.services import schedules_sync

    schedules_sync()
    task = PeriodicTask.objects.get(name=schedules.DAILY_REPORT)
    task.crontab = CrontabSchedule.objects.create(minute="30", hour="5", timezone="UTC")
    task.save()
    history(until=date(2026, 11, 19))
    with time_machine.travel(utc(2026, 11, 21, 6, 0), tick=False):  # past 05:30: yesterday is due
        assert reports.daily_reports_run(catch_up=True)["built"] == ["2026-11-20"]


@pytest.mark.django_db
def test_a_fresh_install_has_no_history_to_catch_up_on():
    with time_machine.travel(utc(2026, 11, 21, 10, 0), tick=False):
        assert reports.daily_reports_run(catch_up=True)["built"] == []
        assert reports.daily_reports_run()["built"] == ["2026-11-20"]  # the scheduled run starts the history


@pytest.mark.django_db
def test_a_week_of_downtime_is_caught_up_in_bounded_runs_each_day_once(recipients, settings):
    settings.PUBLISHER_REPORT_CATCH_UP_DAYS = 7
    settings.PUBLISHER_REPORT_BATCH = 3
    history(until=date(2026, 11, 13))  # the last report before everything stopped
    for offset in range(7):  # 11-14 .. 11-20: day i has i + 1 publications
        for n in range(offset + 1):
            published(utc(2026, 11, 14 + offset, 10, n))

    runs = []
    with time_machine.travel(utc(2026, 11, 21, 9, 0), tick=False):
        runs.append(reports.daily_reports_run(catch_up=True))
        while runs[-1]["more"]:  # the task re-enqueues itself; here we run it again by hand
            runs.append(reports.daily_reports_run(catch_up=True))
        runs.append(reports.daily_reports_run())  # and the 08:00 crontab run beat also fires

    assert [len(run["built"]) for run in runs] == [3, 3, 1, 0]
    rows = {r.date: r for r in DailyReport.objects.filter(date__gte=date(2026, 11, 14))}
    assert sorted(rows) == [date(2026, 11, 14) + timedelta(days=i) for i in range(7)]
    assert [rows[day].articles_published for day in sorted(rows)] == [1, 2, 3, 4, 5, 6, 7]
    assert all(r.email_status == ReportEmailStatus.SENT for r in rows.values())
    sent = [(m.to[0], m.subject) for m in mail.outbox]
    assert len(sent) == 7 * 2 and len(set(sent)) == len(sent)


@pytest.mark.django_db
def test_downtime_longer_than_the_window_builds_only_the_window(settings):
    settings.PUBLISHER_REPORT_CATCH_UP_DAYS = 5
    _report_row(date(2026, 10, 1))
    with time_machine.travel(utc(2026, 11, 21, 9, 0), tick=False):
        reports.daily_reports_run(catch_up=True)
    assert sorted(DailyReport.objects.values_list("date", flat=True)) == (
        [date(2026, 10, 1)] + [date(2026, 11, d) for d in (16, 17, 18, 19, 20)])


# --- the command ---------------------------------------------------------------------------------------

@pytest.mark.django_db
def test_command_builds_any_past_date_and_keeps_it_unless_rebuild(capsys):
    published(utc(2026, 2, 3, 4, 5))
    call_command("daily_report", "2026-02-03")
    report = DailyReport.objects.get()
    assert report.articles_published == 1 and report.email_status == ReportEmailStatus.SKIPPED
    assert "built" in capsys.readouterr().out

    published(utc(2026, 2, 3, 6, 0))
    call_command("daily_report", "2026-02-03")
    assert "already there" in capsys.readouterr().out
    assert DailyReport.objects.get().articles_published == 1
    call_command("daily_report", "2026-02-03", "--rebuild")
    assert DailyReport.objects.get().articles_published == 2
    assert DailyReport.objects.count() == 1


@pytest.mark.django_db
def test_command_email_sends_once(recipients):
    call_command("daily_report", "2026-02-03", "--email")
    call_command("daily_report", "2026-02-03", "--email")
    assert len(mail.outbox) == 2  # one per opted-in staff user, once
    assert DailyReport.objects.get().email_status == ReportEmailStatus.SENT


@pytest.mark.django_db
def test_command_dry_run_writes_nothing(capsys):
    published(utc(2026, 2, 3, 4, 5))
    call_command("daily_report", "2026-02-03", "--dry-run")
    assert "articles_published: 1" in capsys.readouterr().out
    assert not DailyReport.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("argument, message", [
    ("2026-02-30", "is not a date: expected YYYY-MM-DD"),
    ("03/02/2026", "is not a date: expected YYYY-MM-DD"),
    ("tomorrow", "is not a date"),
    ("2999-01-01", "has not ended yet"),
    ("9999-12-31", "is out of range"),
])
def test_command_rejects_bad_dates_clearly(argument, message):
    with pytest.raises(CommandError, match=message):
        call_command("daily_report", argument)
    assert not DailyReport.objects.exists()


@pytest.mark.django_db
def test_command_rejects_today_which_has_not_ended():
    from django.utils import timezone

    with pytest.raises(CommandError, match="has not ended yet"):
        call_command("daily_report", timezone.localdate().isoformat())
