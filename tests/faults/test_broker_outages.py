"""Rows 19, 20 and 22: broker outages are delays, never failures. A private Redis
(tests/faults/conftest.py) is killed and restarted while the worker holds look-ahead messages
with an ETA (row 19), across the boundary between two steps of a chain (row 20), and while a
reader subscribes (row 24: the request cannot be queued and says so)."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from publisher.models import Article, ArticleStatus, Subscriber
from tests.support.mail import read_messages, subject
from tests.factories import make_subscribers, schedule_batch
from tests.support.waiting import wait_for
from tests.support.servers import LONG_LEASE, wait_briefly
from tests.support.invariants import assert_invariants, notifications_done, settled, task_logged

OUTAGE = 4  # seconds the private Redis stays down

pytestmark = pytest.mark.redis_only  # a private redis-server is killed and restarted


def _lateness() -> list[float]:
    return [(a.published_at - a.publish_at).total_seconds() for a in Article.objects.all()]


# --- 17 ------------------------------------------------------------------------------------

def test_redis_drop_while_the_worker_holds_eta_messages(processes, mailbox, private_redis, long_lease, capsys):
    """The held make-live messages die with Redis; the worker survives, and hands their claims to
    the next scan's sweeper at once rather than after the lease (30 s here)."""
    subscribers = make_subscribers(2, "eta")
    private_redis.start()
    env = {**private_redis.env(), **long_lease, "PUBLISHER_LOOKAHEAD": "30"}
    call_command("sync_schedules")
    worker = processes.worker(concurrency=1, **env)
    processes.beat(**env)
    due = timezone.now() + timedelta(seconds=25)
    schedule_batch([f"Held {i}" for i in range(3)], due)
    wait_for(lambda: task_logged(processes, "publisher.tasks.make_live", "received") >= 1
             and Article.objects.filter(status=ArticleStatus.PUBLISHING).count() == 3, timeout=60,
             message="the look-ahead chunk claimed and its make-live held by the worker with an ETA")
    assert timezone.now() < due - timedelta(seconds=OUTAGE + 3), "the machine was too slow to inject before the ETA"

    private_redis.kill()  # no persistence: the held messages' copies in Redis are gone too
    wait_briefly(OUTAGE)
    assert worker.poll() is None, processes.log("worker")[-3000:]
    private_redis.start()

    wait_for(settled, timeout=120, message="the held articles to be published after the outage")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    assert worker.poll() is None and "Unrecoverable error" not in processes.log("worker")
    assert set(Article.objects.values_list("status", flat=True)) == {ArticleStatus.PUBLISHED}
    assert "articles are left to the next scan's sweeper" in processes.log("worker")
    assert set(Article.objects.values_list("attempts", flat=True)) == {2}  # re-dispatched once, by the sweeper
    assert max(_lateness()) < LONG_LEASE, "the dropped claims waited for their lease"
    with capsys.disabled():
        print(f"\nrow 19: lateness after a {OUTAGE} s outage: {sorted(_lateness())}, attempts "
              f"{sorted(Article.objects.values_list('attempts', flat=True))}")
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 18 ------------------------------------------------------------------------------------

def test_redis_down_across_a_step_boundary(processes, mailbox, tmp_path, private_redis, short_lease, capsys):
    """The process step finishes while Redis is down: the chain cannot send the next step, its
    retries are spent, and the errback must leave the articles to the lease and the sweeper."""
    subscribers = make_subscribers(2, "boundary")
    private_redis.start()
    hold = tmp_path / "hold-process-step"
    hold.touch()
    env = {**private_redis.env(), **short_lease}
    call_command("sync_schedules")
    worker = processes.worker(concurrency=1, PUBLISHER_FAULTS=f"process:hold:{hold}", **env)
    processes.beat(**env)
    schedule_batch([f"Boundary {i}" for i in range(3)], timezone.now() - timedelta(seconds=1))
    wait_for(lambda: (tmp_path / "hold-process-step.pid").exists(), timeout=60,
             message="the process step to be held mid-chunk")

    private_redis.kill()
    hold.unlink()  # the step finishes now and tries to send the thumbnails step to a dead broker
    wait_for(lambda: task_logged(processes, "publisher.tasks.process_articles", "raised unexpected") >= 1,
             timeout=60, message="the process step to fail forwarding the chain")
    wait_briefly(OUTAGE)
    assert not Article.objects.filter(status=ArticleStatus.FAILED).exists(), \
        Article.objects.values_list("status", "last_error").first()
    private_redis.start()

    wait_for(settled, timeout=120, message="the articles to be re-dispatched by the sweeper and published")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    assert set(Article.objects.values_list("status", flat=True)) == {ArticleStatus.PUBLISHED}
    assert set(Article.objects.values_list("attempts", flat=True)) == {2}
    assert "left to the lease and the sweeper" in processes.log("worker")
    assert worker.poll() is None
    with capsys.disabled():
        print(f"\nrow 20: lateness after a {OUTAGE} s outage across a step boundary: {sorted(_lateness())}")
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 22 ------------------------------------------------------------------------------------

def test_redis_down_when_a_reader_subscribes(processes, mailbox, private_redis, producer_broker, capsys):
    """The confirmation task cannot be queued and no row records the request: the reader is told
    to try again, the same for a subscribed address; once Redis is back the same request is
    mailed by the worker, which reconnected by itself."""
    Subscriber.objects.create(email="known@example.com")
    private_redis.start()
    producer_broker(private_redis.url)
    worker = processes.worker(concurrency=1, queues="notify", **private_redis.env())
    client = Client()

    private_redis.kill()
    started = time.monotonic()
    refused = [client.post("/subscribe/", {"email": address, "website": ""})
               for address in ("reader@example.com", "known@example.com")]
    elapsed = time.monotonic() - started
    assert [response.status_code for response in refused] == [503, 503]
    assert all("We could not take your request just now" in response.content.decode() for response in refused)
    assert list(Subscriber.objects.values_list("email", flat=True)) == ["known@example.com"]

    private_redis.start()
    wait_for(lambda: processes.log("worker").count("Connected to redis") >= 2, timeout=60,
             message="the worker to reconnect to the restarted Redis")
    for address in ("known@example.com", "reader@example.com"):  # one worker: in this order
        assert client.post("/subscribe/", {"email": address, "website": ""}).status_code == 302
    wait_for(lambda: read_messages(mailbox), timeout=30, message="the confirmation mail once Redis is back")
    (message,) = read_messages(mailbox)  # the known address's task ran first and sent nothing
    assert message["To"] == "reader@example.com" and subject(message).startswith("Confirm your subscription to ")
    assert worker.poll() is None
    with capsys.disabled():
        print(f"\nrow 24: two subscribe requests with Redis down answered 503 in {elapsed:.2f} s")
