"""Delivery guarantees of the sender (publisher.notifications) against a real SMTP server and real
faults, with exact counts: a dropped connection, greylisting, a refused recipient, a full disk,
two senders of one range, the sweeper of interrupted sends and of unfinished fan-outs."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from publisher import notifications
from publisher.models import Article, ArticleStatus, Notification, NotificationClaim, NotificationStatus, Subscriber
from publisher.notifications import (DeliveryDeferred, notifications_fan_out, notifications_recover_fan_outs,
                                     notifications_recover_stale, notifications_resend_interrupted,
                                     notifications_send)
from tests.factories import make_article, make_subscriber
from tests.support.mail import read_mailbox
from tests.support.mail_backends import FullDiskBackend, WatchingBackend
from tests.support.smtp_server import SmtpServer
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notification_settings")]


def live(title: str = "Big news", *, ago: timedelta = timedelta(seconds=1), **fields) -> Article:
    now = timezone.now()
    return make_article(title=title, status=ArticleStatus.PUBLISHED, publish_at=now - ago - timedelta(minutes=1),
                        published_at=now - ago, **fields)


def queue(article: Article, *addresses: str, **fields) -> list[Subscriber]:
    """A subscriber and a pending notification of `article` for each address."""
    subscribers = [Subscriber.objects.get_or_create(email=address)[0] for address in addresses]
    for subscriber in subscribers:
        Notification.objects.create(article=article, subscriber=subscriber,
                                    expires_at=timezone.now() + timedelta(hours=1), **fields)
    return subscribers


def send(article: Article) -> tuple[int, int]:
    ids = Notification.objects.filter(article=article).values_list("subscriber_id", flat=True)
    return notifications_send(article_id=article.pk, first_subscriber_id=min(ids), last_subscriber_id=max(ids))


def statuses(article: Article) -> dict[str, str]:
    return dict(Notification.objects.filter(article=article).values_list("subscriber__email", "status"))


def error(address: str) -> str:
    return Notification.objects.get(subscriber__email=address).last_error


def use(settings, server: SmtpServer) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 10


FIVE = [f"{name}@example.com" for name in "abcde"]


# --- the mail server ---------------------------------------------------------------------------------

@pytest.mark.parametrize("claim", [2, 20])
def test_a_connection_dropped_mid_batch_sends_the_rest_on_the_retry_and_nothing_twice(settings, tmp_path, claim):
    """The server takes two messages and drops the connection at the third's end of DATA: those
    two are `sent`, the third (in doubt) `failed`, the untried two go out on the retry."""
    settings.PUBLISHER_SEND_CLAIM = claim
    server = SmtpServer(tmp_path, drop_after=2).start()
    try:
        use(settings, server)
        article = live()
        a, b, c, d, e = FIVE
        queue(article, *FIVE)

        with pytest.raises(DeliveryDeferred) as deferred:
            send(article)
        assert (deferred.value.sent, deferred.value.failed) == (2, 1)
        assert statuses(article) == {a: "sent", b: "sent", c: "failed", d: "pending", e: "pending"}
        assert error(c).startswith("In doubt, not retried") and "SMTPServerDisconnected" in error(c)

        assert send(article) == (2, 0)  # the task's retry
        assert server.recipients() == [a, b, d, e]
        assert statuses(article) == {a: "sent", b: "sent", c: "failed", d: "sent", e: "sent"}
        assert send(article) == (0, 0)
        assert server.recipients() == [a, b, d, e]
    finally:
        server.stop()


def test_a_greylisted_recipient_is_retried_until_delivered(settings, tmp_path):
    greylisting = SmtpServer(tmp_path / "grey", temp_fail=r"^grey@").start()
    article = live()
    queue(article, "a@example.com", "grey@example.com", "c@example.com")
    try:
        use(settings, greylisting)
        with pytest.raises(DeliveryDeferred) as deferred:
            send(article)
        assert (deferred.value.sent, deferred.value.failed, deferred.value.deferred) == (2, 0, 1)
        assert statuses(article) == {"a@example.com": "sent", "grey@example.com": "pending", "c@example.com": "sent"}
        assert error("grey@example.com").startswith("SMTPRecipientsRefused: 451 4.7.1")
        with pytest.raises(DeliveryDeferred):  # still greylisted: pending again, never failed
            send(article)
        assert statuses(article)["grey@example.com"] == "pending"
    finally:
        greylisting.stop()
    accepting = SmtpServer(tmp_path / "open").start()  # the greylisting period is over
    try:
        use(settings, accepting)
        assert send(article) == (1, 0)
        assert greylisting.recipients() == ["a@example.com", "c@example.com"]
        assert accepting.recipients() == ["grey@example.com"]
        assert statuses(article)["grey@example.com"] == "sent" and error("grey@example.com") == ""
    finally:
        accepting.stop()


def test_a_permanently_refused_recipient_fails_alone_with_the_answer(settings, tmp_path):
    server = SmtpServer(tmp_path, perm_fail=r"^nobody@").start()
    try:
        use(settings, server)
        article = live()
        queue(article, "a@example.com", "nobody@example.com", "c@example.com")
        assert send(article) == (2, 1)
        assert statuses(article) == {"a@example.com": "sent", "nobody@example.com": "failed", "c@example.com": "sent"}
        assert error("nobody@example.com") == ("SMTPRecipientsRefused: 550 5.1.1 <nobody@example.com>: "
                                               "no such user here")
        assert send(article) == (0, 0)  # failed is final
        assert server.recipients() == ["a@example.com", "c@example.com"]
    finally:
        server.stop()


def test_a_mail_server_refusing_connections_leaves_every_row_pending_for_the_retry(settings, tmp_path):
    server = SmtpServer(tmp_path)  # not started yet: its port refuses connections
    use(settings, server)
    article = live()
    queue(article, "a@example.com", "b@example.com")
    with pytest.raises(DeliveryDeferred) as deferred:
        send(article)
    assert (deferred.value.sent, deferred.value.failed, deferred.value.deferred) == (0, 0, 2)
    assert "ConnectionRefusedError" in deferred.value.reason
    assert set(statuses(article).values()) == {"pending"}
    server.start()
    try:
        assert send(article) == (2, 0)
        assert server.recipients() == ["a@example.com", "b@example.com"]
    finally:
        server.stop()


# --- the file backend --------------------------------------------------------------------------------

def test_a_full_disk_is_retried_and_nothing_is_lost_or_doubled(settings, tmp_path, monkeypatch):
    settings.EMAIL_BACKEND = "tests.support.mail_backends.FullDiskBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    monkeypatch.setattr(FullDiskBackend, "room", 1)
    article = live()
    queue(article, "a@example.com", "b@example.com", "c@example.com")

    with pytest.raises(DeliveryDeferred) as deferred:
        send(article)
    assert (deferred.value.sent, deferred.value.failed, deferred.value.deferred) == (1, 0, 2)
    assert statuses(article) == {"a@example.com": "sent", "b@example.com": "pending", "c@example.com": "pending"}
    assert error("b@example.com") == "OSError: [Errno 28] No space left on device"

    monkeypatch.setattr(FullDiskBackend, "room", None)  # space freed
    assert send(article) == (2, 0)
    assert sorted(to for to, _ in read_mailbox(tmp_path)) == ["a@example.com", "b@example.com", "c@example.com"]


def test_a_backend_that_cannot_be_opened_leaves_the_rows_pending(settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(blocker)
    article = live()
    queue(article, "a@example.com", "b@example.com")
    with pytest.raises(DeliveryDeferred) as deferred:
        send(article)
    assert (deferred.value.sent, deferred.value.deferred) == (0, 2)
    assert "ImproperlyConfigured" in deferred.value.reason
    assert set(statuses(article).values()) == {"pending"}


# --- claims ------------------------------------------------------------------------------------------

def in_flight() -> list[str]:
    """The addresses of the pending rows a live claim is mailing now."""
    rows = []
    for claim in NotificationClaim.objects.exclude(sending_first_id=None):
        rows += Notification.objects.filter(
            article_id=claim.article_id, subscriber_id__gte=claim.sending_first_id,
            subscriber_id__lte=claim.sending_last_id, status="pending").values_list("subscriber__email", flat=True)
    return sorted(rows)


def test_a_sender_mails_one_batch_of_its_claim_at_a_time_over_one_connection(settings, monkeypatch):
    settings.EMAIL_BACKEND = "tests.support.mail_backends.WatchingBackend"
    settings.PUBLISHER_SEND_CLAIM = 3
    article = live()
    queue(article, *[f"s{i}@example.com" for i in range(8)])
    seen = []
    monkeypatch.setattr(WatchingBackend, "watch", staticmethod(lambda: seen.append(
        (len(in_flight()), Notification.objects.filter(status="sent").count(),
         Notification.objects.exclude(status__in=["pending", "sent"]).count()))))
    monkeypatch.setattr(WatchingBackend, "opened", 0)

    assert send(article) == (8, 0)
    # Each batch's rows stay `pending` (the claim says they are being mailed) and become `sent`
    # (one UPDATE, which moves the claim on) before the next batch; nothing else is written.
    assert seen == [(3, 0, 0)] * 3 + [(3, 3, 0)] * 3 + [(2, 6, 0)] * 2
    assert WatchingBackend.opened == 1
    assert NotificationClaim.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_articles_claims_are_made_one_at_a_time_and_never_overlap():
    """A second claim of the range waits for the first one's transaction (the advisory lock),
    then sees its claim and takes nothing of the range."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite serializes them)")
    article = live()
    subscribers = queue(article, *[f"s{i}@example.com" for i in range(6)])
    lo, hi = subscribers[0].pk, subscribers[-1].pk
    first, second, errors = [], [], []
    claimed, release = threading.Event(), threading.Event()

    def first_sender():
        try:
            with transaction.atomic():  # its claim is not committed until released
                first.append(notifications._claim_range(article.pk, lo, hi))
                claimed.set()
                release.wait(20)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    def second_sender():
        try:
            second.append(notifications._claim_range(article.pk, lo, hi + 10))
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first_sender), threading.Thread(target=second_sender)]
    threads[0].start()
    assert claimed.wait(20)
    threads[1].start()
    try:
        with connection.cursor() as cursor:
            def second_waits_for_the_first():
                cursor.execute("select count(*) from pg_stat_activity where datname = current_database() "
                               "and wait_event_type = 'Lock' and wait_event = 'advisory'")
                return cursor.fetchone()[0] == 1
            wait_for(second_waits_for_the_first, timeout=20, message="the second claim to wait on the first")
    finally:
        release.set()
        for thread in threads:
            thread.join(30)
    assert errors == []
    assert [row[1:] for row in first] == [(lo, hi)]
    assert [row[1:] for row in second] == [(hi + 1, hi + 10)]  # only what the first did not cover
    assert set(statuses(article).values()) == {"pending"}


