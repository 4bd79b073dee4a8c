"""Recovery and edge paths end to end, with real `celery worker` / `celery beat` subprocesses on
the test database and broker: catch-up after downtime; a worker SIGKILLed mid-step, while
holding a make-live ETA, and mid-send (the lease and notification sweepers); two beats and two
workers at once; "publish now"; a corrupt image in a chunk; an editor unscheduling a claimed
article; and notifications that expired before they were sent.

Every test ends with the same invariant check (`assert_invariants`): nothing is left
`publishing`; each published article went live exactly once and not before its publish_at;
each failed one says why; and the mailbox holds at most one message per subscriber per article
(exactly one for each published article, none for any other).
"""

import io
import re
import signal
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from PIL import Image

from publisher import dispatch, services
from publisher.models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber
from tests.conftest import read_mailbox, schedule_batch, wait_for

pytestmark = pytest.mark.integration

LEASE = 3  # seconds: short, so the sweeper re-dispatches a killed worker's claim within the test
PUBLISHED_LOG = re.compile(r"published (\d+) articles \(claim ")
UNSETTLED = (ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING)


# --- helpers -------------------------------------------------------------------------------

def make_subscribers(n: int, prefix: str) -> list[Subscriber]:
    subscribers = [Subscriber.objects.create(email=f"{prefix}{i}@example.com") for i in range(n)]
    Subscriber.objects.create(email=f"{prefix}-inactive@example.com", is_active=False)
    return subscribers


def settled() -> bool:
    return not Article.objects.filter(status__in=UNSETTLED).exists()


def redelivered_at_once(settings) -> bool:
    """RabbitMQ hands a dead worker's unacknowledged messages back as soon as its connection
    closes; Redis only after the visibility timeout, so there the sweeper is the only way back."""
    return urlsplit(settings.CELERY_BROKER_URL).scheme in ("amqp", "amqps", "pyamqp")


def assert_recovered(article: Article, first_token, settings) -> None:
    """Recovered by the sweeper (a new claim), or on RabbitMQ possibly by the broker's redelivery
    under the same claim if the next worker started before the lease ran out: one or the other."""
    if redelivered_at_once(settings) and article.attempts == 1:
        assert article.claim_token == first_token
    else:
        assert article.attempts >= 2, f"{article} was not re-dispatched (attempts={article.attempts})"
        assert article.claim_token != first_token


def notifications_done(expected: int):
    """True once `expected` notifications exist and none is still pending or being sent."""
    def check():
        rows = Notification.objects
        return (rows.count() == expected
                and not rows.filter(status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING]).exists())
    return check


def task_logged(processes, task: str, event: str, *, prefix: str = "worker") -> int:
    """How many times workers logged `Task <name>[<id>] <event>` (`received`, `succeeded`)."""
    pattern = re.compile(rf"Task {re.escape(task)}\[[0-9a-f-]+\] {event}")
    return sum(len(pattern.findall(processes.log(name))) for name in processes.procs if name.startswith(prefix))


def task_succeeded(processes, task: str, *, prefix: str = "worker") -> int:
    return task_logged(processes, task, "succeeded", prefix=prefix)


def rows_flipped_to_published(processes) -> int:
    """Rows the make-live steps of every worker (dead ones included) flipped to `published`:
    the UPDATE's own count, so an article flipped twice would be counted twice."""
    return sum(int(n) for name in processes.procs if name.startswith("worker")
               for n in PUBLISHED_LOG.findall(processes.log(name)))


def assert_invariants(processes, mailbox, *, subscribers=(), all_mailed: bool = True) -> None:
    """`all_mailed=False` when a crash mid-send may have lost some mail (at most once, never twice)."""
    assert not Article.objects.filter(status=ArticleStatus.PUBLISHING).exists(), "an article was left publishing"
    active = {s.email for s in subscribers if s.is_active}
    mail = read_mailbox(mailbox)
    twice = [key for key, n in Counter(mail).items() if n > 1]
    assert not twice, f"the same article mailed twice to the same subscriber: {twice}"
    published = 0
    for article in Article.objects.all():
        subject = f"New: {article.title}"
        recipients = {to for to, s in mail if s == subject}
        if article.status == ArticleStatus.PUBLISHED:
            published += 1
            assert article.published_at is not None, article
            assert article.published_at >= article.publish_at, f"{article} published early"
            assert article.last_error == "", article.last_error
            if all_mailed:
                assert recipients == active, f"{article}: mailed {recipients}, expected {active}"
            assert recipients <= active, f"{article}: mailed {recipients - active}, who are not active subscribers"
        else:
            assert article.published_at is None, f"{article} is {article.status} but has published_at"
            assert recipients == set(), f"{article} is {article.status} but was mailed to {recipients}"
            assert not Notification.objects.filter(article=article, status=NotificationStatus.SENT).exists()
            if article.status == ArticleStatus.FAILED:
                assert article.last_error.strip(), f"{article} failed without a reason"
    # Exactly once: the make-live UPDATEs together flipped each published row once.
    assert rows_flipped_to_published(processes) == published
    if all_mailed:
        assert len(mail) == published * len(active)


