"""The invariants every fault must leave intact (DESIGN.md, Guarantees), checked the same way
after every row of the fault suite (and by the recovery tests in tests/integration/):

- every due article ends `published` exactly once (published_at set, not before publish_at,
  flipped by exactly one make-live UPDATE) or `failed` / `expired` / `draft` with a reason and
  without having gone live;
- each subscriber got at most one e-mail per article, counted from the messages the e-mail
  backend actually wrote (the file backend's files), and the `sent` rows agree with them;
- nothing is left `scheduled` or `publishing` (callers wait for lease + one sweep first);
- every failure is visible: a failed article or notification says why.
"""

import re
from collections import Counter

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus
from tests.support.mail import read_mailbox

PUBLISHED_LOG = re.compile(r"published (\d+) articles \(claim ")
UNSETTLED = (ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING)


def settled() -> bool:
    return not Article.objects.filter(status__in=UNSETTLED).exists()


def notifications_done(expected: int):
    """True once `expected` notifications exist and none is still pending or being sent."""
    def check():
        rows = Notification.objects
        return (rows.count() == expected
                and not rows.filter(status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING]).exists())
    return check


def task_logged(processes, task: str, event: str, *, prefix: str = "worker") -> int:
    """How many times workers logged `Task <name>[<id>] <event>` (`received`, `succeeded`, `retry`)."""
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
    unsettled = list(Article.objects.filter(status__in=UNSETTLED).values_list("title", "status"))
    assert not unsettled, f"left unsettled: {unsettled}"
    active = {s.email for s in subscribers if s.is_active}
    mail = read_mailbox(mailbox)
    twice = [key for key, n in Counter(mail).items() if n > 1]
    assert not twice, f"the same article mailed twice to the same subscriber: {twice}"
    published = 0
    for article in Article.objects.all():
        subject = f"New: {article.title}"
        recipients = {to for to, s in mail if s == subject}
        sent_rows = Notification.objects.filter(article=article, status=NotificationStatus.SENT).count()
        if article.status == ArticleStatus.PUBLISHED:
            published += 1
            assert article.published_at is not None, article
            assert article.published_at >= article.publish_at, f"{article} published early"
            assert article.last_error == "", article.last_error
            if all_mailed:
                assert recipients == active, f"{article}: mailed {recipients}, expected {active}"
            assert recipients <= active, f"{article}: mailed {recipients - active}, who are not active subscribers"
            # A row the sweeper marked `interrupted` (its sender died mid-claim) may have been mailed.
            interrupted = Notification.objects.filter(article=article, status=NotificationStatus.INTERRUPTED).count()
            assert sent_rows <= len(recipients) <= sent_rows + interrupted, (
                f"{article}: {sent_rows} rows say sent ({interrupted} interrupted), {len(recipients)} mails written")
        else:
            assert article.published_at is None, f"{article} is {article.status} but has published_at"
            assert recipients == set(), f"{article} is {article.status} but was mailed to {recipients}"
            assert sent_rows == 0, f"{article} is {article.status} but has sent notifications"
            if article.status == ArticleStatus.FAILED:
                assert article.last_error.strip(), f"{article} failed without a reason"
    unexplained = Notification.objects.filter(status=NotificationStatus.FAILED, last_error="")
    assert not unexplained.exists(), "a notification failed without a reason"
    # Exactly once: the make-live UPDATEs together flipped each published row once.
    assert rows_flipped_to_published(processes) == published
    if all_mailed:
        assert len(mail) == published * len(active)


RELEASE_FLIP_LOG = re.compile(
    r"release #(\d+) published: (\d+) articles in one transaction \(claim [0-9a-f-]+, flip ([\d.]+) ms\)")


def release_flips(processes) -> list[tuple[int, int, float]]:
    """(release id, members flipped, flip milliseconds) of every release flip any worker (dead
    ones included) committed: a release flipped twice would be listed twice."""
    return [(int(rid), int(n), float(ms)) for name in processes.procs if name.startswith("worker")
            for rid, n, ms in RELEASE_FLIP_LOG.findall(processes.log(name))]


def assert_release_published_once(processes, mailbox, release, *, subscribers) -> None:
    """Every member live exactly once, together (one flip, one published_at, not before the
    release time), each active subscriber mailed once per member."""
    from publisher.models import Release
    from publisher.states import ReleaseStatus

    release = Release.objects.get(pk=release.pk)
    assert release.status == ReleaseStatus.PUBLISHED, (release.status, release.last_error)
    members = list(Article.objects.filter(release=release))
    assert [(rid, n) for rid, n, _ in release_flips(processes)] == [(release.pk, len(members))], "one flip, of all"
    assert {(a.status, a.published_at) for a in members} == {(ArticleStatus.PUBLISHED, release.published_at)}
    assert release.published_at >= release.publish_at, "published early"
    mail = Counter(read_mailbox(mailbox))
    expected = {(s.email, f"New: {a.title}") for s in subscribers if s.is_active for a in members}
    assert set(mail) == expected and set(mail.values()) == {1}, mail
