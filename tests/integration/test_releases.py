"""Releases end to end with a real worker and beat: all members go live in one transaction (a
reader polling from another connection never sees part of a release), and a release with one
broken member is blocked, nothing of it goes live, and whoever scheduled it is mailed."""

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from publisher import releases
from publisher.models import Article, ArticleStatus, Release
from publisher.states import ReleaseStatus
from tests import factories
from tests.factories import make_article, make_subscriber, make_user
from tests.support.invariants import release_flips, task_succeeded
from tests.support.mail import read_mailbox, read_messages, text_body
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

# Claimed by the scan this far ahead (the test process and the subprocesses agree).
LOOKAHEAD = 3


@pytest.fixture
def release_processes(processes, settings):
    settings.PUBLISHER_RELEASE_LOOKAHEAD = LOOKAHEAD
    settings.PUBLISHER_CHUNK_SIZE = 8  # 20 members: three chunks prepared side by side
    processes.env.update({"PUBLISHER_RELEASE_LOOKAHEAD": str(LOOKAHEAD), "PUBLISHER_CHUNK_SIZE": "8"})
    call_command("sync_schedules")
    processes.worker()
    processes.beat()
    return processes


class Reader(threading.Thread):
    """Polls what readers see of one release, on its own database connection, until stopped."""

    def __init__(self, release_id: int):
        super().__init__(daemon=True)
        self.release_id, self.seen, self.stopped = release_id, Counter(), threading.Event()

    def run(self):
        try:
            while not self.stopped.is_set():
                self.seen[Article.objects.visible().filter(release_id=self.release_id).count()] += 1
        finally:
            connection.close()


def scheduled_release(editor, n, *, seconds, broken=None):
    release = releases.release_create(name="Embargo package", actor=editor)
    articles = [make_article(title=f"Story {i:02d}", body=f"Body of story {i}.") for i in range(n)]
    if broken is not None:
        bad = articles[broken]
        bad.image.save("broken.png", ContentFile(b"this is not an image"), save=False)
        Article.objects.filter(pk=bad.pk).update(image=bad.image.name)
    releases.release_add_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(seconds=seconds),
                              actor=editor)
    return Release.objects.get(pk=release.pk), articles


def test_a_release_of_20_goes_live_in_one_transaction_and_no_reader_sees_part_of_it(release_processes, mailbox):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    reader_address = make_subscriber("reader@example.com").email
    release, articles = scheduled_release(editor, 20, seconds=LOOKAHEAD + 4)
    assert release.status == ReleaseStatus.SCHEDULED  # not yet within the look-ahead: the scan claims it
    reader = Reader(release.pk)
    reader.start()
    try:
        wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PREPARING, timeout=30,
                 message="the scan to claim the release")
        wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=60,
                 message="the release to go live")
        time.sleep(0.3)  # a few more reads after the flip
    finally:
        reader.stopped.set()
        reader.join(10)

    # Only ever nothing or everything, and both were seen.
    assert set(reader.seen) == {0, 20}, reader.seen
    release.refresh_from_db()
    rows = list(Article.objects.filter(release=release).values_list("status", "published_at", "body_html"))
    assert {status for status, _, _ in rows} == {ArticleStatus.PUBLISHED}
    assert {published_at for _, published_at, _ in rows} == {release.published_at}
    assert release.published_at >= release.publish_at, "published early"
    assert all(html.startswith("<p>Body of story") for _, _, html in rows)
    assert [(rid, n) for rid, n, _ in release_flips(release_processes)] == [(release.pk, 20)], "one flip, of all 20"
    # Subscribers: one mail per article, once.
    wait_for(lambda: len(read_mailbox(mailbox)) == 20, timeout=30, message="20 notifications")
    time.sleep(1)
    assert Counter(read_mailbox(mailbox)) == {(reader_address, f"New: Story {i:02d}"): 1 for i in range(20)}
    # The make-live steps of single articles never ran: members are flipped by the release only.
    assert task_succeeded(release_processes, "publisher.tasks.make_live") == 0


def test_a_release_of_100_flips_in_one_transaction(release_processes, mailbox, capsys):
    """The figure docs/releases.md reports: 100 members, the time between the first and the last
    becoming visible (0: one commit, one published_at) and the flip transaction's duration."""
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    release, _ = scheduled_release(editor, 100, seconds=LOOKAHEAD + 6)
    reader = Reader(release.pk)
    reader.start()
    try:
        wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=90,
                 message="the release of 100 to go live")
        time.sleep(0.3)
    finally:
        reader.stopped.set()
        reader.join(10)
    assert set(reader.seen) == {0, 100}, reader.seen
    release.refresh_from_db()
    published = set(Article.objects.filter(release=release).values_list("published_at", flat=True))
    assert published == {release.published_at}
    flips = release_flips(release_processes)
    assert [(rid, n) for rid, n, _ in flips] == [(release.pk, 100)]
    with capsys.disabled():
        print(f"\nrelease of 100: first-to-last visible 0 s (one published_at), flip transaction {flips[0][2]} ms, "
              f"late by {(release.published_at - release.publish_at).total_seconds() * 1000:.0f} ms, "
              f"reader saw {dict(reader.seen)}")


def test_a_release_with_a_broken_image_is_blocked_and_its_scheduler_mailed(release_processes, mailbox):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    make_subscriber("reader@example.com")
    release, articles = scheduled_release(editor, 5, seconds=LOOKAHEAD + 3, broken=2)
    broken = articles[2]

    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.BLOCKED, timeout=60,
             message="the release to be blocked")
    wait_for(lambda: len(read_mailbox(mailbox)) >= 1, timeout=30, message="the scheduler's mail")
    # Past the release time, and a scan or two more: still nothing live.
    wait_for(lambda: timezone.now() > release.publish_at + timedelta(seconds=2), timeout=30, message="time")

    release.refresh_from_db()
    assert release.blocked_article_id == broken.pk
    assert release.last_error.startswith(f"“Story 02” (#{broken.pk}) could not be prepared: thumbnail: ")
    assert sorted(Article.objects.filter(release=release).values_list("status", flat=True)) == [
        ArticleStatus.IN_RELEASE] * 5
    assert not Article.objects.filter(published_at__isnull=False).exists()
    assert not Article.objects.visible().exists()
    [message] = read_messages(mailbox)  # the scheduler's, and no subscriber's
    assert (message["To"], str(message["Subject"])) == ("edith@example.com", "Release blocked: Embargo package")
    assert f"could not be prepared: thumbnail: " in text_body(message)
    assert f"/admin/publisher/release/{release.pk}/change/" in text_body(message)
