"""Row 21: beat after its host clock was corrected. django-celery-beat keeps each job's last run
in the database; one written while the clock was an hour ahead made beat wait that hour (across
restarts) while its own heartbeat read healthy and /health/ answered 503."""

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from scheduling import schedules
from scheduling.models import Heartbeat
from scheduling.health import health_check
from tests.support.waiting import wait_for

AHEAD = timedelta(hours=1)


def test_a_last_run_stored_an_hour_ahead_is_reset_and_the_scan_resumes(processes, client, settings, capsys):
    settings.PUBLISHER_HEALTH_SCAN_MAX_AGE = 30  # this process judges health; the scan runs every second
    call_command("sync_schedules")
    stored = timezone.now() + AHEAD  # written while the clock was an hour ahead, then corrected
    assert PeriodicTask.objects.filter(name=schedules.SCAN).update(last_run_at=stored) == 1
    assert not Heartbeat.objects.filter(name="scan").exists()
    processes.worker()
    processes.beat()
    started = timezone.now()  # beat has logged "beat: Starting"

    # Without the reset the scan would not run for an hour: any generous timeout tells the two apart.
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=120,
             message="the scan to run after the clock correction")
    assert "a clock jump; reset to now" in processes.log("beat")
    wait_for(lambda: PeriodicTask.objects.get(name=schedules.SCAN).last_run_at < timezone.now() + timedelta(seconds=5),
             timeout=60, message="beat to store a last run that is not in the future")
    first = Heartbeat.objects.get(name="scan").last_seen_at
    with capsys.disabled():
        print(f"\nrow 21: first scan {(first - started).total_seconds():.2f} s after beat started "
              f"(scan interval {processes.env['PUBLISHER_SCAN_INTERVAL']} s)")
    wait_for(lambda: Heartbeat.objects.get(name="scan").last_seen_at > first, timeout=60,
             message="the scan to keep running every interval")

    # Beat's heartbeat and /health/ agree: both healthy.
    wait_for(lambda: health_check().healthy, timeout=60, message="healthy once the scan resumed")
    checks = {check.name: check.ok for check in health_check().checks}
    assert checks["scan"] and checks["beat"], checks
    assert client.get("/health/").status_code == 200
