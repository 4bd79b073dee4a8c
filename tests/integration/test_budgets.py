"""Per-article budgets on a real worker (issue 15, defect 1): a body that takes Markdown minutes
fails alone once its time budget is spent, and an image over PUBLISHER_MAX_IMAGE_PIXELS that got in
without the form fails alone in the thumbnail step; their chunk mates are published once."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from tests.factories import make_subscribers, schedule_batch
from tests.support.images import huge_png
from tests.support.invariants import assert_invariants, notifications_done, settled
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# The body: 50 KB, under PUBLISHER_MAX_BODY_CHARS, and minutes of Python-Markdown.
PATHOLOGICAL_BODY = "[" * 25_000 + "x" + "]" * 25_000


def test_a_body_over_the_time_budget_fails_alone_and_its_three_chunk_mates_are_published_once(processes, mailbox):
    subscribers = make_subscribers(2, "budget")
    at = timezone.now() - timedelta(seconds=2)
    schedule_batch(["Good one", "Good two"], at)
    slow = schedule_batch(["Slow one"], at, body=PATHOLOGICAL_BODY)[0]
    schedule_batch(["Good three"], at)
    call_command("sync_schedules")
    processes.worker(PUBLISHER_ARTICLE_TIME_BUDGET="1")
    started = time.monotonic()
    processes.beat()

    wait_for(settled, timeout=60, message="the chunk to settle")
    elapsed = time.monotonic() - started
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")

    slow.refresh_from_db()
    assert slow.status == ArticleStatus.FAILED
    assert slow.last_error == "process: rendering took longer than 1 s"
    assert sorted(Article.objects.exclude(pk=slow.pk).values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 3
    assert Article.objects.values("claim_token").distinct().count() == 1  # one chunk
    log = processes.log("worker")
    assert log.count("articles failed (claim") == 1  # the slow one, recorded once, not retried
    assert "SoftTimeLimitExceeded" not in log
    # Settled within the scan, the budget and the chain, far from Markdown's minutes.
    assert elapsed < 30, elapsed
    assert_invariants(processes, mailbox, subscribers=subscribers)


def test_a_big_image_that_got_in_fails_alone_in_the_thumbnail_step(processes, mailbox, tmp_path, settings):
    media = tmp_path / "media"
    (media / "articles").mkdir(parents=True)
    settings.MEDIA_ROOT = str(media)
    processes.env["MEDIA_ROOT"] = str(media)
    # 144 megapixels in 140 KB, written to storage directly as an older upload or a script would.
    (media / "articles" / "huge.png").write_bytes(huge_png())
    subscribers = make_subscribers(2, "pixels")
    at = timezone.now() - timedelta(seconds=2)
    schedule_batch(["Plain one", "Plain two"], at)
    huge = schedule_batch(["Huge picture"], at, image="articles/huge.png", image_alt="Black")[0]
    call_command("sync_schedules")
    processes.worker()
    processes.beat()

    wait_for(settled, timeout=60, message="the chunk to settle")
    wait_for(notifications_done(2 * len(subscribers)), timeout=30, message="notifications")

    huge.refresh_from_db()
    assert huge.status == ArticleStatus.FAILED
    assert huge.last_error == "thumbnail: the image has more than 80,000,000 pixels; at most 40,000,000 are allowed"
    assert not huge.thumbnail
    assert sorted(Article.objects.exclude(pk=huge.pk).values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 2
    assert Article.objects.values("claim_token").distinct().count() == 1  # one chunk
    assert_invariants(processes, mailbox, subscribers=subscribers)


def test_the_soft_time_limit_mid_chunk_keeps_what_is_done_and_the_rest_goes_to_the_sweeper(processes, mailbox):
    # The third article stalls past the task's soft time limit (outside any article's budget: a
    # chunk too big for its time limit). The real SIGUSR1 from the pool's parent interrupts it.
    subscribers = make_subscribers(2, "softlimit")
    at = timezone.now() - timedelta(seconds=2)
    first = schedule_batch(["Good one", "Good two"], at)
    stalled = schedule_batch(["STALL one"], at)[0]
    last = schedule_batch(["Good three"], at)[0]
    call_command("sync_schedules")
    processes.worker(PUBLISHER_FAULTS="process:stall:STALL", CELERY_TASK_SOFT_TIME_LIMIT="3",
                     CELERY_TASK_TIME_LIMIT="30")
    processes.beat()

    wait_for(settled, timeout=90, message="every article to settle")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")

    rows = {a.pk: a for a in Article.objects.all()}
    # What was done before the limit went on down the first chain, under the first claim.
    assert {rows[a.pk].status for a in first} == {ArticleStatus.PUBLISHED}
    assert {rows[a.pk].attempts for a in first} == {1}
    # The article not reached yet was left to the sweeper and published in a chain of its own.
    assert (rows[last.pk].status, rows[last.pk].attempts) == (ArticleStatus.PUBLISHED, 2)
    # The stalling one was never failed by the chain's errback; the sweeper gave up on it after
    # PUBLISHER_MAX_ATTEMPTS claims, each cut short by the soft time limit.
    assert rows[stalled.pk].status == ArticleStatus.FAILED
    assert rows[stalled.pk].last_error.startswith("Gave up after 3 attempts")
    log = processes.log("worker")
    assert "process_articles failed" not in log
    assert log.count("soft time limit reached mid-chunk") == 3
    assert_invariants(processes, mailbox, subscribers=subscribers)
