"""Changes to live articles (publisher.revisions): the editor's actions, the scan's claim and
sweeper, and the pipeline's steps on revisions, called here in-process (the real worker and
beat run them in tests/integration/test_revisions.py)."""

import io
import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from publisher import dispatch, revisions
from publisher.models import Article, ArticleEvent, ArticleRevision, ArticleStatus
from publisher.schedule_rules import ScheduleErrors
from publisher.services import TransitionError
from publisher.states import RevisionStatus
from publisher.webhooks.models import Delivery, Endpoint


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
def sent(monkeypatch):
    """What the revision services would have sent to the broker, in order."""
    calls = []
    monkeypatch.setattr(dispatch, "revisions_claimed",
                        lambda *, token, due, chunk_size=None: calls.append(("claimed", token, list(due), chunk_size)))
    monkeypatch.setattr(dispatch, "revision_failure_alerts",
                        lambda *, revision_ids: calls.append(("alert", list(revision_ids))))
    return calls


@pytest.fixture
def editor(db):
    return get_user_model().objects.create_user("ed", email="ed@example.com", password="x")


@pytest.fixture
def live(article_factory):
    now = timezone.now()
    return article_factory(title="Old title", body="Old *body*.", status=ArticleStatus.PUBLISHED,
                           publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                           slug="old-title", body_html="<p>Old <em>body</em>.</p>", excerpt="Old body.", word_count=2)


def _schedule(live, editor, *, minutes=60, **content):
    content.setdefault("title", "New title")
    content.setdefault("body", "New **body**.")
    content.setdefault("image_alt", "")
    return revisions.revision_create(article_id=live.pk, publish_at=timezone.now() + timedelta(minutes=minutes),
                                     actor=editor, **content)


def _claim_now(revision) -> str:
    """Make the scheduled change due now and claim it as the scan would."""
    ArticleRevision.objects.filter(pk=revision.pk).update(publish_at=timezone.now() - timedelta(milliseconds=10))
    claim = revisions.revisions_claim_due(lookahead=0)
    assert claim is not None and claim.article_ids == [revision.pk]
    return claim.token


def _prepare(revision_id: int, token: str) -> None:
    assert revisions.step_process(revision_ids=[revision_id], token=token) == [revision_id]
    assert revisions.step_thumbnails(revision_ids=[revision_id], token=token) == [revision_id]


# --- editor actions --------------------------------------------------------------------------------

def test_a_scheduled_change_is_frozen_and_leaves_the_live_article_alone(live, editor, sent):
    revision = _schedule(live, editor)
    assert revision.status == RevisionStatus.SCHEDULED
    assert (revision.title, revision.body, revision.base_title, revision.base_body, revision.author) == (
        "New title", "New **body**.", "Old title", "Old *body*.", editor)
    assert revision.immediate is False and revision.notify_subscribers is False
    live.refresh_from_db()
    assert (live.title, live.body, live.body_html, live.revised_at) == ("Old title", "Old *body*.",
                                                                        "<p>Old <em>body</em>.</p>", None)
    event = ArticleEvent.objects.get(article=live)
    assert (event.action, event.actor, event.publish_at, event.note) == (
        "change_scheduled", editor, revision.publish_at, f"Change #{revision.pk}")
    assert sent == [], "an hour ahead: left to the scan"


def test_a_change_needs_a_time_ahead_and_a_live_article(live, editor, article_factory, sent):
    with pytest.raises(ScheduleErrors) as error:
        _schedule(live, editor, minutes=-1)
    assert error.value.codes == ["change_time_passed"]
    Article.objects.filter(pk=live.pk).update(unpublish_at=timezone.now() + timedelta(minutes=30))
    with pytest.raises(ScheduleErrors) as error:
        _schedule(live, editor, minutes=31)
    assert error.value.codes == ["change_after_unpublish"]
    draft = article_factory(title="Draft")
    with pytest.raises(TransitionError, match=f"Article #{draft.pk} is draft, not live"):
        _schedule(draft, editor)
    with pytest.raises(ScheduleErrors) as error:
        _schedule(live, editor, body="  ")
    assert error.value.codes == ["missing_body"]
    assert not ArticleRevision.objects.exists()


def test_a_new_change_replaces_the_pending_one(live, editor, sent):
    first = _schedule(live, editor, minutes=60)
    second = _schedule(live, editor, minutes=90, title="Second")
    first.refresh_from_db()
    assert (first.status, first.last_error) == (RevisionStatus.CANCELLED, "Replaced by a newer change.")
    assert second.status == RevisionStatus.SCHEDULED
    assert list(ArticleEvent.objects.filter(article=live).order_by("id").values_list("action", "note")) == [
        ("change_scheduled", f"Change #{first.pk}"),
        ("change_cancelled", f"Change #{first.pk}: Replaced by a newer change."),
        ("change_scheduled", f"Change #{second.pk}"),
    ]


