"""Health: healthy only with the database and the broker answering and a fresh scan; the
command's exit status and the endpoint's HTTP status say so. One rule (health.py) for the probe,
the admin's panel and the metrics; ages by the database's clock, not the host's."""

import json
from datetime import timedelta

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models.functions import Now
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduling import dashboard, health, schedules
from scheduling.health import health_check
from scheduling.models import Heartbeat
from scheduling.services import heartbeat_record, schedules_sync


def checks(health) -> dict:
    return {check.name: check for check in health.checks}


def age(name: str, seconds: float) -> None:
    """Make the heartbeat `name` `seconds` old by the database's clock (the one health reads)."""
    heartbeat_record(name=name)
    Heartbeat.objects.filter(name=name).update(last_seen_at=Now() - timedelta(seconds=seconds))


@pytest.mark.django_db
def test_no_scan_yet_is_unhealthy_with_the_reason():
    health = health_check()
    assert not health.healthy
    assert checks(health)["database"].ok and checks(health)["broker"].ok
    assert checks(health)["scan"].detail == "no scan recorded yet"


@pytest.mark.django_db
def test_a_recent_scan_is_healthy_and_an_old_one_is_not(settings):
    settings.PUBLISHER_HEALTH_SCAN_MAX_AGE = 60
    heartbeat_record(name="scan")
    assert health_check().healthy
    age("scan", 61)
    health = health_check()
    assert not health.healthy
    assert "older than 60 s" in checks(health)["scan"].detail


@pytest.mark.django_db
def test_the_allowed_age_follows_the_scan_interval_set_in_the_admin(settings):
    settings.PUBLISHER_SCAN_INTERVAL = 10
    schedules_sync()
    age("scan", 300)
    assert not health_check().healthy  # six intervals of 10 s, at least 60 s
    task = PeriodicTask.objects.get(name=schedules.SCAN)
    task.interval = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.MINUTES)
    task.save()
    assert health_check().healthy  # six intervals of 2 minutes


@pytest.mark.django_db
def test_an_unreachable_broker_is_unhealthy(dead_broker):
    heartbeat_record(name="scan")
    health = health_check()
    assert not health.healthy
    assert not checks(health)["broker"].ok
    assert "Connection refused" in checks(health)["broker"].detail or "111" in checks(health)["broker"].detail


@pytest.mark.django_db
def test_beat_heartbeat_is_reported_but_does_not_decide(settings):
    heartbeat_record(name="scan")
    health = health_check()
    assert health.healthy
    assert checks(health)["beat"].ok is False and checks(health)["beat"].required is False
    heartbeat_record(name="beat")
    assert checks(health_check())["beat"].ok


@pytest.mark.django_db
def test_command_exits_zero_when_healthy_and_nonzero_otherwise(capsys):
    with pytest.raises(CommandError, match="unhealthy: scan"):
        call_command("health")
    assert "FAIL scan" in capsys.readouterr().out
    heartbeat_record(name="scan")
    call_command("health")
    out = capsys.readouterr().out
    assert out.strip().endswith("healthy") and "ok   database" in out and "ok   broker" in out


@pytest.mark.django_db
def test_command_options(capsys):
    heartbeat_record(name="scan")
    call_command("health", "--json")
    assert json.loads(capsys.readouterr().out)["healthy"] is True
    age("scan", 5)
    with pytest.raises(CommandError, match="unhealthy: scan"):
        call_command("health", "--max-scan-age", "2")
    with pytest.raises(CommandError, match="must be a positive number"):
        call_command("health", "--max-scan-age", "0")


@pytest.mark.django_db
def test_endpoint_200_when_healthy_503_otherwise(client, dead_broker):
    heartbeat_record(name="scan")
    response = client.get("/health/")
    assert response.status_code == 503
    body = response.json()
    assert body["healthy"] is False
    assert [c["name"] for c in body["checks"] if not c["ok"] and c["required"]] == ["broker"]
    assert "127.0.0.1" not in json.dumps(body), "the public endpoint names internal addresses"


