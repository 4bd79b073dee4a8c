"""Health: healthy only with the database and the broker answering and a recent scan; the
command's exit status and the endpoint's HTTP status say so."""

import json
from datetime import timedelta

import pytest
import time_machine
from celery import current_app
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from scheduling import schedules
from scheduling.selectors import health_check
from scheduling.services import heartbeat_record, schedules_sync


def checks(health) -> dict:
    return {check.name: check for check in health.checks}


@pytest.fixture
def dead_broker(monkeypatch):
    """Point the Celery app's producer connection at a port nothing listens on: a broker that
    really does not answer (Celery reads CELERY_BROKER_WRITE_URL before its configuration)."""
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://127.0.0.1:1/0")
    assert current_app.conf.broker_write_url == "redis://127.0.0.1:1/0"


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
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        health = health_check()
    assert not health.healthy
    assert "older than 60 s" in checks(health)["scan"].detail


@pytest.mark.django_db
def test_the_allowed_age_follows_the_scan_interval_set_in_the_admin(settings):
    settings.PUBLISHER_SCAN_INTERVAL = 10
    schedules_sync()
    heartbeat_record(name="scan")
    later = timezone.now() + timedelta(seconds=300)
    with time_machine.travel(later, tick=False):
        assert not health_check().healthy  # six intervals of 10 s, at least 60 s
    task = PeriodicTask.objects.get(name=schedules.SCAN)
    task.interval = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.MINUTES)
    task.save()
    with time_machine.travel(later, tick=False):
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
    with time_machine.travel(timezone.now() + timedelta(seconds=5), tick=False):
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