def png_bytes(size=(640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


# --- 1. catch-up after downtime ------------------------------------------------------------

def test_catch_up_after_downtime_publishes_late_ones_once_and_expires_missed_windows(processes, mailbox):
    subscribers = make_subscribers(2, "catchup")
    now = timezone.now()
    # Everything fell due while nothing ran: no worker or beat was up when these were written.
    schedule_batch([f"Late story {i}" for i in range(4)], now - timedelta(hours=1))
    window_passed = schedule_batch(["Window passed"], now - timedelta(hours=2),
                                   unpublish_at=now - timedelta(hours=1))[0]
    call_command("sync_schedules")

    processes.worker()
    processes.beat()

    wait_for(settled, timeout=60, message="the backlog to be published or expired")
    wait_for(notifications_done(4 * len(subscribers)), timeout=30, message="the backlog's notifications")

    late = Article.objects.filter(title__startswith="Late story")
    assert sorted(late.values_list("status", flat=True)) == [ArticleStatus.PUBLISHED] * 4
    for article in late:
        assert article.lateness >= timedelta(hours=1), f"lateness not recorded: {article.lateness}"
        assert article.attempts == 1
    # Claimed together by one scan (the first that ran), not trickled out over several.
    assert late.values("claim_token").distinct().count() == 1

    window_passed.refresh_from_db()
    assert window_passed.status == ArticleStatus.EXPIRED
    assert window_passed.published_at is None
    assert "both passed" in window_passed.last_error
    assert not Notification.objects.filter(article=window_passed).exists()
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 2. worker SIGKILL mid-step + the lease sweeper --------------------------------------

def test_worker_killed_mid_step_is_recovered_by_the_sweeper_exactly_once(processes, mailbox, tmp_path, settings):
    """On Redis by the sweeper; on RabbitMQ by the broker's redelivery or the sweeper, whichever
    comes first (assert_recovered)."""
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    subscribers = make_subscribers(2, "crash")
    hold = tmp_path / "hold-process-step"
    hold.touch()  # publisher/faults.py: the process step blocks while this file exists
    titles = [f"Crash story {i}" for i in range(3)]
    schedule_batch(titles, timezone.now() - timedelta(seconds=2))
    call_command("sync_schedules")

    processes.worker("worker", PUBLISHER_LEASE_SECONDS=str(LEASE), PUBLISHER_FAULTS=f"process:hold:{hold}")
    processes.beat(PUBLISHER_LEASE_SECONDS=str(LEASE))

    # Claimed, and the process step has started on the rows (and is held there).
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHING, unfinished_runs__gte=1).count() == 3,
             timeout=60, message="the chunk to be claimed and mid-step")
    first = dict(Article.objects.values_list("pk", "claim_token"))
    processes.stop("worker", signal.SIGKILL)
    hold.unlink()
    assert not Article.objects.filter(status=ArticleStatus.PUBLISHED).exists()

    processes.worker("worker-2", PUBLISHER_LEASE_SECONDS=str(LEASE))
    wait_for(settled, timeout=60, message="the killed worker's claim to be re-dispatched and published")
    wait_for(notifications_done(3 * len(subscribers)), timeout=30, message="notifications")

    for article in Article.objects.all():
        assert article.status == ArticleStatus.PUBLISHED, (article, article.status, article.last_error)
        assert_recovered(article, first[article.pk], settings)
    if not redelivered_at_once(settings):
        assert "sweeper: re-dispatched" in processes.log("worker-2")
    assert_invariants(processes, mailbox, subscribers=subscribers)


