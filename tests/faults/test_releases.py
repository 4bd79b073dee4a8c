"""Rows 26-28: a release goes live exactly once, all members together, when the worker is
SIGKILLed between preparation and the flip, with two beats and two workers, and when the broker
restarts while the worker holds the release's flip for its ETA."""

import signal
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from publisher import releases
from publisher.models import Article, Release
from publisher.states import ReleaseStatus
from tests.factories import make_article, make_subscribers
from tests.support.brokers import is_amqp
from tests.support.invariants import assert_release_published_once, notifications_done, release_flips, task_logged
from tests.support.servers import LONG_LEASE, wait_briefly
from tests.support.waiting import wait_for

LOOKAHEAD = 3  # the release look-ahead: the scan claims the release this far ahead


def release_due_in(seconds: float, n: int = 6) -> Release:
    """A release of `n` articles scheduled `seconds` ahead (by nobody: a script's)."""
    release = releases.release_create(name="Package")
    ids = [make_article(title=f"Member {i}", body=f"Body {i}.").pk for i in range(n)]
    releases.release_add_members(release_id=release.pk, article_ids=ids, actor=None)
    return releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(seconds=seconds))


def prepared_and_flip_held(processes, release, worker="worker") -> None:
    wait_for(lambda: Article.objects.filter(release=release, release_prepared_at__isnull=False).count()
             == Article.objects.filter(release=release).count()
             and task_logged(processes, "publisher.tasks.release_flip", "received", prefix=worker) >= 1,
             timeout=60, message="every member prepared and the flip held by the worker for its ETA")


# --- 26 ------------------------------------------------------------------------------------

def test_release_worker_sigkilled_between_preparation_and_flip(processes, mailbox, short_lease, settings):
    settings.PUBLISHER_RELEASE_LOOKAHEAD = LOOKAHEAD
    env = {**short_lease, "PUBLISHER_RELEASE_LOOKAHEAD": str(LOOKAHEAD)}
    subscribers = make_subscribers(2, "release-kill")
    call_command("sync_schedules")
    processes.worker("worker", **env)
    processes.beat(**env)
    release = release_due_in(LOOKAHEAD + 5)
    prepared_and_flip_held(processes, release)
    first = Release.objects.get(pk=release.pk).claim_token

    processes.stop("worker", signal.SIGKILL)  # main process and pool: the held flip dies unacknowledged
    assert not Article.objects.filter(release=release, published_at__isnull=False).exists()
    processes.worker("worker-2", **env)

    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=60,
             message="the release to go live after the kill")
    wait_for(notifications_done(6 * 2), timeout=30, message="notifications")
    release.refresh_from_db()
    if is_amqp(settings.CELERY_BROKER_URL) and release.attempts == 1:
        # RabbitMQ gave the held flip back when the dead worker's connection closed: same claim.
        assert release.claim_token == first
    else:
        assert release.attempts == 2 and release.claim_token != first
        assert "sweeper: reclaimed releases" in processes.log("worker-2")
    assert len(release_flips(processes)) == 1
    assert_release_published_once(processes, mailbox, release, subscribers=subscribers)


# --- 27 ------------------------------------------------------------------------------------

def test_release_with_two_beats_and_two_workers_goes_live_once(processes, mailbox, settings):
    settings.PUBLISHER_RELEASE_LOOKAHEAD = LOOKAHEAD
    env = {"PUBLISHER_RELEASE_LOOKAHEAD": str(LOOKAHEAD), "PUBLISHER_CHUNK_SIZE": "2"}
    subscribers = make_subscribers(2, "release-pair")
    call_command("sync_schedules")
    for name in ("worker-a", "worker-b"):
        processes.worker(name, **env)
    for name in ("beat-a", "beat-b"):
        processes.beat(name, **env)
    release = release_due_in(LOOKAHEAD + 4)

    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=60,
             message="the release to go live")
    wait_for(notifications_done(6 * 2), timeout=30, message="notifications")
    for beat in ("beat-a", "beat-b"):
        wait_for(lambda: processes.log(beat).count("Sending due task publisher: scan for due articles") >= 2,
                 timeout=30, message=f"{beat} to send two scans")
    release.refresh_from_db()
    assert release.attempts == 1  # claimed once
    assert set(Article.objects.filter(release=release).values_list("attempts", flat=True)) == {1}
    # Three chunks each sent a flip; one put everything live, the others found it done.
    assert task_logged(processes, "publisher.tasks.release_flip", "succeeded") == 3
    assert len(release_flips(processes)) == 1
    assert_release_published_once(processes, mailbox, release, subscribers=subscribers)


# --- 28 ------------------------------------------------------------------------------------

@pytest.mark.redis_only
def test_release_broker_restarted_while_the_worker_holds_the_flip(processes, mailbox, private_redis, long_lease,
                                                                   settings):
    """The held flip dies with Redis (no persistence); the worker ends the release's lease at
    once, and the next scan's sweeper claims it again and sends the flip: live once, late by
    about the outage, not by the lease (30 s)."""
    settings.PUBLISHER_RELEASE_LOOKAHEAD = 30
    private_redis.start()
    env = {**private_redis.env(), **long_lease, "PUBLISHER_RELEASE_LOOKAHEAD": "30"}
    subscribers = make_subscribers(2, "release-broker")
    call_command("sync_schedules")
    worker = processes.worker(concurrency=1, **env)
    processes.beat(**env)
    release = release_due_in(40)  # claimed by the first scan that sees it within 30 s
    prepared_and_flip_held(processes, release)
    assert timezone.now() < release.publish_at - timedelta(seconds=8), "the machine was too slow to inject"

    private_redis.kill()
    wait_briefly(4)
    assert worker.poll() is None, processes.log("worker")[-3000:]
    private_redis.start()

    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=90,
             message="the release to go live after the outage")
    wait_for(notifications_done(6 * 2), timeout=30, message="notifications")
    release.refresh_from_db()
    assert release.attempts == 2  # re-claimed once, by the sweeper
    assert (release.published_at - release.publish_at).total_seconds() < LONG_LEASE
    assert_release_published_once(processes, mailbox, release, subscribers=subscribers)