def test_a_claim_ends_where_the_next_live_claim_begins_and_skips_the_ones_it_starts_in():
    article = live()
    NotificationClaim.objects.create(article=article, first_subscriber_id=10, last_subscriber_id=19,
                                     claimed_at=timezone.now())
    NotificationClaim.objects.create(article=article, first_subscriber_id=30, last_subscriber_id=39,
                                     claimed_at=timezone.now())
    assert notifications._claim_range(article.pk, 1, 100)[1:] == (1, 9)
    assert notifications._claim_range(article.pk, 12, 100)[1:] == (20, 29)
    assert notifications._claim_range(article.pk, 15, 35) is None  # all covered now
    assert notifications._claim_range(article.pk, 35, 100)[1:] == (40, 100)
    assert notifications._claim_range(live("Other").pk, 1, 100)[1:] == (1, 100)  # per article


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("claim", [2, 20])
def test_two_senders_of_one_range_mail_each_subscriber_once(settings, mailoutbox, claim):
    if connection.vendor != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL (SQLite serializes them)")
    from tests.support.concurrency import run_concurrently

    settings.PUBLISHER_SEND_CLAIM = claim
    article = live()
    queue(article, *[f"s{i}@example.com" for i in range(40)])
    results = run_concurrently(lambda: send(article), 2)
    assert sum(sent for sent, _ in results) == 40 and sum(failed for _, failed in results) == 0
    assert sorted(m.to[0] for m in mailoutbox) == sorted(f"s{i}@example.com" for i in range(40))
    assert set(statuses(article).values()) == {"sent"}
    assert NotificationClaim.objects.count() == 0


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the sender catches it (it is not an Exception)."""


def test_a_killed_senders_batch_becomes_interrupted_and_the_rest_of_its_range_is_sent_later(
        settings, monkeypatch, enqueued, django_capture_on_commit_callbacks, mailoutbox):
    settings.EMAIL_BACKEND = "tests.support.mail_backends.WatchingBackend"
    settings.PUBLISHER_SEND_CLAIM = 3
    article = live()
    subscribers = queue(article, *[f"s{i}@example.com" for i in range(8)])

    def die_in_the_second_batch():
        if len(mailoutbox) == 4:
            raise WorkerKilled
    monkeypatch.setattr(WatchingBackend, "watch", staticmethod(die_in_the_second_batch))
    with pytest.raises(WorkerKilled):
        send(article)
    assert len(mailoutbox) == 4  # s0-s2, then s3; it died before s4
    assert in_flight() == ["s3@example.com", "s4@example.com", "s5@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_stale(older_than=300) == (0, 0)  # the claim is still young

    Notification.objects.update(updated_at=timezone.now() - timedelta(seconds=301))
    NotificationClaim.objects.update(claimed_at=timezone.now() - timedelta(seconds=301))
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_stale(older_than=300) == (2, 3)

    assert statuses(article) == {
        **{f"s{i}@example.com": "sent" for i in range(3)},
        # The batch being mailed: s3 left, s4 and s5 did not, but that is not known. Never resent by itself.
        **{f"s{i}@example.com": "interrupted" for i in range(3, 6)},
        **{f"s{i}@example.com": "pending" for i in range(6, 8)}}
    assert error("s3@example.com") == notifications.INTERRUPTED_REASON
    assert NotificationClaim.objects.count() == 0
    # The untried rest of the range goes out again, and only it.
    assert enqueued == [("send", {"article_id": article.pk, "first_subscriber_id": subscribers[6].pk,
                                  "last_subscriber_id": subscribers[7].pk})]
    monkeypatch.setattr(WatchingBackend, "watch", staticmethod(lambda: None))
    assert send(article) == (2, 0)
    assert [m.to[0] for m in mailoutbox] == [f"s{i}@example.com" for i in range(4)] + ["s6@example.com",
                                                                                       "s7@example.com"]


def test_a_sender_whose_claim_was_swept_mails_no_further_batch(settings, monkeypatch, mailoutbox):
    """A sender that stalled past the lease finds its claim gone when it records a batch: the
    range may be another sender's now, so it mails nothing more and the task retries."""
    settings.EMAIL_BACKEND = "tests.support.mail_backends.WatchingBackend"
    settings.PUBLISHER_SEND_CLAIM = 3
    article = live()
    queue(article, *[f"s{i}@example.com" for i in range(8)])

    def swept_mid_batch():
        if len(mailoutbox) == 1:
            NotificationClaim.objects.all().delete()
    monkeypatch.setattr(WatchingBackend, "watch", staticmethod(swept_mid_batch))
    with pytest.raises(DeliveryDeferred) as deferred:
        send(article)

    assert deferred.value.reason == notifications.LOST_CLAIM
    assert (deferred.value.sent, deferred.value.deferred) == (3, 3)
    assert [m.to[0] for m in mailoutbox] == ["s0@example.com", "s1@example.com", "s2@example.com"]
    assert statuses(article) == {**{f"s{i}@example.com": "sent" for i in range(3)},
                                 **{f"s{i}@example.com": "pending" for i in range(3, 8)}}
    assert NotificationClaim.objects.count() == 0