def test_worker_killed_while_make_live_waits_for_its_eta_is_recovered_on_time_not_early(processes, mailbox,
                                                                                       settings):
    """A look-ahead claim: processed at once, make-live held in the worker with an ETA. The worker
    dies holding it. On Redis the message stays unacknowledged until the visibility timeout, so
    the lease (counted from publish_at) runs out and the sweeper re-dispatches; RabbitMQ hands
    the message back as soon as the dead worker's connection closes, and the next worker
    publishes under the same claim (or the sweeper does, if the lease ran out first). Either way:
    published once, on time, never early."""
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    subscribers = make_subscribers(2, "eta")
    call_command("sync_schedules")
    processes.worker("worker", PUBLISHER_LEASE_SECONDS=str(LEASE))
    processes.beat(PUBLISHER_LEASE_SECONDS=str(LEASE))

    publish_at = timezone.now() + timedelta(seconds=4)  # within the workers' look-ahead (5 s)
    schedule_batch(["Held story 0", "Held story 1"], publish_at)
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHING).exclude(body_html="").count() == 2
             and task_logged(processes, "publisher.tasks.make_live", "received") == 1,
             timeout=30, message="the chunk processed with make-live held for its ETA")
    assert timezone.now() < publish_at, "too slow: make-live was not held before publish_at; the test proves nothing"
    processes.stop("worker", signal.SIGKILL)
    first = dict(Article.objects.values_list("pk", "claim_token"))

    processes.worker("worker-2", PUBLISHER_LEASE_SECONDS=str(LEASE))
    wait_for(settled, timeout=60, message="the held claim to be re-dispatched and published")
    wait_for(notifications_done(2 * len(subscribers)), timeout=30, message="notifications")
    for article in Article.objects.all():
        assert article.status == ArticleStatus.PUBLISHED, (article, article.status, article.last_error)
        assert_recovered(article, first[article.pk], settings)
        assert article.published_at >= publish_at
    assert_invariants(processes, mailbox, subscribers=subscribers)


def test_worker_killed_mid_send_never_sends_twice(processes, mailbox, tmp_path, settings):
    """Notifications claimed (`sending`) by a sender that dies are never sent again: whether the
    mail left is unknown, so they become `failed` (at most once), and nothing is duplicated."""
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    subscribers = make_subscribers(3, "send")
    hold = tmp_path / "hold-send"
    hold.touch()
    schedule_batch(["Interrupted story"], timezone.now() - timedelta(seconds=1))
    call_command("sync_schedules")
    processes.worker("worker", PUBLISHER_LEASE_SECONDS=str(LEASE), PUBLISHER_FAULTS=f"send:hold:{hold}")
    processes.beat(PUBLISHER_LEASE_SECONDS=str(LEASE))

    wait_for(lambda: Notification.objects.filter(status=NotificationStatus.SENDING).count() == 3,
             timeout=60, message="the notifications claimed by a sender (held before sending)")
    processes.stop("worker", signal.SIGKILL)
    hold.unlink()
    processes.worker("worker-2", PUBLISHER_LEASE_SECONDS=str(LEASE))

    wait_for(lambda: Notification.objects.filter(status=NotificationStatus.FAILED).count() == 3,
             timeout=30, message="the interrupted notifications to be given up")
    assert all("Interrupted while sending" in e for e in Notification.objects.values_list("last_error", flat=True))
    assert read_mailbox(mailbox) == []
    assert Article.objects.get().status == ArticleStatus.PUBLISHED
    assert_invariants(processes, mailbox, subscribers=subscribers, all_mailed=False)


# --- 3. two beats, two workers ------------------------------------------------------------

def test_two_beats_and_two_workers_publish_each_article_once(processes, mailbox):
    subscribers = make_subscribers(3, "pair")
    now = timezone.now()
    schedule_batch([f"Pair past {i}" for i in range(3)], now - timedelta(seconds=1))
    schedule_batch([f"Pair soon {i}" for i in range(3)], now + timedelta(seconds=3))  # within the look-ahead
    schedule_batch([f"Pair later {i}" for i in range(3)], now + timedelta(seconds=8))  # a later scan's
    call_command("sync_schedules")

    processes.worker("worker-a")
    processes.worker("worker-b")
    processes.beat("beat-a")
    processes.beat("beat-b")

    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() == 9,
             timeout=60, message="all 9 articles published")
    wait_for(notifications_done(9 * len(subscribers)), timeout=30, message="27 notifications")

    # Both beats really were sending scans (waited for: on a loaded machine the second beat may
    # start late and have sent only one scan by the time the first nine went out).
    for beat in ("beat-a", "beat-b"):
        wait_for(lambda: processes.log(beat).count("Sending due task publisher: scan for due articles") >= 2,
                 timeout=30, message=f"{beat} to send two scans")
    assert Article.objects.filter(attempts=1).count() == 9
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 4. "publish now" ---------------------------------------------------------------------

def test_publish_now_goes_through_the_worker_and_notifies(processes, mailbox, article_factory):
    subscribers = make_subscribers(3, "now")
    draft = article_factory(title="Breaking draft")
    scheduled = article_factory(title="Breaking scheduled")
    services.article_schedule(article_id=scheduled.pk, publish_at=timezone.now() + timedelta(days=1))
    processes.worker()  # no beat: nothing but "publish now" dispatches these

    before = timezone.now()
    for article in (draft, scheduled):
        claimed = services.article_publish_now(article_id=article.pk)
        assert claimed.status == ArticleStatus.PUBLISHING
        assert claimed.publish_at <= timezone.now()

    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() == 2,
             timeout=60, message="both articles published")
    wait_for(notifications_done(2 * len(subscribers)), timeout=30, message="notifications")
    for article in Article.objects.all():
        assert article.published_at >= before
        assert article.body_html.startswith("<p>")
        assert article.attempts == 1
    assert task_succeeded(processes, "publisher.tasks.make_live") == 2
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 5. a corrupt image in a chunk -------------------------------------------------------

