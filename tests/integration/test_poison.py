"""A poison article — one whose processing kills its worker process every time — is failed
with a reason after a bounded number of crashes, and does not take its chunk down with it."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from publisher.pipeline import POISON_THRESHOLD
from tests.conftest import schedule_batch, wait_for

pytestmark = pytest.mark.integration

LEASE = 30  # longer than the crash loop, so the poison guard (not the lease) decides


def test_poison_article_is_failed_and_its_chunk_mates_publish(processes, article_factory, settings):
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    schedule_batch(["Fine one", "POISON story", "Fine two", "Fine three"], timezone.now() - timedelta(seconds=5))
    call_command("sync_schedules")

    processes.worker(PUBLISHER_FAULTS="process:kill:POISON", PUBLISHER_LEASE_SECONDS=str(LEASE))
    processes.beat(PUBLISHER_LEASE_SECONDS=str(LEASE))

    def settled():
        return not Article.objects.filter(status__in=[ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING]).exists()

    wait_for(settled, timeout=90, message="every article published or failed")
    poison = Article.objects.get(title="POISON story")
    assert poison.status == ArticleStatus.FAILED
    assert "killed the worker process" in poison.last_error
    assert poison.published_at is None
    others = Article.objects.exclude(pk=poison.pk)
    assert sorted(others.values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 3
    # Bounded: the chunk crashed POISON_THRESHOLD times, then the poison article alone as often.
    assert "chunk of 4 killed its worker" in processes.log("worker")  # split, then isolated
    crashes = processes.log("worker").count("exited with 'signal 9 (SIGKILL)'")
    assert POISON_THRESHOLD <= crashes <= 2 * POISON_THRESHOLD
