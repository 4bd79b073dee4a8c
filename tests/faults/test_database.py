"""Rows 8, 16 and 22: the database going away mid-batch or while the worker idles on its kept
connections, and an application clock that disagrees with the database's."""

import sys
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from publisher import pipeline, services
from publisher.models import Article, ArticleStatus
from tests.factories import make_subscribers, schedule_batch
from tests.support.waiting import wait_for
from tests.support.servers import wait_briefly
from tests.support.invariants import assert_invariants, notifications_done, settled, task_logged


# --- 8 -------------------------------------------------------------------------------------

def test_database_restart_mid_batch(processes, mailbox, tmp_path, private_postgres, short_lease):
    """A private PostgreSQL crashes (`pg_ctl stop -m immediate`) while a batch is mid-step and
    comes back 2 s later (crash recovery): in-flight transactions are lost, connections broken."""
    subscribers = make_subscribers(2, "dbdown")
    hold = tmp_path / "hold-process-step"
    hold.touch()
    schedule_batch([f"Outage {i}" for i in range(6)], timezone.now() - timedelta(seconds=1))
    call_command("sync_schedules")
    on_private = {"DATABASE_URL": private_postgres.url, **short_lease}
    processes.worker(PUBLISHER_FAULTS=f"process:hold:{hold}", **on_private)
    processes.beat(**on_private)
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHING, unfinished_runs__gte=1).count() == 6,
             timeout=60, message="the batch claimed and held mid-step")

    private_postgres.stop("immediate")
    hold.unlink()  # the held step goes on and meets a dead server
    wait_briefly(2)
    private_postgres.start()
    connection.close()  # this process's connection died with the server too

    wait_for(settled, timeout=90, message="the batch to be published after the database came back")
    wait_for(notifications_done(6 * len(subscribers)), timeout=30, message="notifications")
    logs = "".join(processes.log(name) for name in processes.procs)
    assert "OperationalError" in logs, "no process met the outage: the row proved nothing"
    assert all(proc.poll() is None for proc, _ in processes.procs.values()), "a process died with the database"
    assert set(Article.objects.values_list("status", flat=True)) == {ArticleStatus.PUBLISHED}
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 22 ------------------------------------------------------------------------------------

def test_database_restart_while_the_worker_idles_on_kept_connections(processes, mailbox, private_postgres):
    """The worker keeps its connections across tasks (CONN_MAX_AGE); the database restarts
    between two batches, so every kept connection is dead when the next task starts. Each task
    health-checks its connection before the first query: the dead one is replaced, never used
    (no task meets an error, none retries)."""
    on_private = {"DATABASE_URL": private_postgres.url, "DATABASE_CONN_MAX_AGE": "600"}
    processes.worker(**on_private)
    first = schedule_batch([f"Before {i}" for i in range(3)], timezone.now() - timedelta(seconds=1))
    services.articles_claim_imported(article_ids=[a.pk for a in first])
    wait_for(lambda: task_logged(processes, "publisher.tasks.notify_subscribers", "succeeded") == 1, timeout=60,
             message="the first chain to finish, down to its last step")
    with connection.cursor() as cur:
        cur.execute("select count(*) from pg_stat_activity where datname = current_database() "
                    "and pid <> pg_backend_pid()")
        kept = cur.fetchone()[0]
    assert kept >= 1, "the worker kept no connection: the row proves nothing"

    private_postgres.stop("fast")  # a clean restart: connections closed by the server
    private_postgres.start()
    connection.close()  # this process's connection went with the server too

    second = schedule_batch([f"After {i}" for i in range(3)], timezone.now() - timedelta(seconds=1))
    services.articles_claim_imported(article_ids=[a.pk for a in second])
    wait_for(lambda: task_logged(processes, "publisher.tasks.notify_subscribers", "succeeded") == 2, timeout=60,
             message="the second chain to finish")
    assert set(Article.objects.values_list("status", flat=True)) == {ArticleStatus.PUBLISHED}
    assert Article.objects.filter(attempts=1).count() == 6  # no claim was given up and taken again
    log = processes.log("worker")
    assert "OperationalError" not in log and "InterfaceError" not in log, log[-3000:]
    assert task_logged(processes, "publisher.tasks.process_articles", "retry") == 0
    assert task_logged(processes, "publisher.tasks.process_articles", "succeeded") == 2
    assert_invariants(processes, mailbox)


# --- 16 ------------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_clock_skew_every_due_and_lease_decision_uses_the_database_clock(article_factory):
    """The application host's clock an hour ahead: nothing is claimed, swept or put live early,
    because every due and lease comparison is made by the database (Now()), not by Python."""
    now = timezone.now()
    schedule_batch(["Due in ten minutes"], now + timedelta(minutes=10))
    leased = article_factory(title="Leased", status=ArticleStatus.PUBLISHING, publish_at=now - timedelta(minutes=1),
                             claim_token="8d6f1c8e-0000-4000-8000-000000000001", attempts=1,
                             lease_expires_at=now + timedelta(minutes=10))
    claimed_ahead = article_factory(title="Claimed ahead", status=ArticleStatus.PUBLISHING,
                                    publish_at=now + timedelta(minutes=10), attempts=1,
                                    claim_token="8d6f1c8e-0000-4000-8000-000000000002")
    with time_machine.travel(now + timedelta(hours=1), tick=True):
        assert timezone.now() > now + timedelta(minutes=59)
        assert services.articles_claim_due() is None
        assert services.articles_reclaim_expired_leases() == (None, 0)
        published, wait = pipeline.step_make_live(article_ids=[claimed_ahead.pk], token=str(claimed_ahead.claim_token))
    assert published == [] and wait > 0
    assert Article.objects.get(title="Due in ten minutes").status == ArticleStatus.SCHEDULED
    leased.refresh_from_db()
    assert leased.attempts == 1 and str(leased.claim_token).endswith("01")
    claimed_ahead.refresh_from_db()
    assert claimed_ahead.status == ArticleStatus.PUBLISHING and claimed_ahead.published_at is None


def test_clock_skew_worker_ahead_of_the_database_publishes_on_time_once(processes, mailbox):
    """A worker whose clock runs 30 s ahead runs the make-live steps held for their publish time
    (an ETA) at once; they must wait for the database clock and go live once, never early."""
    subscribers = make_subscribers(2, "skew")
    call_command("sync_schedules")
    processes.command = [sys.executable, str(Path(__file__).with_name("skewed_celery.py"))]
    processes.worker(FAULTS_CLOCK_OFFSET="30")
    processes.command = [sys.executable, "-m", "celery"]
    processes.beat()
    publish_at = timezone.now() + timedelta(seconds=3)  # within the look-ahead: claimed ahead, ETA'd
    schedule_batch([f"Skewed {i}" for i in range(3)], publish_at)

    wait_for(settled, timeout=60, message="the articles to be published")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    assert task_logged(processes, "publisher.tasks.make_live", "retry") >= 1, \
        "make-live never ran early: the skew was not applied and the test proves nothing"
    for article in Article.objects.all():
        assert article.published_at >= publish_at
    assert set(Article.objects.values_list("attempts", flat=True)) == {1}
    assert_invariants(processes, mailbox, subscribers=subscribers)
