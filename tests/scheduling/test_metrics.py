"""GET /metrics/: Prometheus text computed from the database at scrape time, token-protected."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from publisher.models import ArticleEvent, ArticleEventAction, ArticleStatus, Notification
from scheduling.services import heartbeat_record
from tests.factories import make_article, make_subscriber

pytestmark = pytest.mark.django_db


def scrape(client, **headers) -> dict:
    response = client.get("/metrics/", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_articles_lateness_notifications_retries_and_scan_age(client, settings):
    settings.PUBLISHER_METRICS_TOKEN = ""
    settings.PUBLISHER_METRICS_OPEN = True
    now = timezone.now()
    for late in (0.05, 0.3, 4.0):
        make_article(title="Live", body="x", status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(
  seconds=60), published_at=now - timedelta(seconds=60 - late), attempts=1)
    failed = make_article(title="Broke", body="x", status=ArticleStatus.FAILED,
                          publish_at=now - timedelta(seconds=60), attempts=3)
    ArticleEvent.objects.create(article=failed, action=ArticleEventAction.RETRIED)
    Notification.objects.create(article=failed, subscriber=make_subscriber("a@example.com"),
                                status="sent", expires_at=now + timedelta(hours=1))
    heartbeat_record(name="scan")

    metrics = scrape(client)
    assert metrics[("publisher_articles", (("status", "published"),))] == 3
    assert metrics[("publisher_articles", (("status", "failed"),))] == 1
    assert metrics[("publisher_articles_published_total", ())] == 3
    assert metrics[("publisher_articles_failed", ())] == 1
    assert metrics[("publisher_retries_total", (("kind", "sweeper"),))] == 2
    assert metrics[("publisher_retries_total", (("kind", "manual"),))] == 1
    assert metrics[("publisher_lateness_seconds_bucket", (("le", "0.1"),))] == 1
    assert metrics[("publisher_lateness_seconds_bucket", (("le", "0.5"),))] == 2
    assert metrics[("publisher_lateness_seconds_bucket", (("le", "5"),))] == 3
    assert metrics[("publisher_lateness_seconds_bucket", (("le", "+Inf"),))] == 3
    assert metrics[("publisher_lateness_seconds_gsum", ())] == pytest.approx(4.35, abs=0.01)
    assert metrics[("publisher_notifications", (("status", "sent"),))] == 1
    assert metrics[("publisher_queue_depth", (("queue", "publish"),))] >= 0  # the real broker answers
    assert 0 <= metrics[("publisher_heartbeat_age_seconds", (("name", "scan"),))] < 60
    assert metrics[("publisher_heartbeat_age_seconds", (("name", "beat"),))] == -1


def test_metrics_need_the_bearer_token_when_one_is_set(client, settings):
    settings.PUBLISHER_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics/").status_code == 401
    assert client.get("/metrics/", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(client, HTTP_AUTHORIZATION="Bearer s3cret")[("publisher_articles", (("status", "draft"),))] == 0


def test_metrics_are_off_without_a_token_where_not_opened(client, settings):
    settings.PUBLISHER_METRICS_TOKEN = ""
    settings.PUBLISHER_METRICS_OPEN = False
    assert client.get("/metrics/").status_code == 404
