"""Releases (publisher.releases): members, scheduling, the claim, the one-transaction flip,
blocking, the sweeper and the rollback, against the real database; the broker is replaced by a
record of what would have been sent."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.utils import timezone

from publisher import alerts, dispatch, pipeline, releases, services, states
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus, Release, ReleaseEvent
from publisher.releases import ReleaseError
from publisher.states import IN_RELEASE_REASON, RELEASE_ACTIONS, RELEASE_TRANSITIONS, ReleaseStatus
from publisher.webhooks.models import Delivery, Endpoint
from tests import factories
from tests.factories import make_article, make_user


@pytest.fixture
def sent(monkeypatch):
    """What the release services would have sent to the broker, in order."""
    calls = []
    monkeypatch.setattr(dispatch, "publish_release", lambda **kw: calls.append(("prepare", kw)))
    monkeypatch.setattr(dispatch, "release_flip", lambda **kw: calls.append(("flip", kw)))
    monkeypatch.setattr(dispatch, "release_alert", lambda **kw: calls.append(("alert", kw)))
    monkeypatch.setattr(dispatch, "failure_alerts", lambda **kw: calls.append(("failure_alert", kw)))
    monkeypatch.setattr(dispatch, "publish_claimed", lambda **kw: calls.append(("article", kw)))
    return calls


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Editors", email="edith@example.com")


def a_release(editor, n=3, **article_fields):
    release = releases.release_create(name="Embargo package", notes="Five stories at six", actor=editor)
    articles = [make_article(title=f"Story {i}", **article_fields) for i in range(n)]
    result = releases.release_add_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    assert result.done == [a.pk for a in articles] and result.skipped == []
    return release, articles


def statuses(release):
    return sorted(Article.objects.filter(release=release).values_list("status", flat=True))


# --- The declaration ------------------------------------------------------------------------------

def test_release_transitions_are_declared_in_the_one_state_machine():
    states.validate(RELEASE_TRANSITIONS, RELEASE_ACTIONS, tuple(ReleaseStatus.values), states.RELEASE_INITIAL,
                    groups=())
    assert {name: (t.sources, t.target) for name, t in RELEASE_TRANSITIONS.items()} == {
        "schedule": (("draft", "scheduled", "preparing", "blocked"), "scheduled"),
        "unschedule": (("scheduled", "preparing", "blocked"), "draft"),
        "claim": (("scheduled",), "preparing"),
        "reclaim": (("preparing",), None),
        "publish": (("preparing",), "published"),
        "block": (("preparing",), "blocked"),
        "change_rollback": (("published",), None),
        "roll_back": (("published",), "rolled_back"),
    }
    # A member is never scheduled, published or taken down alone: the actions say why.
    for action in ("schedule", "unschedule", "publish_now"):
        assert states.ACTIONS[action].reason(ArticleStatus.IN_RELEASE) == IN_RELEASE_REASON
    assert states.ACTIONS["retry"].reason(ArticleStatus.IN_RELEASE) == (
        "it is in a scheduled release, not failed: only failed or missed articles can be retried")


def test_release_status_is_written_by_its_transition_only(db):
    release = Release.objects.create(name="R")
    with pytest.raises(TypeError, match="sets status from the declaration"):
        Release.objects.transition("claim", status=ReleaseStatus.PUBLISHED)
    assert Release.objects.filter(pk=release.pk).transition("publish") == 0  # compare-and-set: not preparing
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.DRAFT


# --- Members --------------------------------------------------------------------------------------

def test_members_join_one_release_and_only_when_not_live(editor, sent):
    release, (draft, *_) = a_release(editor, n=1)
    other = releases.release_create(name="Other", actor=editor)
    scheduled = make_article(title="Scheduled alone")
    services.article_schedule(article_id=scheduled.pk, publish_at=timezone.now() + timedelta(hours=2), actor=editor)
    live = make_article(title="Live", status=ArticleStatus.PUBLISHED, publish_at=timezone.now(),
                        published_at=timezone.now())

    result = releases.release_add_members(release_id=other.pk, article_ids=[draft.pk, scheduled.pk, live.pk, 999999],
                                          actor=editor)

    assert result.done == [scheduled.pk]
    assert result.skipped == [
        (draft.pk, f"it is in another release (#{release.pk}): remove it from that one first"),
        (live.pk, "it is published: only articles not live can join a release"),
        (999999, "it no longer exists"),
    ]
    scheduled.refresh_from_db()
    # Joining a draft release, a scheduled article goes back to draft: it must not go out alone.
    assert (scheduled.status, scheduled.release_id) == (ArticleStatus.DRAFT, other.pk)
    assert list(ArticleEvent.objects.filter(article=scheduled).values_list("action", flat=True)[:2]) == [
        ArticleEventAction.UNSCHEDULED, ArticleEventAction.ADDED_TO_RELEASE]
    assert [e.action for e in ReleaseEvent.objects.filter(release=other)] == ["members_added", "created"]


def test_scheduling_a_release_schedules_every_member_and_none_can_go_alone(editor, sent):
    release, articles = a_release(editor)
    when = timezone.now() + timedelta(hours=3)
    rollback = when + timedelta(days=1)

    release = releases.release_schedule(release_id=release.pk, publish_at=when, unpublish_at=rollback, actor=editor)

    assert (release.status, release.publish_at, release.unpublish_at, release.scheduled_by) == (
        ReleaseStatus.SCHEDULED, when, rollback, editor)
    assert set(Article.objects.filter(release=release).values_list("status", "publish_at", "unpublish_at")) == {
        (ArticleStatus.IN_RELEASE, when, rollback)}
    assert all(a.slug for a in Article.objects.filter(release=release))
    event = ArticleEvent.objects.filter(article=articles[0]).first()
    assert (event.action, event.actor, event.publish_at) == (ArticleEventAction.SCHEDULED, editor, when)
    assert ReleaseEvent.objects.filter(release=release).first().action == "scheduled"
    # Not claimed alone by the scan, not scheduled or published alone by an editor.
    assert services.articles_claim_due(lookahead=10 * 3600) is None
    bulk = services.articles_publish_now(article_ids=[articles[0].pk], actor=editor)
    assert [s.reason for s in bulk.skipped] == [IN_RELEASE_REASON]
    with pytest.raises(services.TransitionError, match="it is in a scheduled release and goes live with it"):
        services.article_schedule(article_id=articles[1].pk, publish_at=when + timedelta(hours=1), actor=editor)
    assert sent == []


def test_a_release_is_refused_with_the_reasons(editor, sent):
    empty = releases.release_create(name="Empty", actor=editor)
    with pytest.raises(ReleaseError, match="has no articles"):
        releases.release_schedule(release_id=empty.pk, publish_at=timezone.now() + timedelta(hours=1), actor=editor)
    release, (first, second, _) = a_release(editor)
    Article.objects.filter(pk=second.pk).update(body="")
    with pytest.raises(ValidationError, match=rf"“Story 1” \(#{second.pk}\):"):
        releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(hours=1), actor=editor)
    when = timezone.now() + timedelta(hours=1)
    with pytest.raises(ValidationError, match="must be after the publish time"):
        releases.release_schedule(release_id=release.pk, publish_at=when, unpublish_at=when, actor=editor)
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.DRAFT
    assert statuses(release) == [ArticleStatus.DRAFT] * 3


def test_unscheduling_sends_every_member_back_to_draft(editor, sent):
    release, articles = a_release(editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(hours=1), actor=editor)
    release = releases.release_unschedule(release_id=release.pk, actor=editor)
    assert release.status == ReleaseStatus.DRAFT
    assert statuses(release) == [ArticleStatus.DRAFT] * 3
    assert ArticleEvent.objects.filter(article=articles[0]).first().action == ArticleEventAction.UNSCHEDULED
    with pytest.raises(ReleaseError, match="it is already a draft"):
        releases.release_unschedule(release_id=release.pk, actor=editor)


def test_removing_a_member_of_a_scheduled_release_makes_it_a_draft(editor, sent):
    release, (first, *_) = a_release(editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(hours=1), actor=editor)
    result = releases.release_remove_members(release_id=release.pk, article_ids=[first.pk, 424242], actor=editor)
    assert result.done == [first.pk] and result.skipped == [(424242, "it is not in this release")]
    first.refresh_from_db()
    assert (first.status, first.release_id) == (ArticleStatus.DRAFT, None)
    assert ArticleEvent.objects.filter(article=first).first().action == ArticleEventAction.REMOVED_FROM_RELEASE


# --- Claim, preparation, flip ------------------------------------------------------------------------

def claimed(editor, sent, n=3, seconds=30, **fields):
    release, articles = a_release(editor, n=n, **fields)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(seconds=seconds),
                              actor=editor)
    release.refresh_from_db()
    return release, articles


def prepare(release, token, ids):
    ids = pipeline.step_process(article_ids=ids, token=token)
    ids = pipeline.step_thumbnails(article_ids=ids, token=token)
    return releases.release_members_prepared(release_id=release.pk, token=token, article_ids=ids)


def make_due(release):
    past = timezone.now() - timedelta(seconds=1)
    Release.objects.filter(pk=release.pk).update(publish_at=past)
    Article.objects.filter(release=release).update(publish_at=past)


def test_the_scan_claims_the_release_and_its_members_under_one_token(editor, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        release, articles = claimed(editor, sent)  # within the release look-ahead: claimed when scheduled
    assert release.status == ReleaseStatus.PREPARING and release.attempts == 1
    token = str(release.claim_token)
    assert set(Article.objects.filter(release=release).values_list("status", "claim_token")) == {
        (ArticleStatus.PUBLISHING, release.claim_token)}
    assert releases.releases_claim_due() == []  # once
    assert sent[-1] == ("prepare", {"release_id": release.pk, "token": token,
                                    "article_ids": sorted(a.pk for a in articles), "go_live_at": release.publish_at,
                                    "revision_ids": []})
    # The article sweeper leaves members alone: the release holds the lease.
    Article.objects.filter(release=release).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert services.articles_reclaim_expired_leases() == (None, 0)


def test_the_flip_puts_every_member_live_in_one_transaction(editor, sent, django_capture_on_commit_callbacks):
    endpoint = Endpoint.objects.create(url="https://cdn.example.com/hook", events=["published"])
    release, articles = claimed(editor, sent)
    token = str(release.claim_token)
    ids = sorted(a.pk for a in articles)
    assert prepare(release, token, ids) is True
    assert sent[-1] == ("flip", {"release_id": release.pk, "token": token, "go_live_at": release.publish_at})
    # Never early by the database clock.
    flip = releases.release_flip(release_id=release.pk, token=token)
    assert flip.outcome == "waiting" and 0 < flip.wait <= 5.0 and flip.published == []
    assert statuses(release) == [ArticleStatus.PUBLISHING] * 3

    make_due(release)
    flip = releases.release_flip(release_id=release.pk, token=token)

    assert (sorted(flip.published), flip.outcome) == (ids, "published")
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PUBLISHED and release.claim_token == release.claim_token
    published_at = set(Article.objects.filter(release=release).values_list("status", "published_at"))
    assert len(published_at) == 1 and next(iter(published_at))[0] == ArticleStatus.PUBLISHED
    assert release.published_at == next(iter(published_at))[1]
    assert sorted(Delivery.objects.filter(endpoint=endpoint).values_list("article_id", flat=True)) == ids
    assert ReleaseEvent.objects.filter(release=release).first().note == "3 articles went live together."
    # Exactly once: a second flip (redelivered, or another chunk's) does nothing.
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "done"
    assert Delivery.objects.filter(endpoint=endpoint).count() == 3


def test_a_flip_before_a_chunk_is_prepared_leaves_it_to_that_chunk(editor, sent, settings):
    release, articles = claimed(editor, sent)
    token = str(release.claim_token)
    ids = sorted(a.pk for a in articles)
    prepare(release, token, ids[:2])
    make_due(release)
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "not_ready"
    assert statuses(release) == [ArticleStatus.PUBLISHING] * 3
    prepare(release, token, ids[2:])  # the last chunk's own flip finds everything ready
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "published"
    assert statuses(release) == [ArticleStatus.PUBLISHED] * 3


def test_a_member_that_fails_preparation_blocks_the_release(editor, sent, django_capture_on_commit_callbacks,
                                                          settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    release, articles = claimed(editor, sent)
    broken = articles[1]
    broken.image.save("broken.png", ContentFile(b"not an image at all"), save=False)
    Article.objects.filter(pk=broken.pk).update(image=broken.image.name)
    token = str(release.claim_token)
    with django_capture_on_commit_callbacks(execute=True):
        assert prepare(release, token, sorted(a.pk for a in articles)) is False

    release.refresh_from_db()
    assert release.status == ReleaseStatus.BLOCKED and release.blocked_article_id == broken.pk
    assert release.last_error.startswith(f"“Story 1” (#{broken.pk}) could not be prepared: thumbnail: ")
    # Nothing of it is live; every member is held with its release, the broken one with its reason.
    assert statuses(release) == [ArticleStatus.IN_RELEASE] * 3
    assert Article.objects.get(pk=broken.pk).last_error.startswith("thumbnail: ")
    assert not Article.objects.visible().exists()
    assert ("alert", {"release_id": release.pk}) in sent
    # The article's own failure mail is not sent for a member: the release's mail says it.
    assert alerts.failure_alerts_send(article_ids=[broken.pk]) == 0
    from django.core import mail
    assert releases.release_alert_send(release_id=release.pk) == 1
    [message] = mail.outbox
    assert (message.to, message.subject) == (["edith@example.com"], "Release blocked: Embargo package")
    assert f"Reason: “Story 1” (#{broken.pk}) could not be prepared: thumbnail: " in message.body
    # A flip still in the broker finds the claim gone and does nothing.
    make_due(release)
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "done"
    # Fixed and rescheduled: every member scheduled with it again.
    Article.objects.filter(pk=broken.pk).update(image="")
    release = releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(hours=1),
                                        actor=editor)
    assert (release.status, release.last_error, release.blocked_article_id) == (ReleaseStatus.SCHEDULED, "", None)
    assert statuses(release) == [ArticleStatus.IN_RELEASE] * 3
    assert Article.objects.get(pk=broken.pk).last_error == ""


def test_the_editor_wins_over_a_release_being_prepared(editor, sent):
    release, articles = claimed(editor, sent)
    old = str(release.claim_token)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(hours=2), actor=editor)
    release.refresh_from_db()
    assert (release.status, release.claim_token) == (ReleaseStatus.SCHEDULED, None)
    assert statuses(release) == [ArticleStatus.IN_RELEASE] * 3
    assert prepare(release, old, [a.pk for a in articles]) is False
    assert releases.release_flip(release_id=release.pk, token=old).outcome == "done"
    assert statuses(release) == [ArticleStatus.IN_RELEASE] * 3


def test_the_sweeper_reclaims_a_lost_release_and_gives_up_after_the_attempts(editor, sent, settings,
                                                                            django_capture_on_commit_callbacks):
    settings.PUBLISHER_MAX_ATTEMPTS = 2
    release, articles = claimed(editor, sent)
    old = str(release.claim_token)
    prepare(release, old, [a.pk for a in articles])
    Release.objects.filter(pk=release.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert releases.releases_reclaim_expired_leases() == ([release.pk], 0)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.PREPARING and str(release.claim_token) != old and release.attempts == 2
    # Everything was prepared under the lost claim: only the flip is sent again.
    assert sent[-1] == ("prepare", {"release_id": release.pk, "token": str(release.claim_token), "article_ids": [],
                                    "go_live_at": release.publish_at, "revision_ids": []})
    assert releases.release_flip(release_id=release.pk, token=old).outcome == "done"
    Release.objects.filter(pk=release.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert releases.releases_reclaim_expired_leases() == ([], 1)
    release.refresh_from_db()
    assert release.status == ReleaseStatus.BLOCKED and release.last_error.startswith("Gave up after 2 attempts")
    assert statuses(release) == [ArticleStatus.IN_RELEASE] * 3


def test_the_rollback_takes_members_down_at_its_time(editor, sent):
    release, articles = claimed(editor, sent)
    token = str(release.claim_token)
    prepare(release, token, [a.pk for a in articles])
    make_due(release)
    releases.release_flip(release_id=release.pk, token=token)
    with pytest.raises(ValidationError, match="has already passed"):
        releases.release_set_rollback(release_id=release.pk, unpublish_at=timezone.now() - timedelta(seconds=1),
                                      actor=editor)
    rollback = timezone.now() + timedelta(hours=1)
    releases.release_set_rollback(release_id=release.pk, unpublish_at=rollback, actor=editor)
    assert set(Article.objects.filter(release=release).values_list("unpublish_at", flat=True)) == {rollback}
    assert ArticleEvent.objects.filter(article=articles[0]).first().action == ArticleEventAction.UNPUBLISH_CHANGED
    assert releases.releases_roll_back_due() == 0
    past = timezone.now() - timedelta(seconds=1)
    Release.objects.filter(pk=release.pk).update(unpublish_at=past)
    Article.objects.filter(release=release).update(unpublish_at=past)
    assert not Article.objects.visible().exists()  # hidden on its second, whether or not a scan ran
    assert services.articles_take_down_expired() == 3
    assert releases.releases_roll_back_due() == 1
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.ROLLED_BACK
    assert statuses(release) == [ArticleStatus.EXPIRED] * 3


def test_a_release_whose_rollback_passed_before_it_went_live_is_not_put_live(editor, sent):
    release, articles = claimed(editor, sent)
    token = str(release.claim_token)
    prepare(release, token, [a.pk for a in articles])
    past = timezone.now() - timedelta(seconds=2)
    Release.objects.filter(pk=release.pk).update(publish_at=past, unpublish_at=past + timedelta(seconds=1))
    assert releases.release_flip(release_id=release.pk, token=token).outcome == "blocked"
    release.refresh_from_db()
    assert release.status == ReleaseStatus.BLOCKED and release.last_error.startswith(
        "Not published: its rollback time passed before it could go live")
    assert statuses(release) == [ArticleStatus.IN_RELEASE] * 3
    assert not Article.objects.filter(published_at__isnull=False).exists()


def test_the_month_calendar_does_not_warn_about_a_release_going_out_together(editor, sent):
    from zoneinfo import ZoneInfo

    from publisher import selectors
    when = timezone.now() + timedelta(days=1)
    release, articles = a_release(editor)
    releases.release_schedule(release_id=release.pk, publish_at=when, actor=editor)
    zone = ZoneInfo("UTC")
    calendar = selectors.articles_month(zone=zone, first=when.date().replace(day=1))
    assert calendar.conflicts == []
    days = {day: items for week in calendar.weeks for cell in week if cell for day, items in [cell]}
    assert days[when.date()] == []  # listed with their release, not a second time on their own
    [item] = calendar.releases[when.date()]
    assert (item.release.pk, item.release.member_count) == (release.pk, 3)
    assert [a.pk for a in item.members] == sorted(a.pk for a in articles)
