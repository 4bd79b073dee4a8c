"""Rows 1-4: worker processes dying or stopping while a chunk is mid-chain."""

import os
import signal
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from publisher.pipeline import POISON_THRESHOLD
from tests.factories import make_subscribers, schedule_batch
from tests.support.brokers import is_amqp
from tests.support.waiting import wait_for
from tests.support.invariants import assert_invariants, notifications_done, settled


def redelivered_at_once() -> bool:
    """RabbitMQ hands a dead worker's unacknowledged messages back as soon as its connection
    closes; Redis only after the visibility timeout, so there the sweeper is the only way back."""
    return is_amqp(settings.CELERY_BROKER_URL)


def start_held_chunk(processes, tmp_path: Path, lease: dict, prefix: str, n: int = 4):
    """Subscribers, a chunk of `n` due articles, a worker whose process step is held at a barrier
    (it writes its pid next to the hold file) and a beat; returns once the chunk is mid-step."""
    subscribers = make_subscribers(2, prefix)
    hold = tmp_path / "hold-process-step"
    hold.touch()
    schedule_batch([f"Story {i}" for i in range(n)], timezone.now() - timedelta(seconds=2))
    call_command("sync_schedules")
    worker = processes.worker("worker", PUBLISHER_FAULTS=f"process:hold:{hold}", **lease)
    processes.beat(**lease)
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHING, unfinished_runs__gte=1).count() == n,
             timeout=60, message="the chunk to be claimed and held mid-step")
    return subscribers, hold, worker


# --- 1 -------------------------------------------------------------------------------------

def test_sigkill_main_worker_mid_chain_then_new_worker(processes, mailbox, tmp_path, short_lease):
    subscribers, hold, _ = start_held_chunk(processes, tmp_path, short_lease, "crash")
    first = dict(Article.objects.values_list("pk", "claim_token"))

    processes.stop("worker", signal.SIGKILL)  # the whole process group: main and pool children
    hold.unlink()
    assert not Article.objects.filter(status=ArticleStatus.PUBLISHED).exists()
    processes.worker("worker-2", **short_lease)

    wait_for(settled, timeout=60, message="the killed worker's claim to be re-dispatched and published")
    wait_for(notifications_done(4 * len(subscribers)), timeout=30, message="notifications")
    for article in Article.objects.all():
        assert article.status == ArticleStatus.PUBLISHED, (article, article.last_error)
        if redelivered_at_once() and article.attempts == 1:
            # RabbitMQ gave the dead worker's message back when its connection closed, and the
            # new worker ran it before the lease ran out: the same claim went on.
            assert article.claim_token == first[article.pk]
        else:
            assert article.attempts >= 2, f"{article} was not re-dispatched (attempts={article.attempts})"
            assert article.claim_token != first[article.pk]
    if not redelivered_at_once():
        assert "sweeper: re-dispatched" in processes.log("worker-2")
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 2 -------------------------------------------------------------------------------------

def test_sigkill_one_pool_child_mid_task(processes, mailbox, tmp_path, long_lease):
    subscribers, hold, worker = start_held_chunk(processes, tmp_path, long_lease, "child")
    child = int(wait_for(lambda: Path(f"{hold}.pid").read_text() if Path(f"{hold}.pid").exists() else "",
                         message="the holding pool child's pid"))
    assert child != worker.pid

    os.kill(child, signal.SIGKILL)
    wait_for(lambda: "WorkerLostError" in processes.log("worker") or "exited with" in processes.log("worker"),
             timeout=30, message="the worker to notice its child died")
    hold.unlink()

    wait_for(settled, timeout=60, message="the chunk to be published after the child died")
    wait_for(notifications_done(4 * len(subscribers)), timeout=30, message="notifications")
    assert worker.poll() is None, "the main worker process died with its child"
    assert "signal 9 (SIGKILL)" in processes.log("worker")
    # The broker redelivered the message at once (reject_on_worker_lost): no new claim needed.
    assert set(Article.objects.values_list("attempts", flat=True)) == {1}
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 3 -------------------------------------------------------------------------------------

def test_poison_article_is_capped_and_failed(processes, mailbox, long_lease):
    """Processing the poison article SIGKILLs its process every time: the chunk is split, the
    poison one failed with the reason after POISON_THRESHOLD crashes; no crash loop. The lease
    outlasts the crash loop, so the poison guard (not the lease) decides."""
    subscribers = make_subscribers(2, "poison")
    schedule_batch(["Fine one", "POISON story", "Fine two", "Fine three"], timezone.now() - timedelta(seconds=5))
    call_command("sync_schedules")
    processes.worker(PUBLISHER_FAULTS="process:kill:POISON", **long_lease)
    processes.beat(**long_lease)

    wait_for(settled, timeout=90, message="every article published or failed")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    poison = Article.objects.get(title="POISON story")
    assert poison.status == ArticleStatus.FAILED
    assert "killed the worker process" in poison.last_error
    others = Article.objects.exclude(pk=poison.pk)
    assert sorted(others.values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 3
    # Bounded: the chunk crashed POISON_THRESHOLD times, then the poison article alone as often.
    assert "chunk of 4 killed its worker" in processes.log("worker")
    crashes = processes.log("worker").count("exited with 'signal 9 (SIGKILL)'")
    assert POISON_THRESHOLD <= crashes <= 2 * POISON_THRESHOLD
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 4 -------------------------------------------------------------------------------------

def test_sigterm_warm_shutdown_mid_chain_then_restart(processes, mailbox, tmp_path, long_lease):
    subscribers, hold, worker = start_held_chunk(processes, tmp_path, long_lease, "term")

    os.kill(worker.pid, signal.SIGTERM)  # the main process only, as `kill <pid>` or a supervisor would
    wait_for(lambda: "warm shutdown" in processes.log("worker").lower(), timeout=30, message="warm shutdown")
    hold.unlink()  # the step in progress finishes during the warm shutdown
    assert worker.wait(60) == 0
    assert processes.log("worker").count("publisher.tasks.process_articles") >= 2  # received and succeeded

    processes.worker("worker-2", **long_lease)
    wait_for(settled, timeout=60, message="the rest of the chain to run on the new worker")
    wait_for(notifications_done(4 * len(subscribers)), timeout=30, message="notifications")
    # Nothing was lost: the chain went on from the step after the finished one, no new claim.
    assert set(Article.objects.values_list("attempts", flat=True)) == {1}
    assert "sweeper" not in processes.log("worker-2")
    assert_invariants(processes, mailbox, subscribers=subscribers)