def test_reschedule_and_cancel(live, editor, sent):
    revision = _schedule(live, editor, minutes=60)
    later = timezone.now() + timedelta(hours=3)
    revision = revisions.revision_schedule(revision_id=revision.pk, publish_at=later, actor=editor)
    assert (revision.status, revision.publish_at) == (RevisionStatus.SCHEDULED, later)
    revision = revisions.revision_cancel(revision_id=revision.pk, actor=editor)
    assert revision.status == RevisionStatus.CANCELLED
    with pytest.raises(TransitionError, match=f"Cannot cancel change #{revision.pk}: it is cancelled"):
        revisions.revision_cancel(revision_id=revision.pk, actor=editor)
    assert list(ArticleEvent.objects.filter(article=live).order_by("id").values_list("action", flat=True)) == [
        "change_scheduled", "change_rescheduled", "change_cancelled"]


def test_publish_now_claims_it_and_dispatches_after_commit(live, editor, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        revision = revisions.revision_create(article_id=live.pk, title="Now", body="Now.", image_alt="",
                                             publish_at=None, notify_subscribers=True, actor=editor)
    assert revision.status == RevisionStatus.PUBLISHING and revision.immediate and revision.notify_subscribers
    assert revision.attempts == 1 and revision.claim_token is not None
    assert sent == [("claimed", str(revision.claim_token), [(revision.pk, revision.publish_at)], None)]
    assert ArticleEvent.objects.get(article=live).action == "change_published_now"


def test_a_change_due_within_the_look_ahead_is_claimed_on_save(live, editor, sent, settings,
                                                               django_capture_on_commit_callbacks):
    settings.PUBLISHER_LOOKAHEAD = 30
    with django_capture_on_commit_callbacks(execute=True):
        revision = revisions.revision_create(article_id=live.pk, title="Soon", body="Soon.", image_alt="",
                                             publish_at=timezone.now() + timedelta(seconds=10), actor=editor)
    assert revision.status == RevisionStatus.PUBLISHING
    assert [call[2] for call in sent] == [[(revision.pk, revision.publish_at)]]


def test_an_uploaded_image_is_stored_on_the_revision_not_the_article(live, editor, sent):
    upload = SimpleUploadedFile("new.png", png(300, 200), content_type="image/png")
    revision = _schedule(live, editor, image=upload, image_alt="A red square")
    assert revision.image.name.startswith("revisions/new") and revision.image_alt == "A red square"
    live.refresh_from_db()
    assert live.image.name == ""


def test_restore_makes_a_draft_change_from_an_old_ones_content(live, editor, sent):
    old = _schedule(live, editor, title="Restored title", body="Restored body.")
    revisions.revision_cancel(revision_id=old.pk, actor=editor)
    draft = revisions.revision_restore(revision_id=old.pk, actor=editor)
    assert (draft.status, draft.title, draft.body, draft.base_body, draft.publish_at) == (
        RevisionStatus.DRAFT, "Restored title", "Restored body.", "Old *body*.", None)
    scheduled = revisions.revision_schedule(revision_id=draft.pk, publish_at=timezone.now() + timedelta(hours=1),
                                            actor=editor)
    assert scheduled.status == RevisionStatus.SCHEDULED


# --- the scan and the pipeline ------------------------------------------------------------------------

def test_the_claim_is_compare_and_set(live, editor, sent, django_capture_on_commit_callbacks):
    revision = _schedule(live, editor)
    assert revisions.revisions_claim_due(lookahead=0) is None, "an hour ahead"
    with django_capture_on_commit_callbacks(execute=True):
        claim = revisions.revisions_claim_due(lookahead=3700)
    assert claim.article_ids == [revision.pk]
    assert revisions.revisions_claim_due(lookahead=3700) is None, "claimed once"
    revision.refresh_from_db()
    assert (revision.status, str(revision.claim_token), revision.attempts) == (RevisionStatus.PUBLISHING,
                                                                               claim.token, 1)
    # The lease runs from the due time (look-ahead dispatch).
    assert revision.lease_expires_at >= revision.publish_at + timedelta(seconds=299)
    assert sent == [("claimed", claim.token, [(revision.pk, revision.publish_at)], None)]


def test_prepare_then_apply_at_the_due_second(live, editor, sent, django_capture_on_commit_callbacks):
    endpoint = Endpoint.objects.create(url="https://hooks.example.com/in", events=["updated"])
    revision = _schedule(live, editor, title="Corrected", body="Corrected *text*.")
    token = _claim_now(revision)
    _prepare(revision.pk, token)
    revision.refresh_from_db()
    assert (revision.body_html, revision.word_count) == ("<p>Corrected <em>text</em>.</p>", 2)
    live.refresh_from_db()
    assert live.title == "Old title" and live.body_html == "<p>Old <em>body</em>.</p>", "prepared, not applied"

    with django_capture_on_commit_callbacks(execute=False):
        applied, wait = revisions.step_apply(revision_ids=[revision.pk], token=token)
    assert (applied, wait) == ([revision.pk], 0.0)
    live.refresh_from_db()
    revision.refresh_from_db()
    assert (live.title, live.body, live.body_html, live.excerpt) == (
        "Corrected", "Corrected *text*.", "<p>Corrected <em>text</em>.</p>", "Corrected text.")
    assert live.status == ArticleStatus.PUBLISHED and live.revised_at is not None
    assert live.updated_at == live.revised_at
    assert revision.status == RevisionStatus.APPLIED and revision.applied_at is not None
    assert revision.claim_token is not None and revision.lease_expires_at is None
    delivery = Delivery.objects.get()
    assert (delivery.endpoint, delivery.event, delivery.article_id) == (endpoint, "updated", live.pk)
    assert delivery.payload["article"]["title"] == "Corrected"
    event = ArticleEvent.objects.filter(article=live).first()
    assert (event.action, event.actor, event.note) == ("change_applied", None, f"Change #{revision.pk}")

    # Exactly once: a redelivered apply finds nothing in flight.
    assert revisions.step_apply(revision_ids=[revision.pk], token=token) == ([], 0.0)
    assert Delivery.objects.count() == 1
    assert ArticleEvent.objects.filter(article=live, action="change_applied").count() == 1


def test_apply_is_never_early(live, editor, sent):
    revision = _schedule(live, editor, minutes=1)
    claim = revisions.revisions_claim_due(lookahead=120)
    _prepare(revision.pk, claim.token)
    applied, wait = revisions.step_apply(revision_ids=[revision.pk], token=claim.token)
    assert applied == [] and 0.1 <= wait <= 5.0
    live.refresh_from_db()
    revision.refresh_from_db()
    assert live.title == "Old title" and revision.status == RevisionStatus.PUBLISHING


def test_the_editor_wins_over_an_in_flight_claim(live, editor, sent):
    revision = _schedule(live, editor)
    token = _claim_now(revision)
    _prepare(revision.pk, token)
    revisions.revision_cancel(revision_id=revision.pk, actor=editor)
    assert revisions.step_apply(revision_ids=[revision.pk], token=token) == ([], 0.0)
    live.refresh_from_db()
    assert live.title == "Old title" and live.revised_at is None


def test_a_change_to_an_article_taken_down_meanwhile_is_not_applied(live, editor, sent):
    revision = _schedule(live, editor)
    token = _claim_now(revision)
    _prepare(revision.pk, token)
    Article.objects.filter(pk=live.pk).transition("unpublish_now", actor=editor)
    assert revisions.step_apply(revision_ids=[revision.pk], token=token) == ([], 0.0)
    revision.refresh_from_db()
    live.refresh_from_db()
    assert (revision.status, revision.last_error) == (
        RevisionStatus.CANCELLED, revisions.NOT_LIVE.format("expired"))
    assert live.title == "Old title" and live.status == ArticleStatus.EXPIRED
    assert ArticleEvent.objects.filter(article=live).first().action == "change_abandoned"


def test_a_broken_image_fails_the_change_alone_and_alerts_its_author(live, editor, sent,
                                                                    django_capture_on_commit_callbacks):
    revision = _schedule(live, editor)
    revision.image.save("broken.png", ContentFile(b"\x89PNG\r\n\x1a\n not really a png"), save=True)
    token = _claim_now(revision)
    assert revisions.step_process(revision_ids=[revision.pk], token=token) == [revision.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert revisions.step_thumbnails(revision_ids=[revision.pk], token=token) == []
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.FAILED and revision.last_error.startswith("thumbnail: ")
    assert sent[-1] == ("alert", [revision.pk])
    live.refresh_from_db()
    assert live.title == "Old title"
    assert ArticleEvent.objects.filter(article=live).first().action == "change_failed"


def test_a_thumbnail_is_made_into_the_revision_and_applied(live, editor, sent):
    upload = SimpleUploadedFile("photo.png", png(900, 600), content_type="image/png")
    revision = _schedule(live, editor, image=upload, image_alt="Red")
    token = _claim_now(revision)
    _prepare(revision.pk, token)
    revision.refresh_from_db()
    assert revision.thumbnail.name == f"thumbnails/articlerevision-{revision.pk}.jpg"
    revisions.step_apply(revision_ids=[revision.pk], token=token)
    live.refresh_from_db()
    assert (live.image.name, live.image_alt, live.thumbnail.name) == (revision.image.name, "Red",
                                                                     revision.thumbnail.name)


def test_the_sweeper_reclaims_expired_leases_then_gives_up(live, editor, sent, settings,
                                                           django_capture_on_commit_callbacks):
    settings.PUBLISHER_MAX_ATTEMPTS = 2
    revision = _schedule(live, editor)
    token = _claim_now(revision)
    ArticleRevision.objects.filter(pk=revision.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        claim, given_up = revisions.revisions_reclaim_expired_leases()
    assert given_up == 0 and claim.article_ids == [revision.pk] and claim.token != token
    revision.refresh_from_db()
    assert sent[-1] == ("claimed", claim.token, [(revision.pk, revision.publish_at)], 1)
    # The old claim's steps do nothing now.
    assert revisions.step_process(revision_ids=[revision.pk], token=token) == []
    ArticleRevision.objects.filter(pk=revision.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert revisions.revisions_reclaim_expired_leases() == (None, 1)
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.FAILED and revision.last_error.startswith("Gave up after 2 attempts")
    assert sent[-1] == ("alert", [revision.pk])


def test_the_failure_alert_mails_the_author(live, editor, mailoutbox):
    revision = ArticleRevision.objects.create(article=live, title="T", body="B", author=editor,
                                              publish_at=timezone.now(), claim_token=uuid.uuid4())
    ArticleRevision.objects.filter(pk=revision.pk).transition("schedule")
    ArticleRevision.objects.filter(pk=revision.pk).transition("claim", claim_token=uuid.uuid4())
    ArticleRevision.objects.filter(pk=revision.pk).transition("fail", last_error="thumbnail: broken")
    assert revisions.revision_failure_alerts_send(revision_ids=[revision.pk]) == 1
    assert [m.to for m in mailoutbox] == [["ed@example.com"]]
    assert mailoutbox[0].subject == "Change failed: Old title"
    assert "Reason: thumbnail: broken" in mailoutbox[0].body


def test_the_site_cache_ends_at_a_pending_change(live, editor, sent):
    from publisher.site.selectors import article_freshness, site_next_change

    revision = _schedule(live, editor, minutes=10)
    assert site_next_change() == revision.publish_at
    max_age, _ = article_freshness(live)
    assert 0 < max_age <= 600


def test_the_feed_and_the_sitemap_follow_an_applied_change(live, editor, sent, client, settings):
    settings.TIME_ZONE = "UTC"
    long_ago = timezone.now() - timedelta(days=3)
    Article.objects.filter(pk=live.pk).update(published_at=long_ago, publish_at=long_ago, updated_at=long_ago)
    revision = _schedule(live, editor, title="Corrected headline")
    token = _claim_now(revision)
    _prepare(revision.pk, token)
    assert f"<lastmod>{long_ago:%Y-%m-%d}</lastmod>" in client.get("/sitemap.xml").content.decode()
    revisions.step_apply(revision_ids=[revision.pk], token=token)
    live.refresh_from_db()
    assert f"<lastmod>{live.revised_at:%Y-%m-%d}</lastmod>" in client.get("/sitemap.xml").content.decode()
    atom = client.get("/feeds/atom/").content.decode()
    assert "<title>Corrected headline</title>" in atom
    assert f"<updated>{live.revised_at.isoformat()}</updated><id>http://testserver/#article-{live.pk}" in atom
    page = client.get(f"/articles/{live.slug}/").content.decode()
    assert "Corrected headline" in page and "Updated <time" in page


def test_a_page_read_before_the_apply_is_never_cached_past_the_change(live, editor, sent):
    """The race the reader's page had: the row read (old content) just before the change went
    live, its freshness read just after (no pending change any more) cached the old page for
    PUBLISHER_PUBLIC_MAX_AGE. The pending change's time is read with the row."""
    from publisher.site.selectors import article_freshness, with_next_change

    revision = _schedule(live, editor)
    token = _claim_now(revision)
    _prepare(revision.pk, token)
    found = with_next_change(Article.objects.visible().filter(pk=live.pk)).first()
    revisions.step_apply(revision_ids=[revision.pk], token=token)
    assert found.title == "Old title"
    assert article_freshness(found)[0] == 0
    assert article_freshness(Article.objects.get(pk=live.pk))[0] > 0, "after the apply: cached as usual"
