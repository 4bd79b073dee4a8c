"""Beat itself, driven tick by tick through time-machine: the real scheduler (ours, on
django-celery-beat's DatabaseScheduler) sending to the real test broker. The 08:00 report runs
once a local day through DST changes; two beats cost one report; a beat started after a missed
08:00 catches up at once; the heartbeat; the standby lock."""

import base64
import json
import time
from datetime import datetime, timedelta

import pytest
import time_machine
from celery import current_app
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django.db.models.functions import Now
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from scheduling import reports, schedules
from scheduling.beat import CHANGES_CHECK_INTERVAL, LOCK_NAME, Scheduler
from scheduling.models import DailyReport, Heartbeat, SchedulerLock
from scheduling.services import scheduler_lock_acquire, scheduler_lock_release, schedules_sync
from tests.support.clock import BERLIN, local, utc

# Half-hour steps from a whole hour land on 08:00 itself; a DST mistake is a whole hour off.
STEP = timedelta(minutes=30)


def only_the_report_job(*, last_run_at: datetime) -> None:
    """The declared jobs, with every job but the daily report switched off (the others run every
    few seconds and would drown the report's sends)."""
    schedules_sync()
    PeriodicTask.objects.exclude(name=schedules.DAILY_REPORT).update(enabled=False)
    PeriodicTask.objects.filter(name=schedules.DAILY_REPORT).update(last_run_at=last_run_at)


def drive(schedulers, traveller, queue, *, until: datetime) -> list[tuple[str, str, dict, datetime]]:
    """Tick each scheduler as beat's loop would, moving the clock on in STEPs; return what
    reached the broker: (periodic task name or "", task, kwargs, when)."""
    sent = []
    while (now := timezone.now()) < until:
        for scheduler in schedulers:
            for _ in range(10):  # tick() returns 0 when it sent something and has more to look at
                if scheduler.tick() != 0:
                    break
        for message in queue.drain():
            headers = message["headers"]
            sent.append((headers.get("periodic_task_name", ""), headers["task"], _kwargs(message), now))
        traveller.shift(STEP)
    return sent


def _kwargs(message) -> dict:
    _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    return kwargs


def report_runs(sent):
    return [when for name, _, _, when in sent if name == schedules.DAILY_REPORT]


@pytest.fixture
def beat(transactional_db, scan_queue):
    """Make schedulers as `celery beat` does; close them at the end."""
    made = []

    def make():
        scheduler = Scheduler(app=current_app)
        made.append(scheduler)
        return scheduler

    yield make
    for scheduler in made:
        scheduler.close()


@pytest.mark.parametrize("first_day, dst_day", [(28, 29), (24, 25)], ids=["spring-forward", "fall-back"])
def test_the_08_00_report_runs_once_each_local_day_through_a_dst_change(berlin, beat, scan_queue, first_day, dst_day):
    month = 3 if dst_day == 29 else 10
    only_the_report_job(last_run_at=local(BERLIN, 2026, month, first_day, 8, 0))
    with time_machine.travel(local(BERLIN, 2026, month, first_day, 9, 0), tick=False) as traveller:
        sent = drive([beat()], traveller, scan_queue, until=local(BERLIN, 2026, month, first_day + 3, 9, 0))

    runs = [when.astimezone(BERLIN) for when in report_runs(sent)]
    assert [run.day for run in runs] == [first_day + 1, first_day + 2, first_day + 3], runs
    assert all((run.hour, run.minute) == (8, 0) for run in runs), runs
    # The catch-up at beat start went out once, and nothing else of ours.
    catch_ups = [kwargs for name, task, kwargs, _ in sent if task == "scheduling.tasks.daily_report" and not name]
    assert catch_ups == [{"catch_up": True}]


def test_two_beats_each_send_the_08_00_job_and_one_report_and_mail_result(berlin, beat, scan_queue, recipients):
    only_the_report_job(last_run_at=local(BERLIN, 2026, 3, 28, 8, 0))
    DailyReport.objects.create(date=datetime(2026, 3, 27).date(), time_zone="Europe/Berlin",
                               window_start=local(BERLIN, 2026, 3, 27, 0, 0),
                               window_end=local(BERLIN, 2026, 3, 28, 0, 0),
                               built_at=local(BERLIN, 2026, 3, 28, 8, 0), email_status="sent")
    with time_machine.travel(local(BERLIN, 2026, 3, 28, 9, 0), tick=False) as traveller:
        sent = drive([beat(), beat()], traveller, scan_queue, until=local(BERLIN, 2026, 3, 30, 9, 0))
        # A worker runs every message that reached the broker, at the time it was sent.
        for name, task, kwargs, when in sent:
            if task == "scheduling.tasks.daily_report":
                traveller.move_to(when)
                reports.daily_reports_run(**kwargs)

    assert len(report_runs(sent)) == 2 * 2, "each beat sends the job once a day"
    assert sorted(DailyReport.objects.values_list("date", flat=True)) == [
        datetime(2026, 3, d).date() for d in (27, 28, 29)]
    subjects = sorted((m.to[0], m.subject.split(":")[0]) for m in mail.outbox)
    assert subjects == sorted((to, f"Daily report 2026-03-{d}") for to in recipients for d in (28, 29))


