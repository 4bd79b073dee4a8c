"""A release of new articles and changes to live articles, end to end with a real worker and
beat: the new articles go live and the changes are applied in one transaction (a reader polling
from another connection never sees one without the other), and at the rollback time the changed
articles get their previous versions back and the new ones are taken down."""

import re
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q
from django.utils import timezone

from publisher import release_changes, releases, revisions
from publisher.models import Article, ArticleRevision, ArticleStatus, Release, ReleaseEvent
from publisher.states import ReleaseStatus, RevisionStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.invariants import release_flips
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

LOOKAHEAD = 3  # the scan claims the release this far ahead (the test process and the subprocesses agree)


@pytest.fixture
def release_processes(processes, settings):
    settings.PUBLISHER_RELEASE_LOOKAHEAD = LOOKAHEAD
    processes.env.update({"PUBLISHER_RELEASE_LOOKAHEAD": str(LOOKAHEAD)})
    call_command("sync_schedules")
    processes.worker()
    processes.beat()
    return processes


class Reader(threading.Thread):
    """Polls, on its own database connection, how many of the new articles a reader sees and how
    many of the changed ones show their new version."""

    def __init__(self, release_id: int, changed_ids: list[int]):
        super().__init__(daemon=True)
        self.release_id, self.changed_ids = release_id, changed_ids
        self.seen, self.stopped = Counter(), threading.Event()

    def run(self):
        try:
            while not self.stopped.is_set():
                # One statement: one snapshot of the database (two counts could straddle a commit).
                counts = Article.objects.visible().aggregate(
                    new=Count("pk", filter=Q(release_id=self.release_id)),
                    changed=Count("pk", filter=Q(pk__in=self.changed_ids, title__startswith="Updated")))
                self.seen[(counts["new"], counts["changed"])] += 1
        finally:
            connection.close()


def live_article(i: int) -> Article:
    now = timezone.now()
    return make_article(title=f"Live {i}", body=f"Old body {i}.", body_html=f"<p>Old body {i}.</p>",
                        status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(hours=1),
                        published_at=now - timedelta(hours=1), slug=f"live-{i}")


def test_new_articles_and_changes_go_live_together_and_roll_back_together(release_processes):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    live = [live_article(i) for i in range(2)]
    changes = [revisions.revision_create(article_id=a.pk, title=f"Updated {i}", body=f"New body {i}.", image_alt="",
                                         publish_at=timezone.now() + timedelta(hours=1), actor=editor)
               for i, a in enumerate(live)]
    release = releases.release_create(name="Launch", actor=editor)
    new = [make_article(title=f"Story {i}", body=f"Body of story {i}.") for i in range(3)]
    releases.release_add_members(release_id=release.pk, article_ids=[a.pk for a in new], actor=editor)
    added = release_changes.release_add_changes(release_id=release.pk, revision_ids=[c.pk for c in changes],
                                                actor=editor)
    assert (added.done, added.skipped) == ([c.pk for c in changes], [])
    publish_at = timezone.now() + timedelta(seconds=LOOKAHEAD + 4)
    releases.release_schedule(release_id=release.pk, publish_at=publish_at,
                              unpublish_at=publish_at + timedelta(seconds=6), actor=editor)
    assert set(ArticleRevision.objects.filter(release=release).values_list("status", flat=True)) == {
        RevisionStatus.IN_RELEASE}

    reader = Reader(release.pk, [a.pk for a in live])
    reader.start()
    try:
        wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=60,
                 message="the release to go live")
        time.sleep(0.3)  # a few more reads after the flip
    finally:
        reader.stopped.set()
        reader.join(10)

    # Nothing, or the three new articles AND the two changes: never one without the other.
    assert set(reader.seen) == {(0, 0), (3, 2)}, reader.seen
    release.refresh_from_db()
    assert release.published_at >= release.publish_at, "published early"
    assert set(Article.objects.filter(release=release).values_list("status", "published_at")) == {
        (ArticleStatus.PUBLISHED, release.published_at)}
    assert sorted(Article.objects.filter(pk__in=[a.pk for a in live]).values_list("title", "body_html",
                                                                                "revised_at")) == [
        ("Updated 0", "<p>New body 0.</p>", release.published_at),
        ("Updated 1", "<p>New body 1.</p>", release.published_at)]
    assert set(ArticleRevision.objects.filter(release=release).values_list("status", "applied_at")) == {
        (RevisionStatus.APPLIED, release.published_at)}
    assert [(rid, n) for rid, n, _ in release_flips(release_processes)] == [(release.pk, 3)], "one flip"

    # The rollback: previous versions back, the new articles down, the release rolled back.
    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK, timeout=30,
             message="the release to roll back")
    assert sorted(Article.objects.filter(pk__in=[a.pk for a in live]).values_list(
        "status", "title", "body", "body_html", "revised_at")) == [
        (ArticleStatus.PUBLISHED, "Live 0", "Old body 0.", "<p>Old body 0.</p>", None),
        (ArticleStatus.PUBLISHED, "Live 1", "Old body 1.", "<p>Old body 1.</p>", None)]
    assert set(Article.objects.filter(release=release).values_list("status", flat=True)) == {ArticleStatus.EXPIRED}
    assert not Article.objects.visible().filter(release=release).exists()
    assert set(ArticleRevision.objects.filter(release=release).values_list("status", flat=True)) == {
        RevisionStatus.ROLLED_BACK}


