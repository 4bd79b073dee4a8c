"""Every time on the admin's other pages names its zone: the scheduling app's (heartbeats,
job runs, daily reports, periodic tasks), notifications, subscribers and users, in lists,
read-only pages, history pages and the inputs of change forms."""

from datetime import UTC, date, datetime

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from publisher.models import EditorProfile
from scheduling.models import DailyReport, Heartbeat, JobRun
from tests.factories import make_subscriber

MOMENT = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
IN_PARIS = "Wed 1 Jul 2026, 12:00 CEST"


@pytest.fixture
def paris_admin(admin_client):
    EditorProfile.objects.create(user=User.objects.get(username="admin"), time_zone="Europe/Paris")
    return admin_client


def test_heartbeats_say_their_zone(paris_admin):
    beat = Heartbeat.objects.create(name="scan", last_seen_at=MOMENT, detail="")
    assert IN_PARIS in paris_admin.get(reverse("admin:scheduling_heartbeat_changelist")).content.decode()
    page = paris_admin.get(reverse("admin:scheduling_heartbeat_change", args=[beat.pk])).content.decode()
    assert "Wed 1 Jul 2026, 12:00 CEST" in page


def test_job_runs_say_their_zone(paris_admin):
    run = JobRun.objects.create(job="daily_report", started_at=MOMENT, finished_at=MOMENT, detail={})
    assert IN_PARIS in paris_admin.get(reverse("admin:scheduling_jobrun_changelist")).content.decode()
    assert "Wed 1 Jul 2026, 12:00 CEST" in paris_admin.get(
        reverse("admin:scheduling_jobrun_change", args=[run.pk])).content.decode()


def test_daily_report_times_say_their_zone(paris_admin):
    report = DailyReport.objects.create(date=date(2026, 7, 1), time_zone="Europe/Paris", window_start=MOMENT,
                                        window_end=MOMENT, built_at=MOMENT, publications_per_hour=[])
    page = paris_admin.get(reverse("admin:scheduling_dailyreport_change", args=[report.pk])).content.decode()
    assert page.count(">Wed 1 Jul 2026, 12:00 CEST</time>") == 3  # window start and end, built at


def test_periodic_task_list_says_its_zone(paris_admin):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every = IntervalSchedule.objects.create(every=5, period="seconds")
    PeriodicTask.objects.create(name="scan", task="publisher.scan", interval=every, last_run_at=MOMENT)
    assert IN_PARIS in paris_admin.get(reverse("admin:django_celery_beat_periodictask_changelist")).content.decode()


def test_notification_and_user_forms_enter_times_in_the_named_zone(paris_admin):
    user = User.objects.get(username="admin")
    User.objects.filter(pk=user.pk).update(last_login=MOMENT)
    page = paris_admin.get(reverse("admin:auth_user_change", args=[user.pk])).content.decode()
    assert 'name="last_login_0" value="2026-07-01"' in page and 'name="last_login_1" value="12:00:00"' in page
    assert "Europe/Paris (CEST, UTC+02:00)" in page
    assert IN_PARIS in paris_admin.get(reverse("admin:auth_user_changelist")).content.decode()
    subscriber = make_subscriber("reader@example.com")
    assert "Wed 1 Jul 2026" not in paris_admin.get(reverse("admin:publisher_subscriber_changelist")).content.decode()
    history = paris_admin.get(reverse("admin:publisher_subscriber_history", args=[subscriber.pk])).content.decode()
    assert "times in your time zone, Europe/Paris (CE" in history
