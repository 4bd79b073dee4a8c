"""Cleanup: retention boundaries to the microsecond, bounded batches, what it never touches,
task results, stuck claims and interrupted report e-mails, notification expiry while workers are down,
subscribers who never confirmed."""

import os
import time
import uuid
from datetime import date, timedelta

import pytest
import time_machine
from celery import current_app
from celery.backends.filesystem import FilesystemBackend
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from publisher import notifications
from publisher.models import (Article, ArticleEvent, ArticleStatus, Notification, NotificationStatus, Subscriber,
                              SubscriberSource)
from scheduling import services
from scheduling.models import DailyReport, Heartbeat, JobRun, ReportEmailStatus
from tests.factories import make_article, make_subscriber
from tests.support.clock import utc

NOW = utc(2026, 11, 21, 12, 0)
DAY = timedelta(days=1)
US = timedelta(microseconds=1)


@pytest.fixture
def article(db):
    return make_article(title="News", body="Body.", status=ArticleStatus.PUBLISHED,
                        publish_at=utc(2026, 1, 1), published_at=utc(2026, 1, 1))


_emails = iter(range(1, 100_000))


def notification(article, *, status, created_at) -> Notification:
    subscriber = make_subscriber(f"s{next(_emails)}@example.com")
    row = Notification.objects.create(article=article, subscriber=subscriber, status=status, expires_at=utc(2027, 1, 1))
    Notification.objects.filter(pk=row.pk).update(created_at=created_at)
    return row


def job_run(started_at) -> JobRun:
    return JobRun.objects.create(job="cleanup", started_at=started_at, finished_at=started_at)


@pytest.mark.django_db
def test_notification_retention_boundary_to_the_microsecond(article, settings):
    settings.PUBLISHER_NOTIFICATION_RETENTION_DAYS = 30
    cutoff = NOW - 30 * DAY
    old = {status: notification(article, status=status, created_at=cutoff - US)
           for status in (NotificationStatus.SENT, NotificationStatus.FAILED, NotificationStatus.EXPIRED)}
    at_cutoff = notification(article, status=NotificationStatus.SENT, created_at=cutoff)
    # Unfinished rows belong to the sender and the sweeper, however old.
    pending = notification(article, status=NotificationStatus.PENDING, created_at=cutoff - 100 * DAY)
    sending = notification(article, status=NotificationStatus.SENDING, created_at=cutoff - 100 * DAY)

    result = services.cleanup_run(now=NOW)

    assert result.notifications == 3
    remaining = set(Notification.objects.values_list("pk", flat=True))
    assert remaining == {at_cutoff.pk, pending.pk, sending.pk}
    assert not remaining & {row.pk for row in old.values()}


@pytest.mark.django_db
def test_job_run_retention_boundary(settings):
    settings.PUBLISHER_RUN_RETENTION_DAYS = 90
    cutoff = NOW - 90 * DAY
    job_run(cutoff - US)
    kept = [job_run(cutoff), job_run(NOW - DAY)]

    result = services.cleanup_run(now=NOW)

    assert result.job_runs == 1
    # The run just recorded by this cleanup is there too.
    assert set(JobRun.objects.exclude(job="cleanup", started_at=NOW).values_list("pk", flat=True)) == {
        run.pk for run in kept}
    assert JobRun.objects.get(started_at=NOW).detail["job_runs"] == 1


@pytest.mark.django_db
def test_articles_audit_events_and_reports_are_never_pruned(article, settings, django_user_model):
    settings.PUBLISHER_NOTIFICATION_RETENTION_DAYS = settings.PUBLISHER_RUN_RETENTION_DAYS = 1
    ancient = utc(2000, 1, 1)
    Article.objects.filter(pk=article.pk).update(created_at=ancient, updated_at=ancient)
    ArticleEvent.objects.create(article=article, action="scheduled")
    ArticleEvent.objects.filter(article=article).update(created_at=ancient)
    DailyReport.objects.create(date=date(2000, 1, 1), time_zone="UTC", window_start=ancient,
                               window_end=ancient + DAY, built_at=ancient, email_status=ReportEmailStatus.SENT)
    Heartbeat.objects.create(name="scan", last_seen_at=ancient)

    services.cleanup_run(now=NOW)

    assert Article.objects.count() == 1
    assert ArticleEvent.objects.count() == 1
    assert DailyReport.objects.count() == 1
    assert Heartbeat.objects.filter(name="scan").exists()


@pytest.mark.django_db
def test_deletes_in_bounded_batches_and_says_when_more_is_left(article, settings):
    settings.PUBLISHER_CLEANUP_BATCH = 3
    settings.PUBLISHER_CLEANUP_MAX_BATCHES = 2
    for _ in range(10):
        notification(article, status=NotificationStatus.SENT, created_at=utc(2020, 1, 1))

    first = services.cleanup_run(now=NOW)
    second = services.cleanup_run(now=NOW)

    assert (first.notifications, first.more) == (6, True)
    assert (second.notifications, second.more) == (4, False)
    assert not Notification.objects.exists()


