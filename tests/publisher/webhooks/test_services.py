"""The outbox and the sender, against a real HTTP receiver process (no worker: the tests call
the service a task would call)."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from publisher import pipeline, services
from publisher.models import ArticleStatus
from publisher.webhooks import services as webhooks
from publisher.webhooks.models import Delivery, DeliveryStatus, Endpoint
from tests.support.webhook_receiver import SECRET

ALL_EVENTS = ["published", "unpublished", "updated"]


@pytest.fixture
def live_article(article_factory):
    now = timezone.now()
    return article_factory(title="Live one", status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(minutes=1),
                           published_at=now - timedelta(seconds=50))


def endpoint(url, events=ALL_EVENTS, **fields) -> Endpoint:
    return Endpoint.objects.create(url=url, secret=SECRET, events=events, **fields)


def test_record_writes_one_row_per_interested_enabled_endpoint_and_a_rerun_adds_nothing(live_article, settings):
    settings.PUBLISHER_SITE_URL = "https://news.example"
    wanted = endpoint("https://a.example/hook")
    endpoint("https://b.example/hook", events=["unpublished"])
    endpoint("https://c.example/hook", enabled=False)
    assert webhooks.record(event="published", article_ids=[live_article.pk]) == 1
    assert webhooks.record(event="published", article_ids=[live_article.pk]) == 0
    row = Delivery.objects.get()
    assert (row.endpoint, row.event, row.status, row.attempts) == (wanted, "published", DeliveryStatus.PENDING, 0)
    assert row.payload == {
        "event": "published", "delivery_id": str(row.pk),
        "occurred_at": live_article.published_at.isoformat().replace("+00:00", "Z"),
        "article": {"id": live_article.pk, "slug": None, "title": "Live one",
                    "url": f"https://news.example/articles/{live_article.pk}/",
                    "publish_at": live_article.publish_at.isoformat().replace("+00:00", "Z"),
                    "published_at": live_article.published_at.isoformat().replace("+00:00", "Z"),
                    "unpublish_at": None,
                    "updated_at": live_article.updated_at.isoformat().replace("+00:00", "Z")},
    }


def test_record_skips_articles_not_in_the_events_status(article_factory):
    endpoint("https://a.example/hook")
    draft = article_factory()
    assert webhooks.record(event="published", article_ids=[draft.pk]) == 0
    assert webhooks.record(event="unpublished", article_ids=[draft.pk]) == 0
    with pytest.raises(ValueError):
        webhooks.record(event="deleted", article_ids=[draft.pk])


def test_the_outbox_row_rolls_back_with_the_change(live_article):
    endpoint("https://a.example/hook")
    with pytest.raises(RuntimeError), transaction.atomic():
        webhooks.record(event="updated", article_ids=[live_article.pk])
        raise RuntimeError("the state change failed")
    assert not Delivery.objects.exists()


def test_going_live_records_published_once_even_when_make_live_runs_twice(article_factory):
    endpoint("https://a.example/hook")
    article = article_factory()
    services.article_publish_now(article_id=article.pk)
    token = str(article.__class__.objects.get(pk=article.pk).claim_token)
    assert pipeline.step_make_live(article_ids=[article.pk], token=token)[0] == [article.pk]
    assert pipeline.step_make_live(article_ids=[article.pk], token=token)[0] == [article.pk]
    assert list(Delivery.objects.values_list("event", "article_id")) == [("published", article.pk)]


def test_taking_down_records_unpublished_and_changing_a_live_article_records_updated(live_article, article_factory):
    endpoint("https://a.example/hook")
    services.article_update_schedule(article_id=live_article.pk, publish_at=live_article.publish_at,
                                     unpublish_at=timezone.now() + timedelta(hours=1), actor=None)
    assert list(Delivery.objects.values_list("event", flat=True)) == ["updated"]
    live_article.__class__.objects.filter(pk=live_article.pk).update(unpublish_at=timezone.now() - timedelta(seconds=1))
    assert services.articles_take_down_expired() == 1
    assert services.articles_take_down_expired() == 0
    assert sorted(Delivery.objects.values_list("event", flat=True)) == ["unpublished", "updated"]


def test_delivered_once_with_a_signature_the_receiver_verifies(receiver, live_article):
    endpoint(receiver.url("/ok"))
    webhooks.record(event="published", article_ids=[live_article.pk])
    row = Delivery.objects.get()
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "delivered"
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "skipped"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (DeliveryStatus.DELIVERED, 1, 200, "")
    [got] = receiver.requests()
    assert got["verified"] is True
    assert (got["delivery_id"], got["event"], got["body"]) == (str(row.pk), "published", row.payload)


def test_a_500_is_retried_with_backoff_and_then_delivered_once(receiver, live_article, settings):
    settings.PUBLISHER_WEBHOOKS_RETRY_BASE = 10
    endpoint(receiver.url("/flaky"))
    webhooks.record(event="published", article_ids=[live_article.pk])
    row = Delivery.objects.get()
    before = timezone.now()
    attempt = webhooks.delivery_attempt(delivery_id=str(row.pk))
    assert (attempt.outcome, attempt.status_code) == ("retry", 500)
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.PENDING, 1, 500)
    assert before + timedelta(seconds=5) <= row.next_attempt_at <= timezone.now() + timedelta(seconds=10)
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "skipped", "retried before its time"
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "delivered"
    got = receiver.requests()
    assert [(entry["status"], entry["delivery_id"], entry["verified"]) for entry in got] == [
        (500, str(row.pk), True), (200, str(row.pk), True)]


def test_a_private_address_is_refused_without_the_flag_and_fails_at_once(receiver, live_article, settings):
    settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = False
    endpoint(receiver.url("/ok"))
    webhooks.record(event="published", article_ids=[live_article.pk])
    row = Delivery.objects.get()
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "failed"
    row.refresh_from_db()
    assert row.status == DeliveryStatus.FAILED
    assert "Refused to call 127.0.0.1 (127.0.0.1): a loopback address" in row.last_error
    assert receiver.requests() == []


def test_a_redirect_is_not_followed(receiver, live_article):
    endpoint(receiver.url("/redirect"))
    webhooks.record(event="published", article_ids=[live_article.pk])
    row = Delivery.objects.get()
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "retry"
    row.refresh_from_db()
    assert (row.status, row.last_status_code) == (DeliveryStatus.PENDING, 302)
    assert row.last_error == "HTTP 302: redirect to /ok not followed."
    assert [entry["path"] for entry in receiver.requests()] == ["/redirect"]


def test_after_the_retry_window_a_delivery_fails(receiver, live_article):
    endpoint(receiver.url("/ok"))
    receiver.stop()
    webhooks.record(event="published", article_ids=[live_article.pk])
    Delivery.objects.update(retry_until=timezone.now())
    row = Delivery.objects.get()
    attempt = webhooks.delivery_attempt(delivery_id=str(row.pk))
    assert attempt.outcome == "failed"
    assert attempt.error.startswith("ConnectionRefusedError")


def test_backoff_is_exponential_capped_and_jittered(settings):
    settings.PUBLISHER_WEBHOOKS_RETRY_BASE = 10
    settings.PUBLISHER_WEBHOOKS_RETRY_MAX_DELAY = 3600
    for attempt, full in [(1, 10), (2, 20), (5, 160), (9, 2560), (10, 3600), (30, 3600)]:
        delays = [webhooks.backoff_seconds(attempt) for _ in range(50)]
        assert all(full / 2 <= delay <= full for delay in delays), (attempt, min(delays), max(delays))
        assert len(set(delays)) > 1


def test_redeliver_sends_a_failed_one_again_with_the_same_id_but_never_a_delivered_one(receiver, live_article,
                                                                                       settings):
    settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = False
    failing = endpoint(receiver.url("/ok"))
    webhooks.record(event="published", article_ids=[live_article.pk])
    row = Delivery.objects.get()
    webhooks.delivery_attempt(delivery_id=str(row.pk))
    settings.PUBLISHER_WEBHOOKS_ALLOW_PRIVATE = True
    result = webhooks.deliveries_redeliver(delivery_ids=[row.pk])
    assert [d.pk for d in result.redelivered] == [row.pk] and result.skipped == []
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "delivered"
    result = webhooks.deliveries_redeliver(delivery_ids=[row.pk])
    assert result.redelivered == []
    assert [(d.pk, reason) for d, reason in result.skipped] == [
        (row.pk, "it was delivered (got a 2xx): it is never sent again")]
    assert webhooks.delivery_attempt(delivery_id=str(row.pk)).outcome == "skipped"
    assert [entry["delivery_id"] for entry in receiver.requests()] == [str(row.pk)]
    assert failing.deliveries.get().attempts == 2


def test_the_sweep_picks_up_lost_messages_and_dead_senders_but_not_messages_on_their_way(live_article,
                                                                                          article_factory):
    endpoint("https://a.example/hook")
    others = [article_factory(title=f"Other {i}", status=ArticleStatus.PUBLISHED, published_at=timezone.now())
              for i in range(3)]
    webhooks.record(event="published", article_ids=[live_article.pk] + [a.pk for a in others])
    on_its_way, lost, dead, done = Delivery.objects.order_by("article_id")
    past = timezone.now() - timedelta(seconds=1)
    Delivery.objects.filter(pk=lost.pk).update(lease_expires_at=past)
    Delivery.objects.filter(pk=dead.pk).update(status=DeliveryStatus.SENDING, lease_expires_at=past)
    Delivery.objects.filter(pk=done.pk).update(status=DeliveryStatus.DELIVERED, lease_expires_at=None)
    assert webhooks.deliveries_sweep() == 2
    assert webhooks.deliveries_sweep() == 1, "only the dead sender's row stays claimable until a worker claims it"
    lost.refresh_from_db()
    assert lost.lease_expires_at > timezone.now()
