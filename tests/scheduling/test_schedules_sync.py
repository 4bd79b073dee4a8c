"""The declared jobs reach django-celery-beat's tables; admin edits survive unless --reset."""

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from scheduling import schedules
from scheduling.services import schedules_sync

DECLARED = {schedules.SCAN, schedules.NOTIFICATION_EXPIRY, schedules.CLEANUP, schedules.DAILY_REPORT,
            schedules.WEBHOOKS}


def row(name: str) -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval", "crontab").get(name=name)


@pytest.mark.django_db
def test_creates_every_declared_job_with_its_default_schedule(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    result = schedules_sync()

    assert set(result.created) == DECLARED
    assert set(PeriodicTask.objects.filter(enabled=True).values_list("name", flat=True)) == DECLARED
    expiry, cleanup, report = row(schedules.NOTIFICATION_EXPIRY), row(schedules.CLEANUP), row(schedules.DAILY_REPORT)
    assert (expiry.task, expiry.interval.every, expiry.interval.period) == (
        "scheduling.tasks.expire_notifications", 60, IntervalSchedule.SECONDS)
    assert (cleanup.task, cleanup.interval.every) == ("scheduling.tasks.cleanup", 6 * 3600)
    assert report.task == "scheduling.tasks.daily_report" and report.interval is None
    crontab = report.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, crontab.day_of_month, crontab.month_of_year) == (
        "0", "8", "*", "*", "*")
    assert str(crontab.timezone) == "Europe/Berlin"
    assert report.expire_seconds is None, "a late report beats none"
    webhooks = row(schedules.WEBHOOKS)
    assert (webhooks.task, webhooks.interval.every) == ("publisher.webhooks.tasks.sweep", 15)
    assert all(row(name).queue == "scan" for name in DECLARED)


@pytest.mark.django_db
def test_is_idempotent():
    schedules_sync()
    counts = (PeriodicTask.objects.count(), IntervalSchedule.objects.count(), CrontabSchedule.objects.count())
    again = schedules_sync()
    assert again.created == [] and set(again.unchanged) == DECLARED and again.edited == {}
    assert (PeriodicTask.objects.count(), IntervalSchedule.objects.count(), CrontabSchedule.objects.count()) == counts


@pytest.mark.django_db
def test_keeps_admin_edits_unless_reset(capsys):
    schedules_sync()
    report = row(schedules.DAILY_REPORT)
    report.crontab = CrontabSchedule.objects.create(minute="30", hour="6", timezone="UTC")
    report.save()
    cleanup = row(schedules.CLEANUP)
    cleanup.enabled = False
    cleanup.save()

    call_command("sync_schedules")
    out = capsys.readouterr().out
    assert row(schedules.DAILY_REPORT).crontab.hour == "6"
    assert row(schedules.CLEANUP).enabled is False
    assert f"kept as edited: {schedules.DAILY_REPORT} (differs from the declaration: schedule" in out
    assert f"kept as edited: {schedules.CLEANUP} (differs from the declaration: disabled" in out
    assert f"unchanged: {schedules.SCAN}" in out

    call_command("sync_schedules", "--reset")
    assert row(schedules.DAILY_REPORT).crontab.hour == "8"
    assert row(schedules.CLEANUP).enabled is True
    assert schedules_sync().edited == {}


@pytest.mark.django_db
def test_report_time_comes_from_the_setting_and_a_bad_one_fails_clearly(settings):
    settings.PUBLISHER_REPORT_AT = "07:45"
    schedules_sync()
    assert (row(schedules.DAILY_REPORT).crontab.hour, row(schedules.DAILY_REPORT).crontab.minute) == ("7", "45")

    settings.PUBLISHER_REPORT_AT = "25:00"
    with pytest.raises(ImproperlyConfigured, match="PUBLISHER_REPORT_AT must be a local time as HH:MM"):
        schedules_sync()
    assert [e.id for e in run_checks() if e.id.startswith("scheduling.")] == ["scheduling.E001"]


@pytest.mark.django_db
def test_a_job_no_longer_declared_is_disabled_not_deleted():
    schedules_sync()
    remaining = [job for job in schedules.declared_jobs() if job.name != schedules.CLEANUP]
    result = schedules_sync(jobs=remaining)
    assert result.disabled == [schedules.CLEANUP]
    assert row(schedules.CLEANUP).enabled is False


@pytest.mark.django_db
def test_dry_run_writes_nothing(capsys):
    call_command("sync_schedules", "--dry-run")
    assert f"(dry run) created: {schedules.DAILY_REPORT}" in capsys.readouterr().out
    assert not PeriodicTask.objects.exists()


@pytest.mark.django_db
def test_duplicate_crontabs_made_in_the_admin_do_not_break_the_sync(settings):
    for _ in range(2):
        CrontabSchedule.objects.create(minute="0", hour="8", timezone=settings.TIME_ZONE)
    schedules_sync()
    assert row(schedules.DAILY_REPORT).crontab == CrontabSchedule.objects.order_by("pk").first()


def test_settings_pass_the_system_checks():
    assert [e.id for e in run_checks() if e.id.startswith("scheduling.")] == []


def test_a_scheduler_without_our_heartbeat_and_catch_up_is_flagged(settings):
    settings.CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
    assert [e.id for e in run_checks() if e.id.startswith("scheduling.")] == ["scheduling.W001"]
