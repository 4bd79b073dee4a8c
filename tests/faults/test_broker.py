"""Rows 5-7, 11, 15: the broker lost, unreachable, late, duplicating or carrying hostile messages.
Rows that kill the broker use a private Redis (tests/support/servers.py), never the machine's."""

import pickle
import subprocess
import sys
import uuid
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from kombu import Connection

from publisher import dispatch, services
from publisher.models import Article, ArticleStatus
from tests.factories import make_subscribers, schedule_batch
from tests.support.brokers import is_amqp
from tests.support.waiting import wait_for
from tests.support.servers import free_port
from tests.support.invariants import assert_invariants, notifications_done, settled, task_logged
from tests.support.processes import ROOT


# --- 5 -------------------------------------------------------------------------------------

@pytest.mark.redis_only  # a private redis-server
def test_redis_killed_and_restarted_empty_while_work_is_queued(processes, mailbox, tmp_path, private_redis,
                                                               short_lease):
    subscribers = make_subscribers(2, "redis")
    private_redis.start()
    hold = tmp_path / "hold-process-step"
    hold.touch()
    now = timezone.now()
    schedule_batch([f"Now {i}" for i in range(3)], now - timedelta(seconds=1))
    schedule_batch([f"Soon {i}" for i in range(3)], now + timedelta(seconds=3))  # same claim, second chunk
    call_command("sync_schedules")
    # Chunks of 3: the claim is prepared in chunks whatever the due times (dispatch.plan), so
    # this size is what makes it two chains, the second queued behind the held first.
    chunks = {"PUBLISHER_CHUNK_SIZE": "3"}
    env = {**private_redis.env(), **short_lease, **chunks, "PUBLISHER_FAULTS": f"process:hold:{hold}"}
    processes.worker("worker", concurrency=1, **env)
    processes.beat(**private_redis.env(), **short_lease, **chunks)

    client = redis.Redis(port=private_redis.port)
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHING).count() == 6
             and client.llen("publish") >= 1, timeout=60,
             message="both chunks claimed, one held mid-step, the other queued in Redis")
    private_redis.kill()  # no persistence: every queued and unacknowledged message is gone
    private_redis.start()
    hold.unlink()

    wait_for(settled, timeout=90, message="the lost work to be re-dispatched by the sweeper")
    wait_for(notifications_done(6 * len(subscribers)), timeout=30, message="notifications")
    assert set(Article.objects.values_list("status", flat=True)) == {ArticleStatus.PUBLISHED}
    assert Article.objects.filter(attempts__gte=2).exists(), "nothing needed the sweeper: the fault proved nothing"
    assert processes.procs["worker"][0].poll() is None
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 6 -------------------------------------------------------------------------------------

def _dead_broker() -> dict:
    """A broker URL of this tier's kind where nothing listens (None: the variable is unset)."""
    port = free_port()
    if is_amqp(settings.CELERY_BROKER_URL):
        return {"CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{port}//", "CELERY_RESULT_BACKEND": None}
    dead = f"redis://127.0.0.1:{port}/0"
    return {"CELERY_BROKER_URL": dead, "CELERY_RESULT_BACKEND": dead}


def test_broker_unreachable_at_dispatch_after_the_claim_committed(processes, mailbox, short_lease):
    subscribers = make_subscribers(2, "dispatch")
    schedule_batch([f"Undispatched {i}" for i in range(3)], timezone.now() - timedelta(seconds=1))
    env = {**processes.env, **short_lease, **_dead_broker()}
    scan = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from scheduling.services import scan_run; scan_run()"],
        cwd=ROOT, env={k: v for k, v in env.items() if v is not None}, capture_output=True, text=True, timeout=120)
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert "the sweeper will retry after the lease" in scan.stderr + scan.stdout
    # The claim committed before the dispatch failed: the rows say so, nothing is lost.
    assert set(Article.objects.values_list("status", "attempts")) == {(ArticleStatus.PUBLISHING, 1)}

    call_command("sync_schedules")
    processes.worker(**short_lease)
    processes.beat(**short_lease)
    wait_for(settled, timeout=60, message="the undispatched claim to be re-dispatched by the sweeper")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    assert set(Article.objects.values_list("attempts", flat=True)) == {2}
    assert "sweeper: re-dispatched" in processes.log("worker")
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 7 -------------------------------------------------------------------------------------

@pytest.mark.redis_only  # a private redis-server
def test_worker_and_beat_started_while_the_broker_is_down(processes, mailbox, private_redis):
    subscribers = make_subscribers(2, "late")
    schedule_batch([f"Waiting {i}" for i in range(3)], timezone.now() - timedelta(seconds=1))
    call_command("sync_schedules")
    worker = processes.worker(wait=False, **private_redis.env())
    beat = processes.beat(wait=False, **private_redis.env())
    wait_for(lambda: "Cannot connect to redis" in processes.log("worker"), timeout=60,
             message="the worker to report the broker down")
    assert Article.objects.filter(status=ArticleStatus.SCHEDULED).count() == 3

    private_redis.start()
    wait_for(lambda: "ready." in processes.log("worker"), timeout=60, message="the worker to connect")
    wait_for(settled, timeout=60, message="the articles to be published once the broker is up")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    assert worker.poll() is None and beat.poll() is None
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 11 ------------------------------------------------------------------------------------