def test_each_sent_notification_is_two_row_versions_on_postgresql(settings, enqueued,
                                                                  django_capture_on_commit_callbacks, mailoutbox):
    """Insert (`pending`) and outcome (`sent`): the claim lives in its own table."""
    if connection.vendor != "postgresql":
        pytest.skip("pg_stat_xact_user_tables: PostgreSQL")
    settings.PUBLISHER_SEND_CLAIM = 3
    article = live()
    for i in range(10):
        make_subscriber(f"s{i}@example.com")

    def written() -> tuple[int, int]:
        with connection.cursor() as cursor:  # this test's transaction so far (it holds everything)
            cursor.execute("select n_tup_ins, n_tup_upd from pg_stat_xact_user_tables "
                           "where relname = 'publisher_notification'")
            return cursor.fetchone()

    before = written()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=article.pk) == 10
    assert send(article) == (10, 0)
    after = written()
    assert (after[0] - before[0], after[1] - before[1]) == (10, 10)
    assert set(statuses(article).values()) == {"sent"}
    assert len(mailoutbox) == 10


@pytest.mark.django_db(transaction=True)
def test_what_the_server_accepted_is_recorded_sent_after_the_database_connection_dropped(settings, monkeypatch,
                                                                                         mailoutbox):
    """The database connection is terminated while the claim's messages are being sent: the
    sender reconnects and records them `sent` (never left `sending`, never sent again)."""
    if connection.vendor != "postgresql":
        pytest.skip("terminating a server connection: PostgreSQL")
    settings.EMAIL_BACKEND = "tests.support.mail_backends.WatchingBackend"
    article = live()
    queue(article, "a@example.com", "b@example.com", "c@example.com")
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid

    def terminate_once():
        if len(mailoutbox) == 1:
            other = connections.create_connection("default")
            try:
                with other.cursor() as cursor:
                    cursor.execute("select pg_terminate_backend(%s)", [pid])
            finally:
                other.close()

    monkeypatch.setattr(WatchingBackend, "watch", staticmethod(terminate_once))
    assert send(article) == (3, 0)
    assert connection.connection.info.backend_pid != pid  # it did reconnect
    assert statuses(article) == {"a@example.com": "sent", "b@example.com": "sent", "c@example.com": "sent"}
    assert len(mailoutbox) == 3


