"""Webhooks end to end: a real worker and beat, a real HTTP receiver in a subprocess."""

import signal
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleStatus
from publisher.webhooks.models import Delivery, DeliveryStatus, Endpoint
from tests.support.waiting import wait_for
from tests.support.processes import SCAN_INTERVAL
from tests.support.webhook_receiver import SECRET

pytestmark = pytest.mark.integration

QUEUES = "scan,publish,media,notify,webhooks"
FAST = {"PUBLISHER_WEBHOOKS_ALLOW_PRIVATE": "1", "PUBLISHER_WEBHOOKS_RETRY_BASE": "1",
        "PUBLISHER_WEBHOOKS_RETRY_MAX_DELAY": "8", "PUBLISHER_WEBHOOKS_SWEEP_INTERVAL": "1"}


@pytest.fixture
def webhook_settings(settings):
    # The test process writes the beat schedule (sync_schedules): same sweep interval as the workers.
    settings.PUBLISHER_WEBHOOKS_SWEEP_INTERVAL = 1
    settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = True


def endpoint(url) -> Endpoint:
    return Endpoint.objects.create(url=url, secret=SECRET, events=["published", "unpublished", "updated"])


def test_receiver_down_when_the_article_goes_live_and_up_30_s_later_gets_it_once(
        processes, receiver, webhook_settings, article_factory):
    receiver.stop()
    endpoint(receiver.url("/ok"))
    call_command("sync_schedules")
    processes.worker(queues=QUEUES, **FAST)
    processes.beat(**FAST)
    # Scheduled once worker and beat run: their start-up on a loaded machine is not lateness.
    article = article_factory(title="Outage")
    services.article_schedule(article_id=article.pk, publish_at=timezone.now() + timedelta(seconds=3))

    wait_for(lambda: Article.objects.filter(pk=article.pk, status=ArticleStatus.PUBLISHED).exists(),
             timeout=60, message="the article published")
    article.refresh_from_db()
    # A dead endpoint does not delay publishing.
    assert (article.published_at - article.publish_at).total_seconds() < SCAN_INTERVAL + 1.0
    wait_for(lambda: Delivery.objects.filter(attempts__gte=2).exists(), timeout=30, message="failed attempts")
    row = Delivery.objects.get()
    # Pending between attempts, or sending one right now (a claim keeps the last error).
    assert row.status in (DeliveryStatus.PENDING, DeliveryStatus.SENDING)
    assert row.last_error.startswith("ConnectionRefusedError"), row.last_error

    time.sleep(max(0.0, 30 - (timezone.now() - article.published_at).total_seconds()))
    receiver.start()
    wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), timeout=60,
             message="delivered after the receiver came back")
    time.sleep(3)  # room for a duplicate to show up
    [got] = receiver.requests()
    row.refresh_from_db()
    assert got["verified"] is True
    assert (got["delivery_id"], got["event"], got["body"]["article"]["id"]) == (str(row.pk), "published", article.pk)
    assert row.attempts >= 3 and row.last_status_code == 200


def test_500_then_200_is_delivered_once_and_a_redirect_is_not_followed(
        processes, receiver, webhook_settings, article_factory):
    endpoint(receiver.url("/flaky"))
    endpoint(receiver.url("/redirect"))
    call_command("sync_schedules")
    processes.worker(queues=QUEUES, **FAST)
    processes.beat(**FAST)
    article = article_factory(title="Flaky")
    services.article_publish_now(article_id=article.pk)

    wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 1, timeout=60,
             message="the flaky endpoint's delivery")
    wait_for(lambda: len(receiver.requests("/redirect")) >= 2, timeout=30, message="the redirect retried")
    flaky = Delivery.objects.get(endpoint__url__endswith="/flaky")
    assert [(e["status"], e["delivery_id"], e["verified"]) for e in receiver.requests("/flaky")] == [
        (500, str(flaky.pk), True), (200, str(flaky.pk), True)]
    assert receiver.requests("/ok") == [], "a redirect was followed"
    # Between its retries the redirect's delivery waits `pending` with the 302 (`sending` while one
    # is in flight: the retries go on, every few seconds here).
    redirect = Delivery.objects.filter(endpoint__url__endswith="/redirect")
    wait_for(lambda: redirect.filter(status=DeliveryStatus.PENDING, last_status_code=302).exists(), timeout=30,
             message="the redirect's delivery pending between retries")
    assert redirect.get().status != DeliveryStatus.DELIVERED and receiver.requests("/ok") == []


def test_a_worker_killed_mid_delivery_is_replaced_and_the_delivery_sent_with_the_same_id(
        processes, receiver, webhook_settings, article_factory):
    endpoint(receiver.url("/hang-first"))
    call_command("sync_schedules")
    # The lease is max(PUBLISHER_WEBHOOKS_LEASE_SECONDS, 3 x timeout) = 15 s: the first request hangs
    # 60 s at the receiver and the worker waits 5 s for it, so it is mid-request when it is killed.
    slow = {**FAST, "PUBLISHER_WEBHOOKS_TIMEOUT": "5", "PUBLISHER_WEBHOOKS_LEASE_SECONDS": "5"}
    processes.worker(queues=QUEUES, **slow)
    processes.beat(**slow)
    article = article_factory(title="Killed")
    services.article_publish_now(article_id=article.pk)

    wait_for(lambda: len(receiver.requests()) == 1, timeout=60, message="the first request to arrive")
    processes.stop("worker", sig=signal.SIGKILL)
    row = Delivery.objects.get()
    assert row.status == DeliveryStatus.SENDING
    processes.worker(name="worker2", queues=QUEUES, **slow)
    wait_for(lambda: Delivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(), timeout=90,
             message="delivered by the second worker")
    row.refresh_from_db()
    got = receiver.requests()
    assert [(e["delivery_id"], e["verified"]) for e in got] == [(str(row.pk), True)] * 2
    assert row.attempts == 2
