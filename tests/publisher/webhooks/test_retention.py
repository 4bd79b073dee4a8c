"""The delivery log stays bounded: the cleanup job prunes finished deliveries past retention."""

from datetime import timedelta

import pytest
from django.utils import timezone

from publisher.models import ArticleStatus
from publisher.webhooks import services as webhooks
from publisher.webhooks.models import Delivery, DeliveryStatus, Endpoint
from scheduling import services as scheduling


@pytest.mark.django_db
def test_cleanup_prunes_finished_deliveries_past_retention_and_keeps_unfinished_ones(article_factory, settings):
    settings.PUBLISHER_WEBHOOKS_RETENTION_DAYS = 30
    now = timezone.now()
    for i in range(4):
        Endpoint.objects.create(url=f"https://e{i}.example/hook", events=["published"])
    article = article_factory(status=ArticleStatus.PUBLISHED, published_at=now)
    webhooks.record(event="published", article_ids=[article.pk])
    delivered, failed, pending, recent = Delivery.objects.order_by("endpoint_id")
    cutoff = now - timedelta(days=30)
    for row, status, created in ((delivered, DeliveryStatus.DELIVERED, cutoff - timedelta(microseconds=1)),
                                 (failed, DeliveryStatus.FAILED, cutoff - timedelta(days=5)),
                                 (pending, DeliveryStatus.PENDING, cutoff - timedelta(days=5)),
                                 (recent, DeliveryStatus.DELIVERED, cutoff + timedelta(minutes=1))):
        Delivery.objects.filter(pk=row.pk).update(status=status, created_at=created)

    assert scheduling.cleanup_run(now=now, dry_run=True).webhook_deliveries == 2
    assert scheduling.cleanup_run(now=now).webhook_deliveries == 2
    assert set(Delivery.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}
