"""Fixtures for the periodic operations' tests."""

import json
from datetime import datetime
from datetime import timezone as dt_timezone
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings

from tests.conftest import _redis_client

UTC = dt_timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args, fold: int = 0) -> datetime:
    """A wall-clock time in `zone` as a UTC instant (time-machine gets UTC, so it leaves the
    process's TZ alone)."""
    return datetime(*args, tzinfo=zone, fold=fold).astimezone(UTC)


@pytest.fixture
def berlin(settings):
    settings.TIME_ZONE = "Europe/Berlin"
    return BERLIN


@pytest.fixture
def recipients(db, django_user_model):
    """Two opted-in staff users, plus users who must never get the report."""
    from scheduling.models import ReportSubscription

    wanted = []
    for name in ("ops", "lead"):
        user = django_user_model.objects.create_user(name, f"{name}@example.com", is_staff=True)
        ReportSubscription.objects.create(user=user)
        wanted.append(user.email)
    opted_out = django_user_model.objects.create_user("quiet", "quiet@example.com", is_staff=True)
    ReportSubscription.objects.create(user=opted_out, daily_report=False)
    not_staff = django_user_model.objects.create_user("reader", "reader@example.com")
    ReportSubscription.objects.create(user=not_staff)
    gone = django_user_model.objects.create_user("gone", "gone@example.com", is_staff=True, is_active=False)
    ReportSubscription.objects.create(user=gone)
    django_user_model.objects.create_user("other", "other@example.com", is_staff=True)  # never opted in
    return sorted(wanted)


class BrokerQueue:
    """The messages waiting in one queue of the test broker (Redis, embedded or real), read
    straight from Redis: what beat really sent."""

    def __init__(self, name: str):
        self.name = name
        self.client = _redis_client(settings.CELERY_BROKER_URL)

    def drain(self) -> list[dict]:
        messages = []
        while (raw := self.client.rpop(self.name)) is not None:
            messages.append(json.loads(raw))
        return messages

    def clear(self) -> None:
        self.drain()


@pytest.fixture
def scan_queue():
    assert urlsplit(settings.CELERY_BROKER_URL).scheme.startswith("redis"), "these tests read the Redis broker"
    queue = BrokerQueue("scan")
    queue.clear()
    yield queue
    queue.clear()