def test_the_send_rate_cap_spaces_messages(settings, mailoutbox):
    settings.PUBLISHER_SEND_RATE = 20.0
    article = live()
    queue(article, *FIVE)
    started = time.monotonic()
    assert send(article) == (5, 0)
    assert time.monotonic() - started >= 4 / 20  # five messages, four gaps of at least 1/20 s


# --- the sweeper -------------------------------------------------------------------------------------

def age(article: Article, address: str, seconds: float) -> None:
    Notification.objects.filter(article=article, subscriber__email=address).update(
        updated_at=timezone.now() - timedelta(seconds=seconds))


def test_recover_stale_interrupts_old_sending_rows_and_redispatches_old_pending_ones(
        enqueued, django_capture_on_commit_callbacks):
    article, gone = live(), live("Taken down")
    queue(article, "old-sending@example.com", "new-sending@example.com", status=NotificationStatus.SENDING)
    queue(article, "old-pending@example.com", "new-pending@example.com", "other-old-pending@example.com")
    queue(article, "old-sent@example.com", status=NotificationStatus.SENT)
    queue(gone, "gone@example.com")
    Article.objects.filter(pk=gone.pk).update(status=ArticleStatus.EXPIRED)
    for address in ("old-sending", "old-pending", "other-old-pending", "old-sent"):
        age(article, f"{address}@example.com", 301)
    age(gone, "gone@example.com", 301)
    Notification.objects.filter(subscriber__email="other-old-pending@example.com").update(
        expires_at=timezone.now() - timedelta(seconds=1))
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_stale(older_than=300) == (1, 1)

    assert statuses(article) == {
        "old-sending@example.com": "interrupted", "new-sending@example.com": "sending",
        "old-pending@example.com": "pending", "new-pending@example.com": "pending",
        "other-old-pending@example.com": "pending", "old-sent@example.com": "sent"}
    assert error("old-sending@example.com") == notifications.INTERRUPTED_REASON
    old = Subscriber.objects.get(email="old-pending@example.com").pk
    assert enqueued == [("send", {"article_id": article.pk, "first_subscriber_id": old, "last_subscriber_id": old})]
    assert Notification.objects.get(subscriber_id=old).updated_at >= before  # waits another period
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_stale(older_than=300) == (0, 0)


