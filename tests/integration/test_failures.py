"""Failures reach the editor: a step that fails for good records its reason on the chunk's
articles once (the chain's errback), and one article's own error leaves its chunk mates alone."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from tests.conftest import schedule_batch, wait_for

pytestmark = pytest.mark.integration


def _schedule(article_factory, titles):
    schedule_batch(titles, timezone.now() - timedelta(seconds=2))


def _settled():
    return not Article.objects.filter(status__in=[ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING]).exists()


def test_step_failing_for_good_marks_its_chunk_failed_once_with_the_reason(processes, article_factory):
    _schedule(article_factory, ["One", "Two", "Three"])
    call_command("sync_schedules")
    processes.worker(PUBLISHER_FAULTS="make_live:raise:")
    processes.beat()

    wait_for(_settled, timeout=60, message="the chunk to settle")
    failed = list(Article.objects.values_list("status", "last_error", "published_at"))
    assert [status for status, _, _ in failed] == [ArticleStatus.FAILED] * 3
    assert all("make_live failed: RuntimeError: injected fault in make_live" in error for _, error, _ in failed)
    assert all(published_at is None for _, _, published_at in failed)
    # Recorded once: a non-transient error is not retried, and the errback ran once per chunk.
    assert processes.log("worker").count("injected fault in make_live") >= 1
    assert processes.log("worker").count("articles failed (claim") == 1


def test_unexpected_error_in_one_article_fails_it_alone(processes, article_factory):
    _schedule(article_factory, ["Good one", "BROKEN one", "Good two"])
    call_command("sync_schedules")
    processes.worker(PUBLISHER_FAULTS="process:raise:BROKEN")
    processes.beat()

    wait_for(_settled, timeout=60, message="the chunk to settle")
    broken = Article.objects.get(title="BROKEN one")
    assert broken.status == ArticleStatus.FAILED
    assert broken.last_error == "process: injected fault in process"
    assert sorted(Article.objects.exclude(pk=broken.pk).values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 2