def test_corrupt_image_fails_its_article_alone_and_the_others_get_jpeg_thumbnails(processes, mailbox, tmp_path,
                                                                                   settings):
    media = tmp_path / "media"
    (media / "articles").mkdir(parents=True)
    settings.MEDIA_ROOT = str(media)
    processes.env["MEDIA_ROOT"] = str(media)
    (media / "articles" / "good.png").write_bytes(png_bytes())
    (media / "articles" / "corrupt.png").write_bytes(b"this is not an image\n" * 50)
    subscribers = make_subscribers(2, "img")

    at = timezone.now() - timedelta(seconds=1)
    good = schedule_batch([f"Pictured {i}" for i in range(3)], at, image="articles/good.png")
    corrupt = schedule_batch(["Corrupt picture"], at, image="articles/corrupt.png")[0]
    plain = schedule_batch(["No picture"], at)[0]
    call_command("sync_schedules")

    processes.worker()
    processes.beat()

    wait_for(settled, timeout=60, message="the chunk to settle")
    wait_for(notifications_done(4 * len(subscribers)), timeout=30, message="notifications")

    # One chunk: all five travelled under one claim.
    assert Article.objects.values("claim_token").distinct().count() == 1
    corrupt.refresh_from_db()
    assert corrupt.status == ArticleStatus.FAILED
    assert "image" in corrupt.last_error, corrupt.last_error
    assert not corrupt.thumbnail
    for article in good:
        article.refresh_from_db()
        assert article.status == ArticleStatus.PUBLISHED
        assert article.thumbnail.name == f"thumbnails/article-{article.pk}.jpg"
        path = media / article.thumbnail.name
        assert path.is_file()
        with Image.open(path) as thumb:
            assert thumb.format == "JPEG"
            assert max(thumb.size) <= 400 and thumb.size == (400, 300)
    plain.refresh_from_db()
    assert plain.status == ArticleStatus.PUBLISHED and not plain.thumbnail
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 6. unscheduled after the claim, before going live -----------------------------------

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


# --- 7. notifications past expires_at ------------------------------------------------------

def test_notifications_past_their_expiry_are_expired_and_never_sent(processes, mailbox, article_factory):
    subscribers = make_subscribers(3, "stale")
    now = timezone.now()
    processes.worker()

    with transaction.atomic():
        stale = article_factory(title="Old news", status=ArticleStatus.PUBLISHED,
                                publish_at=now - timedelta(hours=2), published_at=now - timedelta(hours=2))
        Notification.objects.bulk_create([
            Notification(article=stale, subscriber=s, expires_at=now - timedelta(minutes=1)) for s in subscribers])
        transaction.on_commit(lambda: dispatch.send_notifications(
            article_id=stale.pk, first_subscriber_id=subscribers[0].pk, last_subscriber_id=subscribers[-1].pk))

    wait_for(lambda: not Notification.objects.filter(status=NotificationStatus.PENDING).exists(),
             timeout=30, message="the stale notifications to be handled")
    wait_for(lambda: task_succeeded(processes, "publisher.tasks.send_notifications") >= 1,
             timeout=30, message="the send task to finish")
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.EXPIRED}
    assert not Notification.objects.filter(sent_at__isnull=False).exists()
    assert read_mailbox(mailbox) == []

    # Control: the same worker does send notifications that are still fresh.
    with transaction.atomic():
        fresh = article_factory(title="Fresh news", status=ArticleStatus.PUBLISHED,
                                publish_at=now - timedelta(minutes=1), published_at=now)
        Notification.objects.bulk_create([
            Notification(article=fresh, subscriber=s, expires_at=now + timedelta(hours=1)) for s in subscribers])
        transaction.on_commit(lambda: dispatch.send_notifications(
            article_id=fresh.pk, first_subscriber_id=subscribers[0].pk, last_subscriber_id=subscribers[-1].pk))
    wait_for(lambda: Notification.objects.filter(article=fresh, status=NotificationStatus.SENT).count() == 3,
             timeout=30, message="the fresh notifications to be sent")
    mail = read_mailbox(mailbox)
    assert sorted(mail) == sorted((s.email, "New: Fresh news") for s in subscribers)
    assert set(Notification.objects.filter(article=stale).values_list("status", flat=True)) == {NotificationStatus.EXPIRED}