def test_a_publisher_resends_interrupted_notifications_and_only_those(enqueued, django_capture_on_commit_callbacks,
                                                                      mailoutbox):
    article = live()
    a, _ = queue(article, "a@example.com", "b@example.com", status=NotificationStatus.INTERRUPTED,
                 last_error=notifications.INTERRUPTED_REASON)
    queue(article, "sent@example.com", status=NotificationStatus.SENT)
    Notification.objects.filter(subscriber__email="b@example.com").update(expires_at=timezone.now())
    b = Subscriber.objects.get(email="b@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_resend_interrupted(article_id=article.pk) == 2
    assert enqueued == [("send", {"article_id": article.pk, "first_subscriber_id": a.pk, "last_subscriber_id": b.pk})]
    assert statuses(article) == {"a@example.com": "pending", "b@example.com": "pending", "sent@example.com": "sent"}
    assert error("a@example.com") == ""
    assert send(article) == (2, 0)  # a fresh expiry: the one that had expired goes too
    assert sorted(m.to[0] for m in mailoutbox) == ["a@example.com", "b@example.com"]
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_resend_interrupted(article_id=article.pk) == 0


def test_the_last_fan_out_batch_records_that_the_fan_out_finished(settings, enqueued,
                                                                   django_capture_on_commit_callbacks):
    settings.PUBLISHER_FANOUT_BATCH = 2
    article = live()
    subscribers = [make_subscriber(f"s{i}@example.com") for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)
    article.refresh_from_db()
    assert article.fanned_out_at is None
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk, after_subscriber_id=subscribers[1].pk)
    article.refresh_from_db()
    assert article.fanned_out_at is not None
    assert Notification.objects.filter(article=article).count() == 3


def test_the_sweeper_redispatches_a_fan_out_that_did_not_finish_in_time(settings, enqueued,
                                                                         django_capture_on_commit_callbacks):
    settings.PUBLISHER_NOTIFICATION_EXPIRY = {"new-article": 24 * 3600}
    lost = live("Lost", ago=timedelta(minutes=11))
    live("Recent", ago=timedelta(minutes=1))
    live("Done", ago=timedelta(minutes=11), fanned_out_at=timezone.now())
    live("Too old to mail", ago=timedelta(days=2))
    taken_down = live("Taken down", ago=timedelta(minutes=11))
    Article.objects.filter(pk=taken_down.pk).update(status=ArticleStatus.EXPIRED)
    make_subscriber("a@example.com")

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_fan_outs(deadline=600) == 1
    assert enqueued == [("fan_out", {"article_id": lost.pk})]
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_fan_outs(deadline=600) == 0  # once per deadline

    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=lost.pk) == 1
    Article.objects.filter(pk=lost.pk).update(fan_out_retried_at=timezone.now() - timedelta(minutes=11))
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_fan_outs(deadline=600) == 0  # finished: never again
    assert Notification.objects.filter(article=lost).count() == 1
