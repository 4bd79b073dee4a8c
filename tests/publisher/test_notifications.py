"""Notifications: one row per (article, active subscriber), batched fan-out, sending through the
locmem backend, and expiry: never late, never twice."""

import email
import email.header
import email.policy
from datetime import timedelta

import pytest
from django.utils import timezone

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber
from publisher.notifications import notifications_expire, notifications_fan_out, notifications_send
from tests.factories import make_article, make_subscriber
from tests.support.mail import ARTICLE_MAIL_HEADERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notification_settings")]


def published(**fields) -> Article:
    now = timezone.now()
    fields.setdefault("title", "Big news")
    fields.setdefault("body", "Body.")
    fields.setdefault("excerpt", "The short version.")
    return make_article(status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(minutes=1),
                        published_at=now, **fields)


def subscribers(*emails: str, active: bool = True) -> list[Subscriber]:
    return [make_subscriber(address, active=active) for address in emails]


def pending(article: Article, subscriber: Subscriber, *, expires_in: float = 3600, **fields) -> Notification:
    return Notification.objects.create(article=article, subscriber=subscriber,
                                       expires_at=timezone.now() + timedelta(seconds=expires_in), **fields)


def statuses(article: Article) -> dict[str, str]:
    return dict(Notification.objects.filter(article=article).values_list("subscriber__email", "status"))


# --- fan-out ------------------------------------------------------------------------------------------

def test_fan_out_creates_one_pending_row_per_active_subscriber_only(enqueued, django_capture_on_commit_callbacks):
    article = published()
    a, = subscribers("a@example.com")
    subscribers("inactive@example.com", active=False)
    b, c = subscribers("b@example.com", "c@example.com")
    before = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=article.pk) == 3

    rows = Notification.objects.filter(article=article)
    assert sorted(rows.values_list("subscriber__email", flat=True)) == [
        "a@example.com", "b@example.com", "c@example.com"]
    assert set(rows.values_list("status", flat=True)) == {NotificationStatus.PENDING}
    for row in rows:
        assert before + timedelta(seconds=3600) <= row.expires_at <= timezone.now() + timedelta(seconds=3600)
        assert row.sent_at is None
    # One send batch covering the range; no further fan-out (fewer than a batch).
    assert enqueued == [("send", {"article_id": article.pk, "first_subscriber_id": a.pk, "last_subscriber_id": c.pk})]


def test_fan_out_twice_creates_no_duplicates(enqueued, django_capture_on_commit_callbacks):
    article = published()
    subscribers("a@example.com", "b@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)
    Notification.objects.filter(article=article).update(status=NotificationStatus.SENT)

    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)

    assert Notification.objects.filter(article=article).count() == 2
    # The rows already sent stay sent: a re-run never resets them to pending.
    assert set(statuses(article).values()) == {NotificationStatus.SENT}


