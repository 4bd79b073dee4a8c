"""Beat after a clock correction: a job's stored last run beyond PUBLISHER_BEAT_CLOCK_TOLERANCE
ahead of beat's clock is reset to now (scheduling/beat.py); within the tolerance it is kept.
The real beat process is exercised by tests/faults/test_beat_clock.py."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from celery import current_app
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling import schedules
from scheduling.beat import Scheduler
from tests.support.processes import ROOT

pytestmark = pytest.mark.django_db(transaction=True)  # beat closes old connections, as in its process


def scheduler_with_scan_last_run(ahead: timedelta) -> Scheduler:
    call_command("sync_schedules", verbosity=0)
    PeriodicTask.objects.filter(name=schedules.SCAN).update(last_run_at=timezone.now() + ahead)
    return Scheduler(app=current_app)


def test_a_last_run_an_hour_ahead_is_reset_in_memory_and_in_the_database(caplog):
    scheduler = scheduler_with_scan_last_run(timedelta(hours=1))
    scheduler._heap = []
    before = timezone.now()
    scheduler._reset_last_runs_from_the_future()
    after = timezone.now()

    entry = scheduler._schedule[schedules.SCAN]
    assert before - timedelta(seconds=1) <= entry.last_run_at <= after
    assert before - timedelta(seconds=1) <= PeriodicTask.objects.get(name=schedules.SCAN).last_run_at <= after
    assert scheduler._heap is None  # rebuilt at the next tick, in the corrected order
    assert f"beat: {schedules.SCAN} last ran at" in caplog.text and "a clock jump; reset to now" in caplog.text
    is_due, next_in = entry.is_due()
    assert not is_due and next_in <= entry.schedule.run_every.total_seconds()  # runs within one interval


def test_a_last_run_within_the_tolerance_is_kept(settings):
    settings.PUBLISHER_BEAT_CLOCK_TOLERANCE = 10
    scheduler = scheduler_with_scan_last_run(timedelta(seconds=5))
    stored = PeriodicTask.objects.get(name=schedules.SCAN).last_run_at
    scheduler._heap = []
    scheduler._reset_last_runs_from_the_future()
    assert scheduler._schedule[schedules.SCAN].last_run_at == stored
    assert PeriodicTask.objects.get(name=schedules.SCAN).last_run_at == stored
    assert scheduler._heap == []


def test_the_tolerance_is_a_setting(settings):
    settings.PUBLISHER_BEAT_CLOCK_TOLERANCE = 2 * 3600
    scheduler = scheduler_with_scan_last_run(timedelta(hours=1))
    stored = PeriodicTask.objects.get(name=schedules.SCAN).last_run_at
    scheduler._reset_last_runs_from_the_future()
    assert scheduler._schedule[schedules.SCAN].last_run_at == stored


def _tolerance_from_env(value: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test"}
    env.pop("PUBLISHER_BEAT_CLOCK_TOLERANCE", None)
    if value is not None:
        env["PUBLISHER_BEAT_CLOCK_TOLERANCE"] = value
    return subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                           "print(settings.PUBLISHER_BEAT_CLOCK_TOLERANCE)"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.one_tier
def test_the_tolerance_defaults_to_ten_seconds_and_is_parsed_strictly():
    assert _tolerance_from_env(None).stdout.strip() == "10.0"
    assert _tolerance_from_env("2.5").stdout.strip() == "2.5"
    for bad, expected in [("ten", "must be a number"), ("-1", "must be at least 0.0"), ("nan", "must be a number")]:
        result = _tolerance_from_env(bad)
        assert result.returncode != 0
        assert f"PUBLISHER_BEAT_CLOCK_TOLERANCE {expected}" in result.stderr, result.stderr[-2000:]
