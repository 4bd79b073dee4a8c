"""Rows 12-14: one article failing for good inside a chunk; an editor acting on claimed
articles; notifications whose expiry passes while the workers are down."""

from datetime import timedelta

from django.core.management import call_command
from django.db.models.functions import Now
from django.utils import timezone

from publisher import notifications, services
from publisher.models import Article, ArticleStatus, Notification, NotificationStatus
from tests.factories import make_subscribers, schedule_batch
from tests.support.mail import read_mailbox
from tests.support.waiting import wait_for
from tests.support.invariants import (
    assert_invariants,
    notifications_done,
    settled,
    task_logged,
    task_succeeded,
)


# --- 12 ------------------------------------------------------------------------------------

def test_one_article_failing_for_good_fails_alone_and_is_recorded_once(processes, mailbox):
    subscribers = make_subscribers(2, "broken")
    schedule_batch(["Good one", "BROKEN one", "Good two", "Good three"], timezone.now() - timedelta(seconds=2))
    call_command("sync_schedules")
    processes.worker(PUBLISHER_FAULTS="process:raise:BROKEN")
    processes.beat()

    wait_for(settled, timeout=60, message="the chunk to settle")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")
    broken = Article.objects.get(title="BROKEN one")
    assert broken.status == ArticleStatus.FAILED
    assert broken.last_error == "process: injected fault in process"
    assert sorted(Article.objects.exclude(pk=broken.pk).values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 3
    assert Article.objects.values("claim_token").distinct().count() == 1  # one chunk
    # Logged after its transaction commits: wait for the line, then count it (once, not retried).
    wait_for(lambda: "articles failed (claim" in processes.log("worker"), timeout=10, message="the failure's log line")
    assert processes.log("worker").count("articles failed (claim") == 1
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 13 ------------------------------------------------------------------------------------

def test_editor_deletes_reschedules_and_unschedules_claimed_articles_mid_step(processes, mailbox, tmp_path):
    subscribers = make_subscribers(2, "editor")
    hold = tmp_path / "hold-process-step"
    hold.touch()
    titles = ["Delete me", "Reschedule me", "Unschedule me", "Keep me"]
    schedule_batch(titles, timezone.now() - timedelta(seconds=2))
    call_command("sync_schedules")
    processes.worker(PUBLISHER_FAULTS=f"process:hold:{hold}")
    processes.beat()
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHING, unfinished_runs__gte=1).count() == 4,
             timeout=60, message="the chunk claimed and held mid-step")
    articles = {a.title: a for a in Article.objects.all()}
    old_token = articles["Keep me"].claim_token

    Article.objects.filter(pk=articles["Delete me"].pk).delete()  # the admin's delete
    new_time = timezone.now() + timedelta(seconds=2)
    services.article_schedule(article_id=articles["Reschedule me"].pk, publish_at=new_time)
    services.article_unschedule(article_id=articles["Unschedule me"].pk)
    hold.unlink()

    wait_for(settled, timeout=60, message="the chunk and the rescheduled article to settle")
    wait_for(notifications_done(2 * len(subscribers)), timeout=30, message="notifications")
    assert not Article.objects.filter(pk=articles["Delete me"].pk).exists()
    rescheduled = Article.objects.get(pk=articles["Reschedule me"].pk)
    assert rescheduled.status == ArticleStatus.PUBLISHED
    assert rescheduled.published_at >= new_time, "went live at its old time, not the editor's new one"
    assert rescheduled.claim_token != old_token
    unscheduled = Article.objects.get(pk=articles["Unschedule me"].pk)
    assert unscheduled.status == ArticleStatus.DRAFT and unscheduled.body_html == ""  # nothing half-written
    assert Article.objects.get(pk=articles["Keep me"].pk).status == ArticleStatus.PUBLISHED
    assert_invariants(processes, mailbox, subscribers=subscribers)


def test_unscheduling_a_claimed_article_before_it_goes_live_keeps_it_a_draft(processes, mailbox, article_factory):
    subscribers = make_subscribers(2, "undo")
    call_command("sync_schedules")
    processes.worker()
    processes.beat()

    article = article_factory(title="Changed my mind")
    publish_at = timezone.now() + timedelta(seconds=4)
    services.article_schedule(article_id=article.pk, publish_at=publish_at)
    # Claimed at once (within the look-ahead); processed; make_live waits in the broker for its ETA.
    wait_for(lambda: Article.objects.filter(pk=article.pk, status=ArticleStatus.PUBLISHING).exclude(body_html="").exists()
             and task_logged(processes, "publisher.tasks.make_live", "received") == 1,
             timeout=30, message="the article claimed and processed, make-live held for its ETA")
    assert timezone.now() < publish_at, "too slow: the claim was not held before going live; the test proves nothing"

    unscheduled = services.article_unschedule(article_id=article.pk)
    assert unscheduled.status == ArticleStatus.DRAFT
    assert timezone.now() < publish_at

    # The held make-live (and the notify step after it) ran at the ETA and did nothing.
    wait_for(lambda: task_succeeded(processes, "publisher.tasks.make_live") >= 1,
             timeout=30, message="the held make-live step to run")
    wait_for(lambda: task_succeeded(processes, "publisher.tasks.notify_subscribers") >= 1,
             timeout=30, message="the notify step to run")
    article.refresh_from_db()
    assert article.status == ArticleStatus.DRAFT
    assert article.published_at is None
    assert not Notification.objects.exists()
    assert read_mailbox(mailbox) == []
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 14 ------------------------------------------------------------------------------------

def test_notifications_expiring_while_the_workers_are_down_are_never_sent(processes, mailbox, settings):
    subscribers = make_subscribers(3, "stale")
    schedule_batch(["Old news"], timezone.now() - timedelta(seconds=1))
    call_command("sync_schedules")
    # Publishes, but nothing consumes `notify`: the fan-out waits in the broker.
    processes.worker("worker", queues="scan,publish,media")
    processes.beat()
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).exists(), timeout=60,
             message="the article to go live")
    wait_for(lambda: task_succeeded(processes, "publisher.tasks.notify_subscribers") == 1, timeout=30,
             message="the fan-out to be enqueued")
    processes.stop("worker")
    processes.stop("beat")

    # The fan-out as a worker would have run it, with a one-second lifetime; then the workers
    # stay down until every notification is past its expires_at by the database clock.
    settings.PUBLISHER_NOTIFICATION_TTL = 1
    settings.PUBLISHER_NOTIFICATION_EXPIRY = {"new-article": 1}
    article = Article.objects.get()
    assert notifications.notifications_fan_out(article_id=article.pk) == 3
    wait_for(lambda: Notification.objects.filter(expires_at__lt=Now()).count() == 3, timeout=10,
             message="the notifications to expire")

    processes.worker("worker-2")
    wait_for(lambda: task_succeeded(processes, "publisher.tasks.send_notifications", prefix="worker-2") >= 1
             and task_succeeded(processes, "publisher.tasks.fan_out_notifications", prefix="worker-2") == 1,
             timeout=30, message="the queued fan-out and the senders to run")
    wait_for(lambda: not Notification.objects.filter(status=NotificationStatus.PENDING).exists(), timeout=30,
             message="the stale notifications to be handled")
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.EXPIRED}
    assert not Notification.objects.filter(sent_at__isnull=False).exists()
    assert read_mailbox(mailbox) == []
    assert_invariants(processes, mailbox, subscribers=subscribers, all_mailed=False)