def test_fan_out_covers_a_subscriber_who_joined_since_the_last_run(enqueued, django_capture_on_commit_callbacks):
    article = published()
    subscribers("a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)
    subscribers("late@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)
    assert statuses(article) == {"a@example.com": "pending", "late@example.com": "pending"}


@pytest.mark.parametrize("status", [ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING,
                                    ArticleStatus.EXPIRED, ArticleStatus.FAILED])
def test_fan_out_for_an_article_that_is_not_live_does_nothing(status, enqueued, django_capture_on_commit_callbacks):
    article = published()
    Article.objects.filter(pk=article.pk).update(status=status, claim_token="00000000-0000-0000-0000-000000000001")
    subscribers("a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=article.pk) == 0
    assert not Notification.objects.exists()
    assert enqueued == []


def test_fan_out_for_a_deleted_article_does_nothing(enqueued, django_capture_on_commit_callbacks):
    article = published()
    subscribers("a@example.com")
    pk = article.pk
    article.delete()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=pk) == 0
    assert enqueued == [] and not Notification.objects.exists()


def test_fan_out_without_subscribers(enqueued, django_capture_on_commit_callbacks):
    article = published()
    subscribers("gone@example.com", active=False)
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=article.pk) == 0
    assert enqueued == [] and not Notification.objects.exists()


def test_fan_out_in_batches_with_send_batches_and_a_continuation(settings, enqueued,
                                                                   django_capture_on_commit_callbacks):
    settings.PUBLISHER_FANOUT_BATCH = 3
    settings.PUBLISHER_SEND_BATCH = 2
    article = published()
    subs = subscribers(*[f"s{i}@example.com" for i in range(4)])
    subscribers("off@example.com", active=False)
    subs += subscribers("s4@example.com")
    ids = [s.pk for s in subs]

    with django_capture_on_commit_callbacks() as callbacks:
        assert notifications_fan_out(article_id=article.pk) == 3
    assert enqueued == [], "nothing is enqueued before the rows commit"
    for callback in callbacks:
        callback()
    assert enqueued == [
        ("send", {"article_id": article.pk, "first_subscriber_id": ids[0], "last_subscriber_id": ids[1]}),
        ("send", {"article_id": article.pk, "first_subscriber_id": ids[2], "last_subscriber_id": ids[2]}),
        ("fan_out", {"article_id": article.pk, "after_subscriber_id": ids[2]}),
    ]
    assert Notification.objects.count() == 3

    # The continuation the task would run next: the rest, and no further continuation.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=article.pk, after_subscriber_id=ids[2]) == 2
    assert enqueued == [
        ("send", {"article_id": article.pk, "first_subscriber_id": ids[3], "last_subscriber_id": ids[4]}),
    ]
    assert sorted(Notification.objects.values_list("subscriber_id", flat=True)) == ids


def test_fan_out_of_exactly_a_batch_ends_with_an_empty_continuation(settings, enqueued,
                                                                      django_capture_on_commit_callbacks):
    settings.PUBLISHER_FANOUT_BATCH = 2
    article = published()
    subs = subscribers("a@example.com", "b@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)
    assert enqueued[-1] == ("fan_out", {"article_id": article.pk, "after_subscriber_id": subs[-1].pk})
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=article.pk, after_subscriber_id=subs[-1].pk) == 0
    assert enqueued == []


def test_the_whole_fan_out_chain_reaches_every_active_subscriber_once(settings, enqueued,
                                                                       django_capture_on_commit_callbacks):
    settings.PUBLISHER_FANOUT_BATCH = 4
    settings.PUBLISHER_SEND_BATCH = 3
    article = published()
    for i in range(11):
        subscribers(f"s{i}@example.com", active=i % 5 != 0)
    active = set(Subscriber.objects.filter(is_active=True).values_list("pk", flat=True))

    # Run the continuations as the worker would, and once more (a redelivery).
    after, runs = 0, 0
    while True:
        enqueued.clear()
        with django_capture_on_commit_callbacks(execute=True):
            notifications_fan_out(article_id=article.pk, after_subscriber_id=after)
        runs += 1
        continuation = [kwargs for kind, kwargs in enqueued if kind == "fan_out"]
        if not continuation:
            break
        after = continuation[0]["after_subscriber_id"]
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)

    assert runs == 3  # 8 active subscribers in batches of 4: two full batches and an empty one
    assert set(Notification.objects.values_list("subscriber_id", flat=True)) == active
    assert Notification.objects.count() == len(active) == 8


# --- sending ---------------------------------------------------------------------------------------------

def send_all(article: Article) -> tuple[int, int]:
    ids = Subscriber.objects.values_list("pk", flat=True)
    return notifications_send(article_id=article.pk, first_subscriber_id=min(ids), last_subscriber_id=max(ids))


