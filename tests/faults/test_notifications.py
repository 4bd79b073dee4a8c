"""Rows 22-23: subscriber e-mail across a lost fan-out message and a worker killed mid-send."""

import signal
from collections import Counter

from django.conf import settings
from django.core.management import call_command

from publisher import services
from publisher.models import Article, Notification, NotificationStatus, Subscriber
from tests.factories import make_article, make_subscribers
from tests.support.brokers import flush_queues
from tests.support.invariants import assert_invariants, notifications_done, task_succeeded
from tests.support.mail import read_mailbox
from tests.support.waiting import wait_for

FAN_OUT_DEADLINE = 3  # seconds after going live by which the fan-out must have finished
SEND_CLAIM = 20
CONCURRENCY = 2


# --- 22 ------------------------------------------------------------------------------------

def test_queues_flushed_after_go_live_before_the_fan_out_every_subscriber_mailed_once(processes, mailbox, broker,
                                                                                     short_lease, settings):
    settings.PUBLISHER_FANOUT_DEADLINE = FAN_OUT_DEADLINE
    env = {**short_lease, "PUBLISHER_FANOUT_DEADLINE": str(FAN_OUT_DEADLINE)}
    subscribers = make_subscribers(3, "flushed")
    call_command("sync_schedules")
    processes.worker("worker", queues="scan,publish,media", **env)  # nothing consumes `notify` yet
    processes.beat(**env)
    article = make_article(title="Flushed", body="Body.")
    services.article_publish_now(article_id=article.pk)
    wait_for(lambda: task_succeeded(processes, "publisher.tasks.notify_subscribers") == 1, timeout=60,
             message="the article live and its fan-out message queued")

    flush_queues(broker)  # the fan-out message is lost: no notification row exists
    assert not Notification.objects.exists()
    processes.worker("worker-notify", queues="notify", **env)

    # The bound: the deadline, one scan, the fan-out and the send (generous for a loaded machine).
    wait_for(notifications_done(3), timeout=FAN_OUT_DEADLINE + 60, message="the sweeper's fan-out and its mail")
    article.refresh_from_db()
    assert article.fan_out_retried_at is not None, "nothing needed the sweeper: the fault proved nothing"
    assert article.fan_out_retried_at >= article.published_at
    assert article.fanned_out_at is not None
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 23 ------------------------------------------------------------------------------------

def test_worker_sigkilled_while_mailing_3000_subscribers_no_one_mailed_twice(processes, mailbox, short_lease):
    count = 3000
    Subscriber.objects.bulk_create([Subscriber(email=f"reader{i}@example.com") for i in range(count)])
    call_command("sync_schedules")
    # Paced, so that the kill lands mid-send (150 messages/s per pool process).
    processes.worker("worker", concurrency=CONCURRENCY, PUBLISHER_SEND_CLAIM=str(SEND_CLAIM),
                     PUBLISHER_SEND_RATE="150", **short_lease)
    processes.beat(**short_lease)
    article = make_article(title="Three thousand", body="Body.")
    services.article_publish_now(article_id=article.pk)
    sent = Notification.objects.filter(status=NotificationStatus.SENT)
    wait_for(lambda: sent.count() >= 400, timeout=60, message="the sending under way")

    processes.stop("worker", signal.SIGKILL)  # main process and pool, mid-claim
    assert sent.count() < count, "the send finished before the kill: the fault proved nothing"
    processes.worker("worker-2", concurrency=CONCURRENCY, PUBLISHER_SEND_CLAIM=str(SEND_CLAIM), **short_lease)

    wait_for(notifications_done(count), timeout=120, message="every notification sent or given up")
    rows = dict(Notification.objects.values_list("subscriber__email", "status"))
    mailed = Counter(to for to, _ in read_mailbox(mailbox))
    assert [to for to, n in mailed.items() if n > 1] == [], "mailed twice"
    interrupted = {to for to, status in rows.items() if status == NotificationStatus.INTERRUPTED}
    assert len(interrupted) <= SEND_CLAIM * CONCURRENCY  # at most one claim per pool process lost
    assert {to for to, status in rows.items() if status == NotificationStatus.SENT} | interrupted == set(rows)
    assert len(rows) == count
    assert set(mailed) - interrupted == {to for to, status in rows.items() if status == NotificationStatus.SENT}
    assert Article.objects.get().fanned_out_at is not None
    assert_invariants(processes, mailbox, subscribers=Subscriber.objects.all(), all_mailed=False)
