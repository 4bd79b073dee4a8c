"""manage.py pipeline_status: counts, last scan age, real broker queue depths, recent failures."""

import json
from io import StringIO

import pytest
from celery import current_app
from django.core.management import call_command

from publisher.models import ArticleStatus
from scheduling.broker import queue_depths
from scheduling.services import heartbeat_record
from tests.factories import make_article

pytestmark = pytest.mark.django_db


def status_json() -> dict:
    out = StringIO()
    call_command("pipeline_status", "--json", stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def empty_queues():
    with current_app.connection_for_write() as conn:
        for name in ("scan", "publish", "media", "notify", "webhooks"):
            conn.default_channel.queue_declare(queue=name, durable=True, auto_delete=False)
            conn.default_channel.queue_purge(name)
    yield
    with current_app.connection_for_write() as conn:
        for name in ("scan", "publish", "media", "notify", "webhooks"):
            conn.default_channel.queue_purge(name)


def test_queue_depths_count_messages_waiting_on_the_real_broker(empty_queues):
    assert queue_depths() == {"scan": 0, "publish": 0, "media": 0, "notify": 0, "webhooks": 0}
    for _ in range(3):
        current_app.send_task("publisher.tasks.send_notifications", kwargs={}, queue="notify")
    current_app.send_task("scheduling.tasks.scan", queue="scan")
    assert queue_depths() == {"scan": 1, "publish": 0, "media": 0, "notify": 3, "webhooks": 0}


def test_queue_depths_are_none_when_the_broker_does_not_answer(monkeypatch):
    monkeypatch.setenv("CELERY_BROKER_READ_URL", "redis://127.0.0.1:1/0")
    assert set(queue_depths(timeout=0.5).values()) == {None}


def test_pipeline_status_table_and_json(empty_queues):
    make_article(title="Broke", body="x", status=ArticleStatus.FAILED, last_error="Thumbnail: bad image")
    make_article(title="Draft", body="x")
    heartbeat_record(name="scan")
    current_app.send_task("publisher.tasks.make_live", queue="publish")
    data = status_json()
    assert data["articles"]["failed"] == 1 and data["articles"]["draft"] == 1
    assert data["notifications"]["pending"] == 0
    assert data["queues"]["publish"] == 1
    assert data["scan"]["age_seconds"] < 60
    assert data["failures"][0]["reason"] == "Thumbnail: bad image"
    out = StringIO()
    call_command("pipeline_status", stdout=out)
    text = out.getvalue()
    assert "failed" in text and "publish" in text and "last scan:" in text
    assert "Broke" in text and "Thumbnail: bad image" in text