def test_send_mails_one_message_per_pending_row_with_text_and_html(mailoutbox):
    article = published(title="Cats & <Dogs>", excerpt="All about pets.")
    subs = subscribers("a@example.com", "b@example.com")
    for subscriber in subs:
        pending(article, subscriber)

    assert send_all(article) == (2, 0)

    assert sorted(m.to[0] for m in mailoutbox) == ["a@example.com", "b@example.com"]
    for message in mailoutbox:
        assert len(message.to) == 1
        assert message.subject == "New: Cats & <Dogs>"
        assert message.from_email == "publisher@example.com"
        assert "Cats & <Dogs>" in message.body and "All about pets." in message.body
        (html, mimetype), = message.alternatives
        assert mimetype == "text/html"
        assert ">Cats &amp; &lt;Dogs&gt;</h1>" in html  # escaped in HTML (the rest: tests/publisher/test_emails.py)
        assert "<p>\nAll about pets.\n</p>" in html
    rows = Notification.objects.filter(article=article)
    assert set(rows.values_list("status", flat=True)) == {NotificationStatus.SENT}
    assert all(row.sent_at is not None for row in rows)


def test_the_flattened_message_is_addressed_to_each_subscriber(mailoutbox):
    """The file and SMTP backends send the bytes: each has its own To and Message-ID, both parts."""
    article = published(title="Grüße aus Köln")
    for subscriber in subscribers("a@example.com", "b@example.com"):
        pending(article, subscriber)
    send_all(article)

    parsed = {}
    for message in mailoutbox:
        raw = message.message().as_bytes()
        parsed[message.to[0]] = email.message_from_bytes(raw)
    assert set(parsed) == {"a@example.com", "b@example.com"}
    for address, msg in parsed.items():
        assert msg["To"] == address
        assert "readdressed" not in msg.as_string()
        subject = str(email.header.make_header(email.header.decode_header(msg["Subject"])))
        assert subject == "New: Grüße aus Köln"
        assert msg.is_multipart()
        leaves = [part.get_content_type() for part in msg.walk() if not part.is_multipart()]
        assert leaves == ["text/plain", "text/html"]
    assert parsed["a@example.com"]["Message-ID"] != parsed["b@example.com"]["Message-ID"]


def test_a_second_send_sends_nothing(mailoutbox):
    article = published()
    for subscriber in subscribers("a@example.com", "b@example.com"):
        pending(article, subscriber)
    assert send_all(article) == (2, 0)
    assert send_all(article) == (0, 0)
    assert len(mailoutbox) == 2


def test_send_covers_only_its_subscriber_range(mailoutbox):
    article = published()
    a, b, c = subscribers("a@example.com", "b@example.com", "c@example.com")
    for subscriber in (a, b, c):
        pending(article, subscriber)
    other = published(title="Other")
    pending(other, b)

    assert notifications_send(article_id=article.pk, first_subscriber_id=a.pk, last_subscriber_id=b.pk) == (2, 0)
    assert sorted(m.to[0] for m in mailoutbox) == ["a@example.com", "b@example.com"]
    assert statuses(article) == {"a@example.com": "sent", "b@example.com": "sent", "c@example.com": "pending"}
    assert statuses(other) == {"b@example.com": "pending"}


def test_expired_rows_become_expired_and_are_not_sent(mailoutbox):
    article = published()
    fresh_sub, stale_sub = subscribers("fresh@example.com", "stale@example.com")
    pending(article, fresh_sub)
    pending(article, stale_sub, expires_in=-1)

    assert send_all(article) == (1, 0)
    assert [m.to for m in mailoutbox] == [["fresh@example.com"]]
    assert statuses(article) == {"fresh@example.com": "sent", "stale@example.com": "expired"}
    assert Notification.objects.get(subscriber=stale_sub).sent_at is None


def test_rows_already_sending_sent_or_failed_are_never_sent_again(mailoutbox):
    article = published()
    subs = subscribers("sending@example.com", "sent@example.com", "failed@example.com")
    done = [NotificationStatus.SENDING, NotificationStatus.SENT, NotificationStatus.FAILED]
    for subscriber, status in zip(subs, done):
        pending(article, subscriber, status=status)
    assert send_all(article) == (0, 0)
    assert mailoutbox == []
    assert statuses(article) == {"sending@example.com": "sending", "sent@example.com": "sent",
                                 "failed@example.com": "failed"}


