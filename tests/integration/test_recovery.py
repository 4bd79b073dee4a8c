"""Recovery and edge paths end to end, with real `celery worker` / `celery beat` subprocesses on
the test database and broker: catch-up after downtime; a worker SIGKILLed while holding a
make-live ETA, and mid-send (the lease and notification sweepers); "publish now"; a corrupt
image in a chunk. The fault suite (tests/faults/) has the rest of the crash and concurrency rows.

Every test ends with the fault suite's invariant check (`assert_invariants`, tests/support/invariants.py).
"""

import io
import signal
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.utils import timezone
from PIL import Image

from publisher import services
from publisher.models import Article, ArticleStatus, Notification, NotificationClaim, NotificationStatus
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

pytestmark = pytest.mark.integration

LEASE = 3  # seconds: short, so the sweeper re-dispatches a killed worker's claim within the test


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


# --- 2. worker SIGKILL while holding an ETA, and mid-send ----------------------------------

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
    """Notifications a sender that dies was mailing (its claim's batch) are never sent again:
    whether the mail left is unknown, so they become `interrupted` (at most once), and nothing is
    duplicated."""
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    subscribers = make_subscribers(3, "send")
    hold = tmp_path / "hold-send"
    hold.touch()
    schedule_batch(["Interrupted story"], timezone.now() - timedelta(seconds=1))
    call_command("sync_schedules")
    processes.worker("worker", PUBLISHER_LEASE_SECONDS=str(LEASE), PUBLISHER_FAULTS=f"send:hold:{hold}")
    processes.beat(PUBLISHER_LEASE_SECONDS=str(LEASE))

    wait_for(lambda: NotificationClaim.objects.filter(sending_first_id__isnull=False).count() == 1
             and Notification.objects.filter(status=NotificationStatus.PENDING).count() == 3,
             timeout=60, message="the notifications claimed by a sender (held before sending)")
    processes.stop("worker", signal.SIGKILL)
    hold.unlink()
    processes.worker("worker-2", PUBLISHER_LEASE_SECONDS=str(LEASE))

    wait_for(lambda: Notification.objects.filter(status=NotificationStatus.INTERRUPTED).count() == 3,
             timeout=30, message="the interrupted notifications to be given up")
    assert all("Interrupted while sending" in e for e in Notification.objects.values_list("last_error", flat=True))
    assert read_mailbox(mailbox) == []
    assert Article.objects.get().status == ArticleStatus.PUBLISHED
    assert_invariants(processes, mailbox, subscribers=subscribers, all_mailed=False)


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