@pytest.mark.django_db
def test_dry_run_counts_and_removes_nothing(article):
    notification(article, status=NotificationStatus.SENT, created_at=utc(2020, 1, 1))
    job_run(utc(2020, 1, 1))

    result = services.cleanup_run(now=NOW, dry_run=True)

    assert (result.notifications, result.job_runs, result.dry_run) == (1, 1, True)
    assert Notification.objects.count() == 1 and JobRun.objects.count() == 1


@pytest.mark.django_db
def test_command_reports_what_it_removed(article, capsys):
    for _ in range(3):
        notification(article, status=NotificationStatus.EXPIRED, created_at=utc(2020, 1, 1))
    call_command("cleanup")
    out = capsys.readouterr().out
    assert "removed 3 notifications and 0 job runs" in out
    assert "task results: skipped: RedisBackend expires results itself" in out


@pytest.mark.django_db
def test_stuck_claims_are_handed_to_the_sweeper(settings):
    settings.PUBLISHER_MAX_ATTEMPTS = 3
    stuck = make_article(title="Stuck", body="b", status=ArticleStatus.PUBLISHING,
                         publish_at=utc(2026, 1, 1), claim_token=uuid.uuid4(), attempts=1,
                         lease_expires_at=utc(2026, 1, 1, 0, 5))
    hopeless = make_article(title="Hopeless", body="b", status=ArticleStatus.PUBLISHING,
                            publish_at=utc(2026, 1, 1), claim_token=uuid.uuid4(), attempts=3,
                            lease_expires_at=utc(2026, 1, 1, 0, 5))

    result = services.cleanup_run()

    assert (result.claims_redispatched, result.claims_given_up) == (1, 1)
    stuck.refresh_from_db()
    hopeless.refresh_from_db()
    assert stuck.attempts == 2 and stuck.lease_expires_at > utc(2026, 1, 1, 0, 5)
    assert hopeless.status == ArticleStatus.FAILED and "Gave up after 3 attempts" in hopeless.last_error


@pytest.mark.django_db
def test_report_emails_interrupted_mid_send_become_failed_never_resent():
    def report(day, claimed_at):
        return DailyReport.objects.create(date=day, time_zone="UTC", window_start=NOW, window_end=NOW, built_at=NOW,
                                          email_status=ReportEmailStatus.SENDING, email_claimed_at=claimed_at)

    interrupted = report(date(2026, 11, 19), NOW - timedelta(hours=1, seconds=1))
    in_progress = report(date(2026, 11, 20), NOW - timedelta(minutes=30))

    assert services.cleanup_run(now=NOW).report_emails_interrupted == 1

    interrupted.refresh_from_db()
    in_progress.refresh_from_db()
    assert interrupted.email_status == ReportEmailStatus.FAILED and "not resent" in interrupted.email_error
    assert in_progress.email_status == ReportEmailStatus.SENDING


# --- task results ------------------------------------------------------------------------------

def test_task_results_are_left_to_a_backend_that_expires_them_itself():
    assert current_app.backend.supports_autoexpire  # the configured Redis backend
    assert services.task_results_prune() == "skipped: RedisBackend expires results itself"


def test_task_results_past_result_expires_are_pruned_from_a_backend_that_keeps_them(tmp_path):
    # A backend without expiry of its own (as a database backend is): the file system one, for real.
    backend = FilesystemBackend(app=current_app, url=f"file://{tmp_path}")
    old_id, new_id = str(uuid.uuid4()), str(uuid.uuid4())
    backend.store_result(old_id, {"done": 1}, "SUCCESS")
    backend.store_result(new_id, {"done": 2}, "SUCCESS")
    old_file = next(p for p in tmp_path.iterdir() if old_id in p.name)
    long_ago = time.time() - services.result_expires_seconds() - 60
    os.utime(old_file, (long_ago, long_ago))

    assert services.task_results_prune(backend=backend, dry_run=True).startswith("would run FilesystemBackend.cleanup")
    assert old_file.exists()
    assert services.task_results_prune(backend=backend).startswith("pruned by FilesystemBackend.cleanup()")

    assert not old_file.exists()
    assert backend.get_task_meta(new_id)["result"] == {"done": 2}


# --- notification expiry -----------------------------------------------------------------------------