def test_same_message_delivered_twice(processes, mailbox):
    """The chain's first message delivered three times (twice as a raw copy of its bytes, same
    task id and chain), and a second copy of the whole chain sent twice with one set of task ids."""
    subscribers = make_subscribers(2, "dup")
    schedule_batch([f"Duplicated {i}" for i in range(3)], timezone.now() - timedelta(seconds=1))
    claim = services.articles_claim_due()  # dispatched after commit, no worker yet
    assert claim and len(claim.article_ids) == 3

    with Connection(settings.CELERY_BROKER_URL) as conn:
        # The product's own declaration of the queue: RabbitMQ refuses a redeclaration that differs.
        publish = next(q for q in settings.CELERY_TASK_QUEUES if q.name == "publish")
        queue = conn.SimpleQueue(publish)
        message = queue.get(timeout=10)
        assert message.headers["task"] == "publisher.tasks.process_articles"
        producer = conn.Producer()
        for _ in range(2):
            producer.publish(message.body, exchange="publish", routing_key="publish", headers=message.headers,
                             content_type=message.content_type, content_encoding=message.content_encoding,
                             correlation_id=message.properties.get("correlation_id"))
        message.ack()
        queue.close()
    canvas = dispatch.publishing_chain(token=claim.token, article_ids=claim.article_ids)
    canvas.freeze()  # fixes every task id: the two sends below are the same messages
    canvas.apply_async()
    canvas.apply_async()

    processes.worker()
    wait_for(lambda: task_logged(processes, "publisher.tasks.notify_subscribers", "succeeded") == 4,
             timeout=60, message="all four chains to run to the end")
    wait_for(settled, timeout=30, message="the articles to be published")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    assert task_logged(processes, "publisher.tasks.process_articles", "received") == 4
    assert set(Article.objects.values_list("attempts", flat=True)) == {1}
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 15 ------------------------------------------------------------------------------------

class _Exploit:
    """Unpickling this would create a file: it must never be unpickled."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_hostile_messages_are_rejected_logged_and_the_worker_stays_up(processes, mailbox, tmp_path, article_factory):
    subscribers = make_subscribers(2, "hostile")
    target = article_factory(title="Target")
    services.article_schedule(article_id=target.pk, publish_at=timezone.now() + timedelta(days=1))
    marker = tmp_path / "pickle-was-executed"
    worker = processes.worker()

    def headers(task: str) -> dict:
        return {"lang": "py", "task": task, "id": str(uuid.uuid4()), "root_id": None, "parent_id": None,
                "group": None, "retries": 0, "eta": None, "expires": None, "argsrepr": "", "kwargsrepr": ""}

    with Connection(settings.CELERY_BROKER_URL) as conn:
        producer = conn.Producer()
        send = {"exchange": "publish", "routing_key": "publish"}
        # 1. pickle: the worker accepts JSON only.
        producer.publish(pickle.dumps(((), {"token": "x"}, {})), content_type="application/x-python-serialize",
                         content_encoding="binary", headers=headers("publisher.tasks.make_live"), **send)
        producer.publish(pickle.dumps(_Exploit(str(marker))), content_type="application/x-python-serialize",
                         content_encoding="binary", headers=headers("publisher.tasks.make_live"), **send)
        # 2. malformed bodies: not JSON at all, and JSON that is not (args, kwargs, embed).
        producer.publish(b"{not json", content_type="application/json", content_encoding="utf-8",
                         headers=headers("publisher.tasks.make_live"), **send)
        producer.publish("just a string", serializer="json", headers=headers("publisher.tasks.make_live"), **send)
        # 3. a task no one registered.
        producer.publish([[], {}, {}], serializer="json", headers=headers("publisher.tasks.drop_all_tables"), **send)
        # 4. wrong arguments: too many, wrong types, a claim token that is not one.
        producer.publish([[1, 2, 3, 4], {}, {}], serializer="json", headers=headers("publisher.tasks.make_live"), **send)
        producer.publish([["not-ids"], {"token": 7}, {}], serializer="json",
                         headers=headers("publisher.tasks.process_articles"), **send)
        producer.publish([[[target.pk]], {"token": "not-a-uuid"}, {}], serializer="json",
                         headers=headers("publisher.tasks.make_live"), **send)

    log = lambda: processes.log("worker")  # noqa: E731
    wait_for(lambda: log().count("Refusing to deserialize untrusted content of type pickle") >= 2
             and "Can't decode message body" in log()
             and "malformed publisher.tasks.make_live message" in log()
             and "Received unregistered task of type 'publisher.tasks.drop_all_tables'" in log()
             and log().count("raised unexpected") >= 3, timeout=30,
             message="every hostile message to be rejected and logged")
    assert "TypeError" in log() and "not-a-uuid" in log()
    assert not marker.exists(), "a pickled payload was executed"
    target.refresh_from_db()
    assert target.status == ArticleStatus.SCHEDULED and target.published_at is None

    # The worker is still up (a malformed body used to stop it, and every worker after it) and still works.
    assert worker.poll() is None and "Unrecoverable error" not in log()
    call_command("sync_schedules")
    processes.beat()
    schedule_batch(["After the attack"], timezone.now() - timedelta(seconds=1))
    wait_for(lambda: Article.objects.filter(title="After the attack", status=ArticleStatus.PUBLISHED).exists(),
             timeout=60, message="a normal article to publish after the hostile messages")
    wait_for(notifications_done(len(subscribers)), timeout=30, message="notifications")
    services.article_unschedule(article_id=target.pk)  # not due for a day: settle it for the checker
    assert_invariants(processes, mailbox, subscribers=subscribers)