@pytest.mark.django_db
def test_endpoint_healthy(client):
    heartbeat_record(name="scan")
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json()["healthy"] is True
    assert "no-cache" in response["Cache-Control"]
    assert client.post("/health/").status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize("skew", [timedelta(minutes=-5), timedelta(minutes=1), timedelta(minutes=5)])
def test_a_host_whose_clock_is_off_reports_a_live_beat_alive(settings, client, skew):
    """The heartbeats are fresh in the database; only this process's clock is off. Writes with a
    skewed clock too (a worker on that host) are stamped by the database."""
    settings.PUBLISHER_METRICS_TOKEN = ""
    settings.PUBLISHER_METRICS_OPEN = True
    schedules_sync()
    with time_machine.travel(timezone.now() + skew, tick=True):
        heartbeat_record(name="scan")
        heartbeat_record(name="beat")
        pulses = health.pulses()
        assert pulses["scan"].fresh and pulses["scan"].age_seconds < 5
        assert health_check().healthy
        assert dashboard.scan_health().alive
        assert 'publisher_heartbeat_fresh{name="scan"} 1.0' in client.get("/metrics/").content.decode()
    assert abs((Heartbeat.objects.get(name="scan").last_seen_at - timezone.now()).total_seconds()) < 5


@pytest.mark.django_db
@pytest.mark.parametrize(("seconds", "fresh"), [(55, True), (65, False)])
def test_the_panel_the_probe_and_the_metrics_apply_one_rule(settings, client, seconds, fresh):
    """A scan every 10 s: fresh up to max(6 x 10 s, 60 s) = 60 s, for every reader."""
    settings.PUBLISHER_SCAN_INTERVAL = 10
    settings.PUBLISHER_METRICS_TOKEN = ""
    settings.PUBLISHER_METRICS_OPEN = True
    schedules_sync()
    age("scan", seconds)
    assert health.pulses()["scan"].max_age_seconds == 60
    assert health_check().healthy is fresh
    assert dashboard.scan_health().alive is fresh
    assert (client.get("/health/").status_code == 200) is fresh
    assert f'publisher_heartbeat_fresh{{name="scan"}} {float(fresh)}' in client.get("/metrics/").content.decode()


def test_the_rule_is_six_intervals_and_at_least_a_minute():
    assert health.max_age(1) == 60 and health.max_age(10) == 60 and health.max_age(30) == 180


@pytest.mark.django_db
def test_every_periodic_job_heartbeat_is_reported_and_only_the_scan_decides(settings):
    settings.PUBLISHER_BEAT_HEARTBEAT_INTERVAL = 10
    settings.CELERY_BEAT_MAX_LOOP_INTERVAL = 5
    schedules_sync()
    heartbeat_record(name="scan")
    age("cleanup", 6 * settings.PUBLISHER_CLEANUP_INTERVAL + 60)
    report = health_check()
    assert report.healthy
    assert [c.name for c in report.checks] == ["database", "broker", "scan", "beat", "notification-expiry",
                                               "cleanup", "daily-report"]
    assert [c.name for c in report.checks if c.required] == ["database", "broker", "scan"]
    assert checks(report)["cleanup"].ok is False and "older than" in checks(report)["cleanup"].detail
    assert checks(report)["notification-expiry"].detail == "no notification expiry recorded yet"
    pulses = health.pulses()
    assert pulses["beat"].max_age_seconds == 60  # max(10 s, 5 s) x 6
    assert pulses["daily-report"].interval_seconds == 86400 and pulses["daily-report"].scheduled


@pytest.mark.django_db
def test_pulses_read_every_heartbeat_in_two_queries(django_assert_num_queries):
    schedules_sync()
    for name in ("scan", "beat", "cleanup"):
        heartbeat_record(name=name)
    with django_assert_num_queries(2):  # the enabled schedules, the heartbeats with their ages
        assert [p.name for p in health.pulses().values() if p.fresh] == ["scan", "beat", "cleanup"]