@pytest.mark.parametrize("status", [ArticleStatus.EXPIRED, ArticleStatus.DRAFT, ArticleStatus.SCHEDULED])
def test_an_article_no_longer_live_expires_its_pending_rows_and_sends_nothing(status, mailoutbox):
    article = published()
    a, b = subscribers("a@example.com", "b@example.com")
    pending(article, a)
    pending(article, b, status=NotificationStatus.SENT)
    Article.objects.filter(pk=article.pk).update(status=status)

    assert send_all(article) == (0, 0)

    assert mailoutbox == []
    assert statuses(article) == {"a@example.com": "expired", "b@example.com": "sent"}
    assert Notification.objects.get(subscriber=a).last_error == "The article is no longer published."


def test_a_deleted_article_sends_nothing(mailoutbox):
    article = published()
    subscriber, = subscribers("a@example.com")
    pending(article, subscriber)
    pk = article.pk
    article.delete()
    assert notifications_send(article_id=pk, first_subscriber_id=subscriber.pk,
                              last_subscriber_id=subscriber.pk) == (0, 0)
    assert mailoutbox == []
    assert not Notification.objects.exists()  # its rows went with it


# --- notifications_expire -------------------------------------------------------------------------------

def test_expire_marks_only_pending_rows_past_their_expiry():
    article = published()
    subs = subscribers("late@example.com", "ok@example.com", "sent@example.com", "sending@example.com")
    pending(article, subs[0], expires_in=-1)
    pending(article, subs[1], expires_in=3600)
    pending(article, subs[2], expires_in=-1, status=NotificationStatus.SENT, sent_at=timezone.now())
    pending(article, subs[3], expires_in=-1, status=NotificationStatus.SENDING)

    assert notifications_expire() == 1
    assert statuses(article) == {"late@example.com": "expired", "ok@example.com": "pending",
                                 "sent@example.com": "sent", "sending@example.com": "sending"}
    assert notifications_expire() == 0


def test_an_expired_row_is_never_sent_afterwards(mailoutbox):
    article = published()
    subscriber, = subscribers("late@example.com")
    pending(article, subscriber, expires_in=-1)
    notifications_expire()
    assert send_all(article) == (0, 0)
    assert mailoutbox == []
    assert statuses(article) == {"late@example.com": "expired"}


# --- expiry per kind, connection loss, unsubscribes ------------------------------------------------------------------------------------------

