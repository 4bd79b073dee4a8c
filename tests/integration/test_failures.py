"""Failures reach the editor: a step that fails for good records its reason on the chunk's
articles once (the chain's errback). One article's own error in a chunk is row 12 of the fault
suite (tests/faults/test_editor.py)."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from tests.factories import schedule_batch
from tests.support.waiting import wait_for

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
