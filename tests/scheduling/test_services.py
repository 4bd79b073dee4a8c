"""scheduling.services: the schedule sync (idempotent, keeps an operator's edits, disables what is
no longer declared) and the scan (its summary and its heartbeat)."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus
from scheduling import schedules
from scheduling.models import Heartbeat
from scheduling.services import scan_run, schedules_sync
from tests.factories import make_article, make_subscriber

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scan_settings(settings):
    settings.PUBLISHER_SCAN_INTERVAL = 10.0
    settings.PUBLISHER_LOOKAHEAD = 20
    settings.PUBLISHER_LEASE_SECONDS = 300
    settings.PUBLISHER_MAX_ATTEMPTS = 3
    settings.PUBLISHER_MAX_LATENESS = None
    settings.PUBLISHER_SCAN_BATCH = 1000
    return settings


def scan_row() -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval").get(name=schedules.SCAN)


# --- schedules_sync ------------------------------------------------------------------------------------

def test_sync_creates_the_scan_task_once():
    first = schedules_sync()
    row = scan_row()
    second = schedules_sync()

    assert schedules.SCAN in first.created
    assert second.created == [] and schedules.SCAN in second.unchanged and second.edited == {}
    assert PeriodicTask.objects.filter(name=schedules.SCAN).count() == 1
    assert PeriodicTask.objects.filter(task="scheduling.tasks.scan").count() == 1
    again = scan_row()
    assert again.pk == row.pk and again.interval_id == row.interval_id
    assert (again.task, again.queue, again.enabled) == ("scheduling.tasks.scan", "scan", True)
    assert (again.interval.every, again.interval.period) == (10, IntervalSchedule.SECONDS)
    assert again.expire_seconds == 30
    assert again.kwargs == "{}"
    assert IntervalSchedule.objects.filter(every=10, period=IntervalSchedule.SECONDS).count() == 1


def test_sync_follows_the_scan_interval_setting(settings):
    settings.PUBLISHER_SCAN_INTERVAL = 15.0
    schedules_sync()
    row = scan_row()
    assert (row.interval.every, row.interval.period) == (15, IntervalSchedule.SECONDS)
    assert row.expire_seconds == 45  # three intervals, at least 30 s


@pytest.mark.parametrize("seconds, micro", [(0.5, 500_000), (0.25, 250_000), (1.5, 1_500_000), (0.1, 100_000)])
def test_a_sub_second_interval_is_stored_in_microseconds(settings, seconds, micro):
    settings.PUBLISHER_SCAN_INTERVAL = seconds
    schedules_sync()
    row = scan_row()
    assert (row.interval.every, row.interval.period) == (micro, IntervalSchedule.MICROSECONDS)
    assert row.interval.schedule.run_every == timedelta(seconds=seconds)
    # The stored row matches the declaration: a second sync sees no operator edit.
    again = schedules_sync()
    assert again.edited == {} and again.created == []
    assert IntervalSchedule.objects.filter(period=IntervalSchedule.MICROSECONDS).count() == 1


def test_an_operator_pointing_the_scan_at_another_interval_is_kept_unless_reset():
    schedules_sync()
    row = scan_row()
    row.interval = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    row.save()

    kept = schedules_sync()
    assert kept.edited == {schedules.SCAN: ["schedule"]}
    assert schedules.SCAN in kept.unchanged and kept.updated == []
    assert scan_row().interval.every == 30

    reset = schedules_sync(reset=True)
    assert schedules.SCAN in reset.updated
    assert (scan_row().interval.every, scan_row().interval.period) == (10, IntervalSchedule.SECONDS)
    assert schedules_sync().edited == {}


def test_an_operator_editing_the_interval_row_itself_is_kept_unless_reset():
    schedules_sync()
    IntervalSchedule.objects.filter(pk=scan_row().interval_id).update(every=45)

    assert schedules_sync().edited == {schedules.SCAN: ["schedule"]}
    assert scan_row().interval.every == 45

    schedules_sync(reset=True)
    assert (scan_row().interval.every, scan_row().interval.period) == (10, IntervalSchedule.SECONDS)
    assert PeriodicTask.objects.filter(name=schedules.SCAN).count() == 1


def test_an_operator_disabling_the_scan_is_kept_unless_reset():
    schedules_sync()
    PeriodicTask.objects.filter(name=schedules.SCAN).update(enabled=False, queue="other", expire_seconds=5)

    result = schedules_sync()
    assert result.edited == {schedules.SCAN: ["queue", "expiry", "disabled"]}
    assert scan_row().enabled is False

    schedules_sync(reset=True)
    row = scan_row()
    assert (row.enabled, row.queue, row.expire_seconds) == (True, "scan", 30)


def test_dry_run_writes_nothing_but_reports_what_it_would_do():
    result = schedules_sync(dry_run=True)
    assert schedules.SCAN in result.created
    assert not PeriodicTask.objects.exists()
    assert not IntervalSchedule.objects.exists()


def test_a_job_no_longer_declared_is_disabled_not_deleted():
    schedules_sync()
    interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.MINUTES)
    retired = PeriodicTask.objects.create(name="publisher: retired job", task="scheduling.tasks.retired",
                                          interval=interval, enabled=True)
    foreign = PeriodicTask.objects.create(name="someone else's job", task="celery.backend_cleanup",
                                          interval=interval, enabled=True)
    changed_before = PeriodicTasks.last_change()

    result = schedules_sync()

    assert result.disabled == ["publisher: retired job"]
    retired.refresh_from_db()
    assert retired.enabled is False  # kept, with its run history
    foreign.refresh_from_db()
    assert foreign.enabled is True  # not ours: untouched
    assert scan_row().enabled is True
    # Beat re-reads its schedule when PeriodicTasks changes (a queryset update sends no signal).
    assert PeriodicTasks.last_change() is not None
    assert changed_before is None or PeriodicTasks.last_change() > changed_before

    # Already disabled: not reported again.
    assert schedules_sync().disabled == []
    assert PeriodicTask.objects.filter(name="publisher: retired job").exists()


def test_a_declared_job_dropped_from_the_declaration_is_disabled():
    schedules_sync()
    result = schedules_sync(jobs=[job for job in schedules.declared_jobs() if job.name != schedules.SCAN])
    assert result.disabled == [schedules.SCAN]
    assert scan_row().enabled is False
    # Declared again later: the row comes back as the operator sees it (disabled), until reset.
    assert schedules_sync().edited == {schedules.SCAN: ["disabled"]}
    schedules_sync(reset=True)
    assert scan_row().enabled is True


# --- scan_run -------------------------------------------------------------------------------------------

def test_scan_returns_what_it_did_and_records_a_heartbeat(dispatched, django_capture_on_commit_callbacks):
    now = timezone.now()
    due = make_article(title="Due", body="B", status=ArticleStatus.SCHEDULED,
                       publish_at=now - timedelta(seconds=5))
    make_article(title="Later", body="B", status=ArticleStatus.SCHEDULED, publish_at=now + timedelta(hours=1))
    stale = make_article(title="Stale", body="B", status=ArticleStatus.PUBLISHING,
                         publish_at=now - timedelta(minutes=10), claim_token=uuid.uuid4(), attempts=1,
                         lease_expires_at=now - timedelta(seconds=5))
    spent = make_article(title="Spent", body="B", status=ArticleStatus.PUBLISHING,
                         publish_at=now - timedelta(minutes=30), claim_token=uuid.uuid4(), attempts=3,
                         lease_expires_at=now - timedelta(seconds=5))
    live = make_article(title="Live", body="B", status=ArticleStatus.PUBLISHED,
                        publish_at=now - timedelta(hours=2), published_at=now - timedelta(hours=2),
                        unpublish_at=now - timedelta(seconds=5))

    with django_capture_on_commit_callbacks(execute=True):
        summary = scan_run()

    assert summary == {"claimed": 1, "reclaimed": 1, "given_up": 1, "taken_down": 1, "notifications_resent": 0,
                       "notifications_interrupted": 0, "fan_outs_redispatched": 0, "preflights_dispatched": 0,
                       "releases_claimed": 0, "releases_reclaimed": 0, "releases_blocked": 0,
                       "releases_rolled_back": 0, "release_rollbacks_dispatched": 0, "changes_claimed": 0,
                       "changes_reclaimed": 0, "changes_given_up": 0, "release_preflights_dispatched": 0,
                       "change_preflights_dispatched": 0, "more": False}
    assert Article.objects.get(pk=due.pk).status == ArticleStatus.PUBLISHING
    assert Article.objects.get(pk=stale.pk).attempts == 2
    assert Article.objects.get(pk=spent.pk).status == ArticleStatus.FAILED
    assert Article.objects.get(pk=live.pk).status == ArticleStatus.EXPIRED
    assert sorted(([pk for pk, _ in call["due"]], call["chunk_size"]) for call in dispatched) == [([due.pk], None), ([stale.pk], 1)]

    heartbeat = Heartbeat.objects.get(name="scan")
    assert heartbeat.detail == summary
    # Stamped by the database's clock (SQLite keeps milliseconds of it).
    assert now - timedelta(milliseconds=1) <= heartbeat.last_seen_at <= timezone.now()


def test_an_idle_scan_still_records_its_heartbeat_and_keeps_one_row(dispatched):
    first = scan_run()
    seen = Heartbeat.objects.get(name="scan").last_seen_at
    second = scan_run()
    assert first == second == {"claimed": 0, "reclaimed": 0, "given_up": 0, "taken_down": 0,
                               "notifications_resent": 0, "notifications_interrupted": 0,
                               "fan_outs_redispatched": 0, "preflights_dispatched": 0, "releases_claimed": 0,
                               "releases_reclaimed": 0, "releases_blocked": 0, "releases_rolled_back": 0,
                               "release_rollbacks_dispatched": 0, "changes_claimed": 0, "changes_reclaimed": 0,
                               "changes_given_up": 0, "release_preflights_dispatched": 0,
                               "change_preflights_dispatched": 0, "more": False}
    assert Heartbeat.objects.filter(name="scan").count() == 1
    assert Heartbeat.objects.get(name="scan").last_seen_at >= seen
    assert dispatched == []


def test_a_scan_that_hits_its_batch_says_there_is_more(settings, dispatched):
    settings.PUBLISHER_SCAN_BATCH = 2
    for i in range(3):
        make_article(title=f"Due {i}", body="B", status=ArticleStatus.SCHEDULED,
                     publish_at=timezone.now() - timedelta(seconds=5 + i))
    summary = scan_run()
    assert (summary["claimed"], summary["more"]) == (2, True)
    assert Heartbeat.objects.get(name="scan").detail["more"] is True
    assert scan_run()["claimed"] == 1
    assert scan_run()["more"] is False


def test_the_scan_marks_interrupted_sends_interrupted(dispatched):
    article = make_article(title="Live", body="B", status=ArticleStatus.PUBLISHED,
                           publish_at=timezone.now() - timedelta(hours=1), published_at=timezone.now())
    subscriber = make_subscriber("a@example.com")
    notification = Notification.objects.create(article=article, subscriber=subscriber,
                                               status=NotificationStatus.SENDING,
                                               expires_at=timezone.now() + timedelta(hours=1))
    Notification.objects.filter(pk=notification.pk).update(updated_at=timezone.now() - timedelta(hours=1))

    assert scan_run()["notifications_interrupted"] == 1
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.INTERRUPTED


def test_a_batch_used_up_by_expired_articles_still_says_there_is_more(settings, dispatched):
    settings.PUBLISHER_SCAN_BATCH = 2
    now = timezone.now()
    for i in range(2):
        make_article(title=f"Gone {i}", body="B", status=ArticleStatus.SCHEDULED,
                     publish_at=now - timedelta(hours=2, seconds=i), unpublish_at=now - timedelta(hours=1))
    due = make_article(title="Due", body="B", status=ArticleStatus.SCHEDULED,
                       publish_at=now - timedelta(seconds=5))

    summary = scan_run()

    assert Article.objects.filter(status=ArticleStatus.EXPIRED).count() == 2
    assert Article.objects.get(pk=due.pk).status == ArticleStatus.SCHEDULED  # left for the next round
    assert summary["more"] is True