def test_a_beat_started_after_a_missed_08_00_catches_up_at_once(beat, scan_queue, recipients):
    only_the_report_job(last_run_at=utc(2026, 11, 19, 8, 0))  # it last ran on the 19th
    DailyReport.objects.create(date=datetime(2026, 11, 18).date(), time_zone="UTC", window_start=utc(2026, 11, 18),
                               window_end=utc(2026, 11, 19), built_at=utc(2026, 11, 19, 8), email_status="sent")
    with time_machine.travel(utc(2026, 11, 21, 13, 0), tick=False) as traveller:  # down on the 20th and 21st at 08:00
        sent = drive([beat()], traveller, scan_queue, until=utc(2026, 11, 21, 13, 1))
        for _, task, kwargs, _ in sent:
            if task == "scheduling.tasks.daily_report":
                reports.daily_reports_run(**kwargs)

    assert ("", "scheduling.tasks.daily_report", {"catch_up": True}) in [s[:3] for s in sent]
    assert sorted(DailyReport.objects.values_list("date", flat=True)) == [
        datetime(2026, 11, d).date() for d in (18, 19, 20)]
    assert len(mail.outbox) == 2 * 2


def test_beat_leaves_a_heartbeat(beat, scan_queue):
    schedules_sync()
    scheduler = beat()
    scheduler.tick()
    heartbeat = Heartbeat.objects.get(name="beat")
    assert heartbeat.detail == {"owner": scheduler.owner, "role": "active"}


# --- the standby lock -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_lock_is_compare_and_set_on_one_row():
    assert scheduler_lock_acquire(name="beat", owner="a", ttl=30)
    assert not scheduler_lock_acquire(name="beat", owner="b", ttl=30)
    assert scheduler_lock_acquire(name="beat", owner="a", ttl=30), "the holder renews"
    assert scheduler_lock_release(name="beat", owner="a")
    assert scheduler_lock_acquire(name="beat", owner="b", ttl=30)
    assert not scheduler_lock_release(name="beat", owner="a"), "only the holder releases"
    assert SchedulerLock.objects.count() == 1


@pytest.mark.django_db
def test_a_lease_that_ran_out_is_taken_over():
    assert scheduler_lock_acquire(name="beat", owner="a", ttl=30)
    SchedulerLock.objects.update(expires_at=Now())  # the holder died 30 s ago and never renewed
    assert scheduler_lock_acquire(name="beat", owner="b", ttl=30)
    assert SchedulerLock.objects.get().owner == "b"


def test_with_the_lock_only_one_beat_sends_and_the_standby_takes_over(beat, scan_queue, settings):
    settings.PUBLISHER_BEAT_LOCK = True
    schedules_sync()
    active, standby = beat(), beat()

    active.tick()
    standby.tick()
    first = scan_queue.drain()
    assert active.leading and not standby.leading
    assert first and SchedulerLock.objects.get(name=LOCK_NAME).owner == active.owner
    assert Heartbeat.objects.get(name="beat-standby").detail["owner"] == standby.owner

    active.close()  # a clean stop gives the lease up (and saves its last run times)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        standby.tick()
        assert standby.leading
        assert [m["headers"]["task"] for m in scan_queue.drain()] == ["scheduling.tasks.daily_report"]  # catch-up
        # It starts from the last runs the previous holder saved: the scan waits out its interval.
        traveller.shift(timedelta(seconds=settings.PUBLISHER_SCAN_INTERVAL + 1))
        for _ in range(3):
            standby.tick()
    assert "scheduling.tasks.scan" in [m["headers"]["task"] for m in scan_queue.drain()]


def test_no_catch_up_when_an_operator_switched_the_report_off(beat, scan_queue):
    schedules_sync()
    PeriodicTask.objects.filter(name=schedules.DAILY_REPORT).update(enabled=False)
    beat().tick()
    assert "scheduling.tasks.daily_report" not in [m["headers"]["task"] for m in scan_queue.drain()]


def test_the_schedules_changed_flag_is_read_at_most_once_a_second(beat, scan_queue):
    schedules_sync()
    scheduler = beat()
    scheduler.tick()  # the initial read

    def flag_reads(reads: int) -> int:
        with CaptureQueriesContext(connection) as queries:
            for _ in range(reads):
                scheduler.schedule  # what beat's tick() reads, and django-celery-beat checks the flag on
        return sum(query["sql"].startswith('SELECT "django_celery_beat_periodictasks"')
                   for query in queries.captured_queries)

    scheduler._changes_checked_at -= 10  # the last check, ten seconds ago
    assert flag_reads(20) == 1
    # Within the second after a check (pinned there: a starved machine must not let it pass).
    scheduler._changes_checked_at = time.monotonic() + 60
    assert flag_reads(5) == 0
    # An edit (the admin's save bumps the flag) is seen at the first read a second later.
    PeriodicTask.objects.filter(name=schedules.DAILY_REPORT).update(enabled=False)
    PeriodicTasks.update_changed()
    assert flag_reads(3) == 0 and schedules.DAILY_REPORT in scheduler.schedule
    scheduler._changes_checked_at = time.monotonic() - CHANGES_CHECK_INTERVAL
    assert flag_reads(3) == 1
    assert schedules.DAILY_REPORT not in scheduler.schedule