@pytest.mark.django_db
def test_a_notification_expiring_while_workers_are_down_is_never_sent(settings):
    settings.PUBLISHER_NOTIFICATION_EXPIRY = {"new-article": 3600}
    article = make_article(title="Breaking", body="Body.", status=ArticleStatus.PUBLISHED,
                           publish_at=utc(2026, 1, 1), published_at=utc(2026, 1, 1))
    subscribers = [make_subscriber(f"reader{i}@example.com") for i in range(3)]
    # The fan-out ran two hours ago; its send messages were never consumed (workers down).
    # (Travel back, not forward: the expiry compares with the database's clock.)
    with time_machine.travel(timezone.now() - timedelta(hours=2), tick=False):
        assert notifications.notifications_fan_out(article_id=article.pk) == 3
    fresh_subscriber = make_subscriber("late@example.com")
    fresh = Notification.objects.create(article=article, subscriber=fresh_subscriber,
                                        expires_at=timezone.now() + timedelta(hours=1))

    # Workers and beat come back: the expiry job runs...
    assert services.notifications_expiry_run() == {"expired": 3}
    # ...and so does the late send message, which finds nothing left to send.
    sent, failed = notifications.notifications_send(article_id=article.pk, first_subscriber_id=subscribers[0].pk,
                                                    last_subscriber_id=subscribers[-1].pk)

    assert (sent, failed) == (0, 0)
    assert mail.outbox == []
    assert set(Notification.objects.exclude(pk=fresh.pk).values_list("status", flat=True)) == {
        NotificationStatus.EXPIRED}
    assert Notification.objects.get(pk=fresh.pk).status == NotificationStatus.PENDING
    assert Heartbeat.objects.get(name="notification-expiry").detail == {"expired": 3}
    assert JobRun.objects.get(job="notification-expiry").detail == {"expired": 3}


@pytest.mark.django_db
def test_the_send_path_refuses_an_expired_row_even_before_the_expiry_job_ran(settings):
    article = make_article(title="Breaking", body="Body.", status=ArticleStatus.PUBLISHED,
                           publish_at=utc(2026, 1, 1), published_at=utc(2026, 1, 1))
    subscriber = make_subscriber("reader@example.com")
    row = Notification.objects.create(article=article, subscriber=subscriber,
                                      expires_at=timezone.now() - timedelta(seconds=1))

    assert notifications.notifications_send(article_id=article.pk, first_subscriber_id=subscriber.pk,
                                            last_subscriber_id=subscriber.pk) == (0, 0)
    assert mail.outbox == []
    row.refresh_from_db()
    assert row.status == NotificationStatus.EXPIRED


def test_expiry_defaults_per_kind_follow_the_notification_ttl(settings):
    from django.conf import settings as live

    assert live.PUBLISHER_NOTIFICATION_EXPIRY == {"new-article": live.PUBLISHER_NOTIFICATION_TTL,
                                                  "article-update": live.PUBLISHER_NOTIFICATION_TTL}


def subscriber(email, *, created_at, sent_at=None, **fields) -> Subscriber:
    """A row as of `created_at` (its newest confirmation mail at `sent_at`)."""
    fields.setdefault("source", SubscriberSource.SITE)
    fields.setdefault("confirmed_at", None)
    row = Subscriber.objects.create(email=email, **fields)
    Subscriber.objects.filter(pk=row.pk).update(created_at=created_at, confirmation_sent_at=sent_at)
    return row


@pytest.mark.django_db
def test_pending_subscribers_go_once_their_newest_link_expired(settings):
    settings.PUBLISHER_CONFIRM_DAYS = 7
    lapsed = NOW - 7 * DAY - US
    subscriber("lapsed@example.com", created_at=lapsed, sent_at=lapsed)
    subscriber("never-mailed@example.com", created_at=lapsed)  # made before migration 0008 recorded mails
    subscriber("just-in-time@example.com", created_at=lapsed, sent_at=NOW - 7 * DAY)
    subscriber("asked-again@example.com", created_at=utc(2020, 1, 1), sent_at=NOW - DAY)  # a new link works
    subscriber("confirmed@example.com", created_at=utc(2020, 1, 1), confirmed_at=utc(2020, 1, 2))
    subscriber("left@example.com", created_at=utc(2020, 1, 1), is_active=False, unsubscribed_at=utc(2020, 2, 1))
    subscriber("editor-made@example.com", created_at=utc(2020, 1, 1), source=SubscriberSource.ADMIN)

    assert services.cleanup_run(now=NOW, dry_run=True).pending_subscribers == 2
    assert Subscriber.objects.count() == 7
    assert services.cleanup_run(now=NOW).pending_subscribers == 2
    assert sorted(Subscriber.objects.values_list("email", flat=True)) == [
        "asked-again@example.com", "confirmed@example.com", "editor-made@example.com", "just-in-time@example.com",
        "left@example.com"]
    assert services.cleanup_run(now=NOW).pending_subscribers == 0


@pytest.mark.django_db
def test_pending_subscribers_are_deleted_in_bounded_batches(settings, capsys):
    settings.PUBLISHER_CLEANUP_BATCH = 2
    settings.PUBLISHER_CLEANUP_MAX_BATCHES = 2
    for i in range(5):
        subscriber(f"pending{i}@example.com", created_at=utc(2020, 1, 1))

    first = services.cleanup_run(now=NOW)
    assert (first.pending_subscribers, first.more) == (4, True)
    call_command("cleanup")  # runs until nothing is left, and says what it removed
    assert "removed 1 subscribers who never confirmed in time" in capsys.readouterr().out
    assert not Subscriber.objects.exists()
