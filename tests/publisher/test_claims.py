"""Claims are compare-and-set: concurrent scans never claim an article twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleStatus
from tests.factories import schedule_batch
from tests.support.concurrency import run_concurrently


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_scans_claim_each_due_article_exactly_once(dispatched, settings):
    settings.PUBLISHER_SCAN_BATCH = 40  # several rounds each, so the scans really interleave
    schedule_batch([f"Due {i}" for i in range(300)], timezone.now() - timedelta(seconds=5))
    def scan():
        while services.articles_claim_due():
            pass

    run_concurrently(scan, 8)
    claimed = [pk for call in dispatched for pk, _ in call["due"]]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300, "an article was claimed twice"
    assert len({call["token"] for call in dispatched}) == len(dispatched)
    assert Article.objects.filter(status=ArticleStatus.PUBLISHING, attempts=1).count() == 300


@pytest.mark.django_db(transaction=True)
def test_dispatch_happens_only_after_the_claim_commits(dispatched):
    schedule_batch(["Due"], timezone.now() - timedelta(seconds=5))
    from django.db import transaction

    with transaction.atomic():
        claim = services.articles_claim_due()
        assert claim is not None and len(claim.article_ids) == 1
        assert dispatched == []  # not yet: the claim could still roll back
    assert [(call["token"], [pk for pk, _ in call["due"]]) for call in dispatched] == [(claim.token, claim.article_ids)]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_claim_dispatches_nothing_and_leaves_the_article_scheduled(dispatched):
    schedule_batch(["Due"], timezone.now() - timedelta(seconds=5))
    from django.db import transaction

    with transaction.atomic():
        services.articles_claim_due()
        transaction.set_rollback(True)
    assert dispatched == []
    assert Article.objects.get().status == ArticleStatus.SCHEDULED