def test_fan_out_stamps_the_expiry_of_its_kind(settings, enqueued, django_capture_on_commit_callbacks):
    settings.PUBLISHER_NOTIFICATION_TTL = 3600
    settings.PUBLISHER_NOTIFICATION_EXPIRY = {"new-article": 600}
    article = published()
    subscribers("a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=article.pk)
    expires_at = Notification.objects.get().expires_at
    assert expires_at <= timezone.now() + timedelta(seconds=600)


def test_a_subscriber_who_unsubscribed_after_the_fan_out_is_not_mailed(mailoutbox):
    article = published()
    stays, off, gone, unconfirmed = subscribers("stays@example.com", "off@example.com", "gone@example.com",
                                                "unconfirmed@example.com")
    for subscriber in (stays, off, gone, unconfirmed):
        pending(article, subscriber)
    Subscriber.objects.filter(pk=off.pk).update(is_active=False)
    Subscriber.objects.filter(pk=gone.pk).update(unsubscribed_at=timezone.now())
    Subscriber.objects.filter(pk=unconfirmed.pk).update(confirmed_at=None)

    send_all(article)

    assert [m.to for m in mailoutbox] == [["stays@example.com"]]
    assert statuses(article) == {"stays@example.com": NotificationStatus.SENT, "off@example.com": "expired",
                                 "gone@example.com": "expired", "unconfirmed@example.com": "expired"}
    assert set(Notification.objects.filter(status=NotificationStatus.EXPIRED).values_list("last_error", flat=True)) == {
        "The subscriber unsubscribed before it was sent."}


@pytest.mark.django_db(transaction=True)
def test_a_sender_holding_the_same_subscribers_does_not_make_another_article_skip_them(mailoutbox):
    """Senders of two articles run at once for the same subscribers. Found by the two-workers
    integration test: the claim's FOR UPDATE SKIP LOCKED also locked the joined subscriber rows,
    so the second sender skipped every row and its subscribers were never mailed."""
    from django.db import connection
    if connection.vendor != "postgresql":
        pytest.skip("row locks (FOR UPDATE SKIP LOCKED) exist on PostgreSQL only")
    import threading

    first, second = published(title="First"), published(title="Second")
    for subscriber in subscribers("a@example.com", "b@example.com"):
        pending(first, subscriber)
        pending(second, subscriber)
    locked, release = threading.Event(), threading.Event()

    def other_sender():
        from django.db import connections, transaction
        try:
            with transaction.atomic():  # holds the row locks of a sender of `first` until released
                list(Notification.objects.filter(article=first).select_related("subscriber")
                     .select_for_update(skip_locked=True))
                locked.set()
                release.wait(10)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other_sender)
    thread.start()
    try:
        assert locked.wait(10)
        assert send_all(second) == (2, 0)
    finally:
        release.set()
        thread.join()
    assert sorted(m.to[0] for m in mailoutbox) == ["a@example.com", "b@example.com"]


# --- hostile titles -----------------------------------------------------------------------------------

def mail_files(directory) -> list[email.message.Message]:
    """Every message the file backend wrote (it separates messages with a line of 79 dashes)."""
    messages = []
    for path in sorted(directory.iterdir()):
        for chunk in path.read_bytes().split(b"\n" + b"-" * 79 + b"\n"):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk, policy=email.policy.default))
    return messages


@pytest.mark.parametrize("title, subject", [
    # ASCII only, so the subject is not encoded: the placeholders appear in the header as they are.
    ("Win readdressed-to@invalid <readdressed-id@invalid>",
     "New: Win readdressed-to@invalid <readdressed-id@invalid>"),
    # Characters the email package treats as line breaks, each followed by a would-be header.
    ("Hi\u2028Bcc: evil@example.com\x0bReply-To: evil@example.com\x85To: evil@example.com",
     "New: Hi Bcc: evil@example.com Reply-To: evil@example.com To: evil@example.com"),
    ("Hi\x0bBcc: evil@example.com\x1cReply-To: evil@example.com\x0cTo: evil@example.com",
     "New: Hi Bcc: evil@example.com Reply-To: evil@example.com To: evil@example.com"),
], ids=["placeholders", "line-breaks", "ascii-line-breaks"])
def test_a_hostile_title_can_neither_readdress_a_mail_nor_add_a_header(settings, tmp_path, title, subject):
    """A real send through the file backend. The title (written to the row directly, as an old
    row or another tool could) carries the re-addressing placeholders or would-be headers: every
    mail still goes to its own subscriber, with only the headers the message was built with."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    article = published(title=title)
    for subscriber in subscribers("a@example.com", "b@example.com"):
        pending(article, subscriber)

    assert send_all(article) == (2, 0)

    mails = mail_files(tmp_path)
    assert len(mails) == 2
    assert sorted(mail["To"] for mail in mails) == ["a@example.com", "b@example.com"]
    for mail in mails:
        assert sorted(mail.keys()) == ARTICLE_MAIL_HEADERS
        assert mail["Message-ID"] != "<readdressed-id@invalid>"
        assert mail["Subject"] == subject
    assert mails[0]["Message-ID"] != mails[1]["Message-ID"]
    assert statuses(article) == {"a@example.com": NotificationStatus.SENT, "b@example.com": NotificationStatus.SENT}
