"""Claims are compare-and-set: concurrent scans never claim an article twice."""

from datetime import timedelta

import pytest
from django.utils import timezone

from publisher import dispatch, services
from publisher.models import Article, ArticleStatus
from tests.conftest import run_concurrently, schedule_batch


@pytest.fixture
def dispatched(monkeypatch):
    """What would have been sent to the broker, in order: (token, [ids])."""
    sent = []
    monkeypatch.setattr(dispatch, "publish_claimed",
                        lambda *, token, due, chunk_size=None: sent.append((token, [pk for pk, _ in due])))
    return sent


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_scans_claim_each_due_article_exactly_once(dispatched, settings):
    settings.PUBLISHER_SCAN_BATCH = 40  # several rounds each, so the scans really interleave
    schedule_batch([f"Due {i}" for i in range(300)], timezone.now() - timedelta(seconds=5))
    def scan():
        while services.articles_claim_due():
            pass

    run_concurrently(scan, 8)
    claimed = [pk for _, ids in dispatched for pk in ids]
    assert len(claimed) == 300
    assert len(set(claimed)) == 300, "an article was claimed twice"
    assert len({token for token, _ in dispatched}) == len(dispatched)
    assert Article.objects.filter(status=ArticleStatus.PUBLISHING, attempts=1).count() == 300


@pytest.mark.django_db(transaction=True)
def test_dispatch_happens_only_after_the_claim_commits(dispatched):
    schedule_batch(["Due"], timezone.now() - timedelta(seconds=5))
    from django.db import transaction

    with transaction.atomic():
        claim = services.articles_claim_due()
        assert claim is not None and len(claim.article_ids) == 1
        assert dispatched == []  # not yet: the claim could still roll back
    assert dispatched == [(claim.token, claim.article_ids)]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_claim_dispatches_nothing_and_leaves_the_article_scheduled(dispatched):
    schedule_batch(["Due"], timezone.now() - timedelta(seconds=5))
    from django.db import transaction

    with transaction.atomic():
        services.articles_claim_due()
        transaction.set_rollback(True)
    assert dispatched == []
    assert Article.objects.get().status == ArticleStatus.SCHEDULED