ROLLBACK_LOOKAHEAD = 20  # the flip sends the rollback, 13 s ahead, with its ETA
SLOW_SCAN = 60  # the scan's own rollback (its safety net) cannot be the one that is on time


@pytest.fixture
def rollback_processes(processes, settings):
    settings.PUBLISHER_RELEASE_LOOKAHEAD = ROLLBACK_LOOKAHEAD
    settings.PUBLISHER_SCAN_INTERVAL = SLOW_SCAN
    processes.env.update({"PUBLISHER_RELEASE_LOOKAHEAD": str(ROLLBACK_LOOKAHEAD),
                          "PUBLISHER_SCAN_INTERVAL": str(SLOW_SCAN)})
    call_command("sync_schedules")
    processes.worker()
    processes.beat()
    return processes


def test_the_changed_article_gets_its_previous_version_back_on_the_rollback_second(rollback_processes):
    factories.newsroom_groups()
    editor = make_user("edith", "Publishers", email="edith@example.com")
    changed = live_article(0)
    change = revisions.revision_create(article_id=changed.pk, title="Updated 0", body="New body 0.", image_alt="",
                                       publish_at=None, draft=True, actor=editor)
    release = releases.release_create(name="Flash sale", actor=editor)
    new = make_article(title="Sale story", body="Half price.")
    releases.release_add_members(release_id=release.pk, article_ids=[new.pk], actor=editor)
    assert release_changes.release_add_changes(release_id=release.pk, revision_ids=[change.pk],
                                               actor=editor).done == [change.pk]
    publish_at = timezone.now() + timedelta(seconds=4)
    rollback_at = publish_at + timedelta(seconds=13)
    releases.release_schedule(release_id=release.pk, publish_at=publish_at, unpublish_at=rollback_at, actor=editor)
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.PREPARING  # claimed on save (look-ahead)

    wait_for(lambda: Article.objects.get(pk=changed.pk).title == "Updated 0", timeout=20,
             message="the release to go live")
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED

    # Poll from here, on the second: the previous title back, the new article gone.
    restored_seen = None
    while timezone.now() < rollback_at + timedelta(seconds=5):
        title = Article.objects.filter(pk=changed.pk).values_list("title", flat=True).get()
        if title == "Live 0":
            restored_seen = timezone.now()
            break
        time.sleep(0.05)
    assert restored_seen is not None, "the previous version did not come back within 5 s of the rollback time"
    lateness = (restored_seen - rollback_at).total_seconds()
    assert 0 <= lateness <= 1.5, f"previous version back {lateness:.3f} s after the rollback time"
    assert not Article.objects.visible().filter(pk=new.pk).exists()
    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK, timeout=5,
             message="the release to be rolled back")
    assert Article.objects.get(pk=new.pk).status == ArticleStatus.EXPIRED
    assert ArticleRevision.objects.get(pk=change.pk).status == RevisionStatus.ROLLED_BACK
    # The message sent for that second did it; the scan's safety net then finds nothing to do.
    log = rollback_processes.log("worker")
    assert re.search(r"Task publisher\.tasks\.release_roll_back\[[^\]]+\] succeeded in [0-9.e-]+s: 1\b", log), log[-3000:]
    assert releases.releases_roll_back_due() == 0
    assert ReleaseEvent.objects.filter(release=release, action="rolled_back").count() == 1
    print(f"\nrollback: previous version back {lateness * 1000:.0f} ms after the rollback time")
