"""Failures reach the editor: a step that fails for good records its reason on the chunk's
articles once (the chain's errback). One article's own error in a chunk is row 12 of the fault
suite (tests/faults/test_editor.py)."""

import re
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
    # The errback commits before the pool process logs the task's failure: wait for that line.
    raised = re.compile(r"make_live\[[0-9a-f-]+\] raised unexpected: RuntimeError\('injected fault in make_live'\)")
    wait_for(lambda: raised.search(processes.log("worker")), timeout=10, message="the worker to log the failure")
    log = processes.log("worker")
    assert len(raised.findall(log)) == 1
    assert log.count("articles failed (claim") == 1
