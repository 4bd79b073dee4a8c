"""Changes to live articles as release members (publisher.release_changes): adding them, the
refusals, the claim and preparation with the release, the one flip that applies them with the
new articles, a change that blocks the release, and the rollback that restores the previous
versions; against the real database, the broker replaced by a record of what would be sent."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from publisher import dispatch, pipeline, release_changes, releases, revisions
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleRevision, ArticleStatus, Release, \
    ReleaseEvent
from publisher.release_changes import ReleaseChangeError
from publisher.services import TransitionError
from publisher.states import REVISION_IN_RELEASE_REASON, ReleaseStatus, RevisionStatus
from publisher.webhooks.models import Delivery, Endpoint
from tests import factories
from tests.factories import make_article, make_user


@pytest.fixture
def sent(monkeypatch):
    """What the services would have sent to the broker, in order."""
    calls = []
    for name in ("publish_release", "release_flip", "release_alert", "failure_alerts", "revision_failure_alerts",
                 "revisions_claimed"):
        monkeypatch.setattr(dispatch, name, lambda name=name, **kw: calls.append((name, kw)))
    return calls


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Editors", email="edith@example.com")


def live_article(title="Old title"):
    now = timezone.now()
    return make_article(title=title, body="Old *body*.", status=ArticleStatus.PUBLISHED, slug=title.lower().replace(" ", "-"),
                        publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                        body_html="<p>Old <em>body</em>.</p>", excerpt="Old body.", word_count=2)


def a_change(article, editor, title="New title", minutes=90):
    return revisions.revision_create(article_id=article.pk, title=title, body="New **body**.", image_alt="",
                                     publish_at=timezone.now() + timedelta(minutes=minutes), actor=editor)


def a_release(editor, *, new=2, changed=()):
    release = releases.release_create(name="Launch", actor=editor)
    articles = [make_article(title=f"Story {i}") for i in range(new)]
    if articles:
        releases.release_add_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    changes = [a_change(article, editor) for article in changed]
    result = release_changes.release_add_changes(release_id=release.pk, revision_ids=[c.pk for c in changes],
                                                 actor=editor)
    assert (result.done, result.skipped) == ([c.pk for c in changes], [])
    return release, articles, changes


def claimed(editor, sent, **kw):
    release, articles, changes = a_release(editor, **kw)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(seconds=30), actor=editor)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PREPARING
    return release, articles, changes


def prepare(release, articles, changes):
    token = str(release.claim_token)
    ids = pipeline.step_process(article_ids=[a.pk for a in articles], token=token)
    ids = pipeline.step_thumbnails(article_ids=ids, token=token)
    releases.release_members_prepared(release_id=release.pk, token=token, article_ids=ids)
    ids = revisions.step_process(revision_ids=[c.pk for c in changes], token=token)
    ids = revisions.step_thumbnails(revision_ids=ids, token=token)
    return releases.release_members_prepared(release_id=release.pk, token=token, article_ids=[], revision_ids=ids)


def make_due(release):
    past = timezone.now() - timedelta(seconds=1)
    Release.objects.filter(pk=release.pk).update(publish_at=past)
    Article.objects.filter(release=release).update(publish_at=past)


def statuses(model, ids):
    return sorted(model.objects.filter(pk__in=ids).values_list("status", flat=True))


# --- Adding a change -------------------------------------------------------------------------------

def test_a_change_in_a_release_waits_for_it_and_is_never_claimed_alone(editor, sent):
    article = live_article()
    change = a_change(article, editor)
    assert change.status == RevisionStatus.SCHEDULED
    release, _, _ = a_release(editor, new=1)
    result = release_changes.release_add_changes(release_id=release.pk, revision_ids=[change.pk], actor=editor)
    assert (result.done, result.skipped) == ([change.pk], [])
    change.refresh_from_db()
    # A draft release: the change waits as a draft (it would otherwise go out alone at its own time).
    assert (change.status, change.release_id) == (RevisionStatus.DRAFT, release.pk)
    event = ArticleEvent.objects.filter(article=article).first()
    assert (event.action, event.note) == (ArticleEventAction.ADDED_TO_RELEASE,
                                          f"Change #{change.pk}: release “Launch” (#{release.pk})")
    assert ReleaseEvent.objects.filter(release=release).first().note == f"change #{change.pk}"

    when = timezone.now() + timedelta(hours=2)
    releases.release_schedule(release_id=release.pk, publish_at=when, actor=editor)
    change.refresh_from_db()
    assert (change.status, change.publish_at) == (RevisionStatus.IN_RELEASE, when)
    # Never alone: the editor's actions say why, and the scan does not claim it even when due.
    for action in (lambda: revisions.revision_schedule(revision_id=change.pk, actor=editor,
                                                       publish_at=timezone.now() + timedelta(hours=1)),
                   lambda: revisions.revision_publish_now(revision_id=change.pk, actor=editor)):
        with pytest.raises(TransitionError, match=f"The article has a change \\(#{change.pk}\\) in release "
                                                  f"#{release.pk}: it is applied with that release"):
            action()
    with pytest.raises(TransitionError, match=f"it is in release #{release.pk}; remove it from the release first"):
        revisions.revision_cancel(revision_id=change.pk, actor=editor)
    with pytest.raises(TransitionError, match="The article has a change"):
        a_change(article, editor, title="Another")
    assert ArticleRevision.objects.filter(article=article).count() == 1
    ArticleRevision.objects.filter(pk=change.pk).update(publish_at=timezone.now() - timedelta(seconds=1))
    assert revisions.revisions_claim_due(lookahead=0) is None
    assert REVISION_IN_RELEASE_REASON.startswith("it is in a scheduled release and is applied with it")

    # Unscheduled: back to draft with its release; removed: a draft change of its article again.
    releases.release_unschedule(release_id=release.pk, actor=editor)
    assert statuses(ArticleRevision, [change.pk]) == [RevisionStatus.DRAFT]
    result = release_changes.release_remove_changes(release_id=release.pk, revision_ids=[change.pk, 999999],
                                                    actor=editor)
    assert (result.done, result.skipped) == ([change.pk], [(999999, "it is not in this release")])
    change.refresh_from_db()
    assert (change.status, change.release_id) == (RevisionStatus.DRAFT, None)
    assert ArticleEvent.objects.filter(article=article).first().action == ArticleEventAction.REMOVED_FROM_RELEASE


def test_adding_a_change_joining_a_scheduled_release_holds_it_at_the_release_time(editor, sent):
    release, _, _ = a_release(editor, new=1)
    when = timezone.now() + timedelta(hours=2)
    releases.release_schedule(release_id=release.pk, publish_at=when, actor=editor)
    change = a_change(live_article(), editor)
    release_changes.release_add_changes(release_id=release.pk, revision_ids=[change.pk], actor=editor)
    change.refresh_from_db()
    assert (change.status, change.publish_at, change.release_id) == (RevisionStatus.IN_RELEASE, when, release.pk)


def test_what_cannot_join_a_release_is_refused_with_the_reason(editor, sent):
    first, second = live_article("First"), live_article("Second")
    release_a, _, [in_a] = a_release(editor, new=1, changed=[first])
    release_b = releases.release_create(name="Later", actor=editor)
    # A second change of the same article, made as a draft (restore).
    other = revisions.revision_restore(revision_id=in_a.pk, actor=editor)
    applied = revisions.revision_restore(revision_id=in_a.pk, actor=editor)
    ArticleRevision.objects.filter(pk=applied.pk).update(status=RevisionStatus.APPLIED)
    down = a_change(second, editor)
    Article.objects.filter(pk=second.pk).transition("unpublish_now", actor=editor)

    result = release_changes.release_add_changes(release_id=release_b.pk, actor=editor,
                                                 revision_ids=[in_a.pk, other.pk, applied.pk, down.pk, 424242])
    assert result.done == []
    assert dict(result.skipped) == {
        in_a.pk: f"it is in another release (#{release_a.pk}): remove it from that one first",
        other.pk: (f"its article already has a change (#{in_a.pk}) in release #{release_a.pk}, still to go live or "
                   "to roll back: two releases cannot touch the same article; remove it from that one first"),
        applied.pk: "it is applied: only a draft, scheduled or failed change can join a release",
        down.pk: "its article is expired, not live: a change is for a live article (add the article itself instead)",
        424242: "it no longer exists",
    }
    result = release_changes.release_add_changes(release_id=release_a.pk, revision_ids=[in_a.pk, other.pk],
                                                 actor=editor)
    assert dict(result.skipped) == {
        in_a.pk: "it is already in this release",
        other.pk: f"this release already changes that article (change #{in_a.pk}): one change per article"}
    # A live release with a rollback still to come holds its articles too.
    Release.objects.filter(pk=release_a.pk).update(status=ReleaseStatus.PUBLISHED,
                                                   unpublish_at=timezone.now() + timedelta(days=1))
    ArticleRevision.objects.filter(pk=in_a.pk).update(status=RevisionStatus.APPLIED)
    assert release_changes.release_add_changes(release_id=release_b.pk, revision_ids=[other.pk],
                                               actor=editor).skipped[0][1].startswith(
        f"its article already has a change (#{in_a.pk}) in release #{release_a.pk}")
    with pytest.raises(ReleaseChangeError, match="The changes of release “Launch” cannot be edited: it is published"):
        release_changes.release_add_changes(release_id=release_a.pk, revision_ids=[other.pk], actor=editor)


# --- The claim, the flip --------------------------------------------------------------------------

def test_the_flip_applies_the_changes_and_puts_the_new_articles_live_in_one_transaction(
        editor, sent, django_capture_on_commit_callbacks):
    endpoint = Endpoint.objects.create(url="https://cdn.example.com/hook", events=["published", "updated"])
    changed = [live_article("Old one"), live_article("Old two")]
    with django_capture_on_commit_callbacks(execute=True):
        release, articles, changes = claimed(editor, sent, new=2, changed=changed)
    token = str(release.claim_token)
    # Claimed with the release, under its token, with no lease of their own (the release's covers them).
    assert set(ArticleRevision.objects.filter(release=release).values_list("status", "claim_token",
                                                                           "lease_expires_at")) == {
        (RevisionStatus.PUBLISHING, release.claim_token, None)}
    assert sent[-1] == ("publish_release", {"release_id": release.pk, "token": token,
                                            "article_ids": [a.pk for a in articles], "go_live_at": release.publish_at,
                                            "revision_ids": [c.pk for c in changes]})
    assert prepare(release, articles, changes) is True
    # Prepared into the revisions; the live articles untouched until the flip.
    assert Article.objects.get(pk=changed[0].pk).title == "Old one"
    make_due(release)
    flip = releases.release_flip(release_id=release.pk, token=token)

    assert (flip.outcome, sorted(flip.published)) == ("published", [a.pk for a in articles])
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PUBLISHED
    for article, change in zip(changed, changes):
        article.refresh_from_db()
        change.refresh_from_db()
        assert (article.status, article.title, article.body_html) == (
            ArticleStatus.PUBLISHED, "New title", "<p>New <strong>body</strong>.</p>")
        assert (change.status, change.applied_at) == (RevisionStatus.APPLIED, release.published_at)
        # One instant for the lot: the new articles' published_at is the changed ones' revised_at.
        assert article.revised_at == release.published_at
        # What the change replaced, kept for the rollback.
        assert (change.previous_content["body_html"], change.previous_content["revised_at"]) == (
            "<p>Old <em>body</em>.</p>", None)
    assert [c.previous_content["title"] for c in changes] == ["Old one", "Old two"]
    assert set(Article.objects.filter(release=release).values_list("status", "published_at")) == {
        (ArticleStatus.PUBLISHED, release.published_at)}
    assert ReleaseEvent.objects.filter(release=release, action="published").get().note == (
        "2 articles went live together, 2 changes applied.")
    assert sorted(Delivery.objects.filter(endpoint=endpoint).values_list("event", "article_id")) == sorted(
        [("published", a.pk) for a in articles] + [("updated", a.pk) for a in changed])
    # Exactly once: another flip does nothing.
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "done"
    assert ArticleEvent.objects.filter(action=ArticleEventAction.CHANGE_APPLIED).count() == 2


def test_a_flip_waits_for_the_changes_to_be_prepared(editor, sent):
    release, articles, changes = claimed(editor, sent, new=1, changed=[live_article()])
    token = str(release.claim_token)
    ids = pipeline.step_thumbnails(article_ids=pipeline.step_process(article_ids=[articles[0].pk], token=token),
                                   token=token)
    releases.release_members_prepared(release_id=release.pk, token=token, article_ids=ids)
    make_due(release)
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "not_ready"
    assert statuses(ArticleRevision, [changes[0].pk]) == [RevisionStatus.PUBLISHING]
    assert not Article.objects.filter(pk=articles[0].pk, status=ArticleStatus.PUBLISHED).exists()


def test_a_change_that_fails_preparation_blocks_the_release(editor, sent, django_capture_on_commit_callbacks):
    article = live_article()
    release, articles, [change] = claimed(editor, sent, new=2, changed=[article])
    broken = ContentFile(b"not an image at all", name="broken.png")
    ArticleRevision.objects.filter(pk=change.pk).update(image=change.image.storage.save("revisions/broken.png",
                                                                                        broken))
    with django_capture_on_commit_callbacks(execute=True):
        assert prepare(release, articles, [change]) is False
    release.refresh_from_db()
    assert (release.status, release.blocked_article_id) == (ReleaseStatus.BLOCKED, article.pk)
    assert release.last_error.startswith(f"Change #{change.pk} to “Old title” could not be prepared: thumbnail: ")
    # Nothing of it went live or changed; everything held with the release, the change with its reason.
    assert statuses(Article, [a.pk for a in articles]) == [ArticleStatus.IN_RELEASE] * 2
    change.refresh_from_db()
    assert change.status == RevisionStatus.IN_RELEASE and change.last_error.startswith("thumbnail: ")
    assert Article.objects.get(pk=article.pk).title == "Old title"
    # The scheduler is mailed by the release's alert; the change's own failure mail is not sent.
    assert ("release_alert", {"release_id": release.pk}) in sent
    assert not [call for call in sent if call[0] == "revision_failure_alerts"]
    # Fixed and rescheduled: the change goes with the release again.
    ArticleRevision.objects.filter(pk=change.pk).update(image="")
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(hours=1), actor=editor)
    assert statuses(ArticleRevision, [change.pk]) == [RevisionStatus.IN_RELEASE]


def test_a_change_whose_article_was_taken_down_blocks_the_flip(editor, sent):
    article = live_article()
    release, articles, changes = claimed(editor, sent, new=1, changed=[article])
    assert prepare(release, articles, changes) is True
    Article.objects.filter(pk=article.pk).transition("unpublish_now", actor=editor)
    make_due(release)
    assert releases.release_flip(release_id=release.pk, token=str(release.claim_token)).outcome == "blocked"
    release.refresh_from_db()
    assert release.status == ReleaseStatus.BLOCKED
    assert release.last_error == (f"change #{changes[0].pk} to “Old title” cannot be applied: the article is no "
                                  "longer live with the text the change was made from. Remove the change (or make "
                                  "it again) and reschedule.")
    assert not Article.objects.filter(pk=articles[0].pk, status=ArticleStatus.PUBLISHED).exists()


# --- Rollback ---------------------------------------------------------------------------------------

def test_the_rollback_restores_the_previous_versions_and_takes_the_new_articles_down(editor, sent):
    endpoint = Endpoint.objects.create(url="https://cdn.example.com/hook", events=["updated", "unpublished"])
    changed = live_article()
    release, articles, [change] = claimed(editor, sent, new=2, changed=[changed])
    assert prepare(release, articles, [change]) is True
    make_due(release)
    assert releases.release_flip(release_id=release.pk, token=str(release.claim_token)).outcome == "published"
    assert Article.objects.get(pk=changed.pk).title == "New title"
    Delivery.objects.all().delete()

    # The rollback time passes (by the database clock).
    past = timezone.now() - timedelta(milliseconds=1)
    Release.objects.filter(pk=release.pk).update(unpublish_at=past)
    Article.objects.filter(release=release).update(unpublish_at=past)
    assert releases.releases_roll_back_due() == 1

    changed.refresh_from_db()
    assert (changed.status, changed.title, changed.body, changed.body_html, changed.excerpt, changed.revised_at) == (
        ArticleStatus.PUBLISHED, "Old title", "Old *body*.", "<p>Old <em>body</em>.</p>", "Old body.", None)
    change.refresh_from_db()
    assert change.status == RevisionStatus.ROLLED_BACK
    assert statuses(Article, [a.pk for a in articles]) == [ArticleStatus.EXPIRED] * 2
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK
    event = ReleaseEvent.objects.filter(release=release).first()
    assert (event.action, event.note) == ("rolled_back", "Its rollback time passed: its articles were taken down; "
                                                         f"previous versions restored: article #{changed.pk}.")
    assert ArticleEvent.objects.filter(article=changed).first().action == ArticleEventAction.CHANGE_ROLLED_BACK
    assert sorted(Delivery.objects.filter(endpoint=endpoint).values_list("event", "article_id")) == sorted(
        [("unpublished", a.pk) for a in articles] + [("updated", changed.pk)])
    assert releases.releases_roll_back_due() == 0


def test_the_rollback_is_sent_for_its_second_and_rolls_the_release_back_once(editor, sent, monkeypatch, settings,
                                                                            django_capture_on_commit_callbacks):
    rollbacks = []
    monkeypatch.setattr(dispatch, "release_roll_back", lambda **kw: rollbacks.append(kw))
    settings.PUBLISHER_RELEASE_LOOKAHEAD = 60
    changed = live_article()
    release, articles, [change] = claimed(editor, sent, new=1, changed=[changed])
    assert prepare(release, articles, [change]) is True
    make_due(release)
    at = timezone.now() + timedelta(seconds=40)
    Release.objects.filter(pk=release.pk).update(unpublish_at=at)
    Article.objects.filter(release=release).update(unpublish_at=at)

    # The flip sends the rollback (due within the look-ahead) with its time; the scan does not again.
    with django_capture_on_commit_callbacks(execute=True):
        assert releases.release_flip(release_id=release.pk, token=str(release.claim_token)).outcome == "published"
        assert releases.releases_dispatch_rollbacks_due() == 0
    assert rollbacks == [{"release_id": release.pk, "at": at}]
    # Delivered early (clock skew): it waits, by the database clock; nothing is rolled back.
    early = releases.release_roll_back(release_id=release.pk, at=at)
    assert early.done == 0 and 0.05 <= early.wait <= 5.0
    assert Article.objects.get(pk=changed.pk).title == "New title"

    # A new rollback time: sent again for it; the message for the old time then does nothing.
    later = timezone.now() + timedelta(seconds=50)
    with django_capture_on_commit_callbacks(execute=True):
        releases.release_set_rollback(release_id=release.pk, unpublish_at=later, actor=editor)
    assert rollbacks[1:] == [{"release_id": release.pk, "at": later}]
    past = timezone.now() - timedelta(milliseconds=1)
    Release.objects.filter(pk=release.pk).update(unpublish_at=past)
    Article.objects.filter(release=release).update(unpublish_at=past)
    assert releases.release_roll_back(release_id=release.pk, at=at) == releases.RollBack(0)

    # On its second: rolled back once, whoever comes second (a redelivery, the scan) finds it done.
    assert releases.release_roll_back(release_id=release.pk, at=past) == releases.RollBack(1)
    assert releases.release_roll_back(release_id=release.pk, at=past) == releases.RollBack(0)
    assert releases.releases_roll_back_due() == 0
    assert Article.objects.get(pk=changed.pk).title == "Old title"
    assert statuses(Article, [a.pk for a in articles]) == [ArticleStatus.EXPIRED]
    assert ReleaseEvent.objects.filter(release=release, action="rolled_back").count() == 1


def test_a_rollback_leaves_an_article_changed_since_as_it_is(editor, sent):
    changed = live_article()
    release, articles, [change] = claimed(editor, sent, new=1, changed=[changed])
    prepare(release, articles, [change])
    make_due(release)
    releases.release_flip(release_id=release.pk, token=str(release.claim_token))
    Article.objects.filter(pk=changed.pk).update(title="Edited after the release")
    Release.objects.filter(pk=release.pk).update(unpublish_at=timezone.now() - timedelta(milliseconds=1))
    assert releases.releases_roll_back_due() == 1
    assert Article.objects.get(pk=changed.pk).title == "Edited after the release"
    assert statuses(ArticleRevision, [change.pk]) == [RevisionStatus.APPLIED]
    assert ReleaseEvent.objects.filter(release=release).first().note == (
        "Its rollback time passed: its articles were taken down; change #%d not restored: the article was taken "
        "down or changed again since." % change.pk)


def test_the_sweeper_reclaims_a_lost_release_with_its_changes(editor, sent):
    release, articles, [change] = claimed(editor, sent, new=1, changed=[live_article()])
    old = str(release.claim_token)
    Release.objects.filter(pk=release.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    # The changes' own sweeper leaves a release's change alone: the release holds the lease.
    assert revisions.revisions_reclaim_expired_leases() == (None, 0)
    assert releases.releases_reclaim_expired_leases() == ([release.pk], 0)
    release.refresh_from_db()
    change.refresh_from_db()
    assert (change.status, str(change.claim_token)) == (RevisionStatus.PUBLISHING, str(release.claim_token))
    assert str(release.claim_token) != old
    # The old claim's steps find nothing; the new one prepares it.
    assert revisions.step_process(revision_ids=[change.pk], token=old) == []
    assert prepare(release, articles, [change]) is True
    make_due(release)
    assert releases.release_flip(release_id=release.pk, token=str(release.claim_token)).outcome == "published"
    assert statuses(ArticleRevision, [change.pk]) == [RevisionStatus.APPLIED]
