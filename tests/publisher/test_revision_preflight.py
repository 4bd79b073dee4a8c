"""The pre-flight of scheduled changes (publisher/revision_preflight.py), called directly (no
worker): the same checks as an article on the change's content, at risk recorded in the article's
Activity and mailed once to whoever scheduled the change, the scan's and the schedule's dispatch,
the pipeline's steps reusing what a passed check prepared, a change in a release making its
release at risk, and what the editor sees (the change's page, the article's changes, the agenda,
the month calendar, the status panel — with the changes that failed at their time)."""

import re
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from publisher import alerts, dispatch, release_changes, release_preflight, releases, revision_preflight, revisions
from publisher.models import ArticleEvent, ArticleEventAction, ArticleRevision, ArticleStatus, Release
from publisher.preflight import AT_RISK, PASSED, SKIPPED, UNCHANGED
from publisher.states import RevisionStatus
from scheduling.dashboard import pipeline_status
from tests import factories
from tests.factories import make_article, make_user
from tests.support.images import broken_png, png

pytestmark = pytest.mark.django_db

BROKEN = "The image cannot be used: image could not be read: cannot identify image file"
NO_ALT = "The image has no alt text: say what it shows, for readers who cannot see it."


@pytest.fixture(autouse=True)
def preflight_on(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    settings.PUBLISHER_THUMBNAIL_SIZE = (400, 400)


@pytest.fixture
def sent(monkeypatch):
    """What would have gone to the broker, in order."""
    calls = []
    monkeypatch.setattr(dispatch, "revision_preflight", lambda *, revision_ids: calls.append(("check", revision_ids)))
    monkeypatch.setattr(dispatch, "revision_preflight_alerts",
                        lambda *, revision_ids: calls.append(("alert", revision_ids)))
    monkeypatch.setattr(dispatch, "revisions_claimed", lambda **kw: calls.append(("claimed", kw["due"])))
    monkeypatch.setattr(dispatch, "release_preflight",
                        lambda *, release_id: calls.append(("release_check", release_id)))
    monkeypatch.setattr(dispatch, "release_preflight_alert",
                        lambda *, release_id: calls.append(("release_alert", release_id)))
    monkeypatch.setattr(dispatch, "publish_release", lambda **kw: calls.append(("prepare", kw)))
    return calls


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Editors", email="edith@example.com")


def live(title: str = "Harbour") -> object:
    now = timezone.now()
    return make_article(title=title, body="Old *text*.", status=ArticleStatus.PUBLISHED,
                        slug=title.lower().replace(" ", "-"),
                        publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                        body_html="<p>Old <em>text</em>.</p>", excerpt="Old text.", word_count=2)


def change(editor, *, minutes: float = 60, image: bytes | None = None, alt: str = "Boats", article=None,
           **content) -> ArticleRevision:
    article = article or live()
    content.setdefault("title", f"{article.title}, updated")
    content.setdefault("body", "New *text*.")
    upload = SimpleUploadedFile("photo.png", image) if image is not None else ""
    return revisions.revision_create(article_id=article.pk, image=upload, image_alt=alt if image else "",
                                     publish_at=timezone.now() + timedelta(minutes=minutes), actor=editor, **content)


def activity(revision) -> list[tuple[str, str]]:
    return list(ArticleEvent.objects.filter(article_id=revision.article_id, action__in=[
        ArticleEventAction.AT_RISK, ArticleEventAction.PREFLIGHT_PASSED]).order_by("id").values_list("action", "note"))


# --- The check ------------------------------------------------------------------------------------------------

def test_a_change_with_a_broken_image_is_at_risk_recorded_and_alerted_once(editor, sent,
                                                                          django_capture_on_commit_callbacks):
    revision = change(editor, image=broken_png())
    with django_capture_on_commit_callbacks(execute=True):
        assert revision_preflight.revision_preflight(revision_id=revision.pk) == AT_RISK
    row = ArticleRevision.objects.get(pk=revision.pk)
    assert row.at_risk_reason.startswith(BROKEN)
    assert row.preflight_checked_at is not None and row.preflight_queued_until is None
    assert row.preflight_fingerprint == row.content_fingerprint()
    assert (row.status, row.body_html, row.thumbnail.name) == (RevisionStatus.SCHEDULED, "", "")
    assert activity(revision) == [(ArticleEventAction.AT_RISK, f"Change #{revision.pk}: {row.at_risk_reason}")]
    assert sent == [("alert", [revision.pk])]
    # The live article is untouched.
    assert ArticleRevision.objects.get(pk=revision.pk).article.body == "Old *text*."
    # The same content again (a redelivered task): nothing redone, recorded or mailed.
    ArticleRevision.objects.filter(pk=revision.pk).update(preflight_checked_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert revision_preflight.revision_preflight(revision_id=revision.pk) == UNCHANGED
    assert len(activity(revision)) == 1 and sent == [("alert", [revision.pk])]


def test_a_good_change_passes_and_keeps_what_its_apply_needs(editor, sent, django_capture_on_commit_callbacks):
    revision = change(editor, image=png(900, 600))
    with django_capture_on_commit_callbacks(execute=True):
        assert revision_preflight.revision_preflight(revision_id=revision.pk) == PASSED
    row = ArticleRevision.objects.get(pk=revision.pk)
    assert (row.at_risk_reason, row.body_html, row.excerpt, row.word_count) == (
        "", "<p>New <em>text</em>.</p>", "New text.", 2)
    assert row.thumbnail.name.startswith(f"thumbnails/articlerevision-{row.pk}-preflight")
    assert row.thumbnail.storage.exists(row.thumbnail.name) and row.prepared_by_preflight()
    assert activity(revision) == [(ArticleEventAction.PREFLIGHT_PASSED, f"Change #{revision.pk}")]
    assert sent == []  # nothing mailed for a pass


def test_every_check_of_an_article_applies_to_a_change(editor, sent):
    revision = change(editor, image=png(300, 200), alt="")
    assert revision_preflight.revision_preflight(revision_id=revision.pk) == AT_RISK
    assert ArticleRevision.objects.get(pk=revision.pk).at_risk_reason == NO_ALT


def test_a_change_edited_after_its_check_is_checked_again(editor, sent):
    revision = change(editor, image=broken_png())
    revision_preflight.revision_preflight(revision_id=revision.pk)
    row = ArticleRevision.objects.get(pk=revision.pk)
    row.image.save("fixed.png", SimpleUploadedFile("fixed.png", png(640, 480)), save=False)
    row.save(update_fields=["image", "updated_at"])
    row = ArticleRevision.objects.get(pk=revision.pk)
    assert (row.at_risk_reason, row.preflight_fingerprint, row.preflight_checked_at) == ("", "", None)
    assert revision_preflight.revision_preflight(revision_id=revision.pk) == PASSED
    assert [action for action, _ in activity(revision)] == [ArticleEventAction.AT_RISK,
                                                            ArticleEventAction.PREFLIGHT_PASSED]


def test_a_new_change_replacing_an_at_risk_one_is_checked_for_itself(editor, sent):
    first = change(editor, image=broken_png())
    revision_preflight.revision_preflight(revision_id=first.pk)
    second = change(editor, article=first.article, image=png(640, 480))
    assert ArticleRevision.objects.get(pk=first.pk).status == RevisionStatus.CANCELLED
    assert revision_preflight.revision_preflight(revision_id=first.pk) == SKIPPED
    assert revision_preflight.revision_preflight(revision_id=second.pk) == PASSED


# --- When ----------------------------------------------------------------------------------------------------

def test_the_scan_hands_out_unchecked_changes_due_within_the_window_once(editor, sent,
                                                                        django_capture_on_commit_callbacks, settings):
    settings.PUBLISHER_PREFLIGHT_MINUTES = 0  # scheduled without a check on save
    soon = change(editor, minutes=20)
    later = change(editor, minutes=90, article=live("Far"))
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    with django_capture_on_commit_callbacks(execute=True):
        assert revision_preflight.revisions_preflight_dispatch() == 1
    assert sent == [("check", [soon.pk])]
    assert ArticleRevision.objects.get(pk=soon.pk).preflight_queued_until is not None
    with django_capture_on_commit_callbacks(execute=True):
        assert revision_preflight.revisions_preflight_dispatch() == 0  # its lease runs
    assert revision_preflight.revisions_preflight(revision_ids=[soon.pk]) == {
        PASSED: 1, AT_RISK: 0, UNCHANGED: 0, SKIPPED: 0}
    assert ArticleRevision.objects.get(pk=later.pk).preflight_checked_at is None
    settings.PUBLISHER_PREFLIGHT_MINUTES = 0
    assert revision_preflight.revisions_preflight_dispatch() == 0  # off


def test_a_change_scheduled_inside_the_window_is_checked_at_once_on_commit(editor, sent,
                                                                          django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        near = change(editor, minutes=10)
    assert sent == [("check", [near.pk])]
    with django_capture_on_commit_callbacks(execute=True):
        far = change(editor, minutes=90, article=live("Far"))
    assert sent == [("check", [near.pk])]  # beyond the window: the scan takes it later
    with django_capture_on_commit_callbacks(execute=True):
        revisions.revision_schedule(revision_id=far.pk, publish_at=timezone.now() + timedelta(minutes=5),
                                    actor=editor)
    assert sent == [("check", [near.pk]), ("check", [far.pk])]  # rescheduled into it: at once
    # Rescheduled again while its check is on its way (its lease runs): not handed out twice.
    with django_capture_on_commit_callbacks(execute=True):
        revisions.revision_schedule(revision_id=far.pk, publish_at=timezone.now() + timedelta(minutes=6),
                                    actor=editor)
    assert sent == [("check", [near.pk]), ("check", [far.pk])]


# --- The scheduler's mail ---------------------------------------------------------------------------------------

def test_whoever_scheduled_the_change_is_mailed_while_there_is_time(editor, sent, smtp_server, settings):
    for name, value in smtp_server.env().items():
        setattr(settings, name, {"off": False}.get(value, int(value) if value.isdigit() else value))
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    settings.TIME_ZONE = "UTC"
    revision = change(editor, minutes=20, image=broken_png())
    # Rescheduled by another editor: that one is told.
    other = make_user("olga", "Editors", email="olga@example.com")
    revisions.revision_schedule(revision_id=revision.pk, publish_at=timezone.now() + timedelta(minutes=20),
                                actor=other)
    revision_preflight.revision_preflight(revision_id=revision.pk)
    fixed = change(editor, minutes=20, article=live("Fixed meanwhile"))
    assert alerts.revision_preflight_alerts_send(revision_ids=[revision.pk, fixed.pk]) == 1
    [accepted] = smtp_server.accepted()
    assert accepted.rcpt_tos == ["olga@example.com"]
    assert accepted.message["Subject"].startswith("At risk: change to Harbour (due ")
    body = accepted.message.get_content().replace("\r\n", "\n")
    assert (f"Your change #{revision.pk} to “Harbour” is due to go live " in body
            and "and would fail; the live article would stay as it is.\n\nWhat the pre-flight check found: "
                f"{BROKEN}" in body)
    assert ", in 19 min" in body or ", in 20 min" in body
    assert f"https://news.example.com/admin/publisher/article/{revision.article_id}/changes/{revision.pk}/" in body
    # Cancelled before the mail goes out: nothing to say.
    revisions.revision_cancel(revision_id=revision.pk, actor=editor)
    assert alerts.revision_preflight_alerts_send(revision_ids=[revision.pk]) == 0
    # Nobody rescheduled it: its author is told.
    alone = change(editor, minutes=20, image=broken_png(), article=live("Alone"))
    revision_preflight.revision_preflight(revision_id=alone.pk)
    assert alerts.revision_preflight_alerts_send(revision_ids=[alone.pk]) == 1
    assert smtp_server.accepted()[-1].rcpt_tos == ["edith@example.com"]


# --- The apply reuses the prepared output ----------------------------------------------------------------------

def claim(revision) -> str:
    ArticleRevision.objects.filter(pk=revision.pk).update(publish_at=timezone.now() - timedelta(milliseconds=10))
    claimed = revisions.revisions_claim_due(lookahead=0)
    assert claimed is not None and claimed.article_ids == [revision.pk]
    return claimed.token


def prepare_and_apply(revision, token) -> None:
    assert revisions.step_process(revision_ids=[revision.pk], token=token) == [revision.pk]
    assert revisions.step_thumbnails(revision_ids=[revision.pk], token=token) == [revision.pk]
    assert revisions.step_apply(revision_ids=[revision.pk], token=token)[0] == [revision.pk]


def test_the_apply_reuses_the_prepared_output_of_the_same_content(editor, sent, caplog):
    revision = change(editor, image=png(600, 400))
    assert revision_preflight.revision_preflight(revision_id=revision.pk) == PASSED
    prepared = ArticleRevision.objects.get(pk=revision.pk)
    # A marker only the pre-flight's output holds: rendering again would replace it.
    ArticleRevision.objects.filter(pk=revision.pk).update(body_html="<p>prepared ahead</p>")
    with caplog.at_level("INFO", logger="publisher.pipeline"):
        prepare_and_apply(revision, claim(revision))
    assert "process: 1 articles prepared by the pre-flight, not rendered again" in caplog.text
    applied = ArticleRevision.objects.get(pk=revision.pk)
    article = applied.article
    assert applied.status == RevisionStatus.APPLIED
    assert (article.body_html, article.thumbnail.name) == ("<p>prepared ahead</p>", prepared.thumbnail.name)
    assert article.thumbnail.storage.exists(article.thumbnail.name)


def test_a_change_whose_content_differs_from_the_check_is_prepared_again(editor, sent):
    revision = change(editor, image=png(600, 400))
    revision_preflight.revision_preflight(revision_id=revision.pk)
    # Changed behind the model's back (no new check asked): the fingerprint still tells.
    ArticleRevision.objects.filter(pk=revision.pk).update(body="A **newer** text.", image="",
                                                          body_html="<p>prepared ahead</p>")
    prepare_and_apply(revision, claim(revision))
    article = ArticleRevision.objects.get(pk=revision.pk).article
    assert (article.body_html, article.thumbnail.name) == ("<p>A <strong>newer</strong> text.</p>", "")


def test_a_change_at_risk_is_prepared_by_the_pipeline_and_fails_as_before(editor, sent, monkeypatch):
    monkeypatch.setattr(dispatch, "revision_failure_alerts", lambda **kw: sent.append(("failed", kw["revision_ids"])))
    revision = change(editor, image=broken_png())
    revision_preflight.revision_preflight(revision_id=revision.pk)
    token = claim(revision)
    assert revisions.step_process(revision_ids=[revision.pk], token=token) == [revision.pk]
    assert revisions.step_thumbnails(revision_ids=[revision.pk], token=token) == []
    row = ArticleRevision.objects.get(pk=revision.pk)
    assert row.status == RevisionStatus.FAILED and row.last_error.startswith("thumbnail: image could not be read")


# --- In a release -----------------------------------------------------------------------------------------------

def test_a_change_in_a_release_at_risk_makes_the_release_at_risk(editor, sent, django_capture_on_commit_callbacks):
    release = releases.release_create(name="Corrections", actor=editor)
    story = make_article(title="New story")
    releases.release_add_members(release_id=release.pk, article_ids=[story.pk], actor=editor)
    member = change(editor, image=broken_png(), minutes=90)
    release_changes.release_add_changes(release_id=release.pk, revision_ids=[member.pk], actor=editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(minutes=20), actor=editor)
    assert ArticleRevision.objects.get(pk=member.pk).status == RevisionStatus.IN_RELEASE
    with django_capture_on_commit_callbacks(execute=True):
        assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    reason = Release.objects.get(pk=release.pk).at_risk_reason
    assert reason.startswith(f"Change #{member.pk} to “Harbour”: {BROKEN}")
    # The change is marked too (its page, the article's changes), written to its article's
    # Activity, and not mailed about on its own: the release's mail says it.
    row = ArticleRevision.objects.get(pk=member.pk)
    assert row.at_risk_reason.startswith(BROKEN)
    assert activity(row) == [(ArticleEventAction.AT_RISK, f"Change #{row.pk}: {row.at_risk_reason}")]
    assert ("alert", [row.pk]) not in sent and ("release_alert", release.pk) in sent
    # The same state again: nothing recorded or mailed again.
    Release.objects.filter(pk=release.pk).update(preflight_checked_at=None)
    assert release_preflight.release_preflight(release_id=release.pk) == UNCHANGED
    # Taken out of the release inside the window: the release is checked again at once, and passes.
    with django_capture_on_commit_callbacks(execute=True):
        release_changes.release_remove_changes(release_id=release.pk, revision_ids=[row.pk], actor=editor)
    assert sent[-1] == ("release_check", release.pk)
    assert release_preflight.release_preflight(release_id=release.pk) == PASSED
    assert Release.objects.get(pk=release.pk).at_risk_reason == ""


def test_a_release_of_changes_only_is_not_a_release_without_members(editor, sent):
    release = releases.release_create(name="Corrections", actor=editor)
    good = change(editor, image=png(300, 200), minutes=90)
    release_changes.release_add_changes(release_id=release.pk, revision_ids=[good.pk], actor=editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(minutes=20), actor=editor)
    assert release_preflight.release_preflight(release_id=release.pk) == PASSED
    assert ArticleRevision.objects.get(pk=good.pk).prepared_by_preflight()
    assert release_preflight.release_level_problems(release_id=release.pk) == []


# --- What the editor sees ----------------------------------------------------------------------------------------

@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


def test_at_risk_shows_wherever_pending_changes_are_shown(editor, editor_client, sent):
    revision = change(editor, minutes=20, image=broken_png())
    revision_preflight.revision_preflight(revision_id=revision.pk)
    reason = ArticleRevision.objects.get(pk=revision.pk).at_risk_reason
    flag = '<span class="at-risk" title="'
    page = editor_client.get(reverse("admin:publisher_article_revision",
                                     args=[revision.article_id, revision.pk])).content.decode()
    assert flag in page and 'id="at-risk">At risk (pre-flight): The image cannot be used' in page
    article_page = editor_client.get(reverse("admin:publisher_article_change",
                                             args=[revision.article_id])).content.decode()
    assert flag in article_page and "At risk (pre-flight): The image cannot be used" in article_page
    for url in (reverse("admin:publisher_article_upcoming"), reverse("admin:publisher_article_calendar")):
        agenda = editor_client.get(url).content.decode()
        assert re.search(rf"Change #{revision.pk} to “Harbour”</a>.*?{re.escape(flag)}", agenda, re.S), url
    index = editor_client.get("/admin/").content.decode()
    assert "1 scheduled change to live articles is at risk" in index
    change_url = reverse("admin:publisher_article_revision", args=[revision.article_id, revision.pk])
    assert f'<a href="{change_url}">Change #{revision.pk} to “Harbour”</a>' in index
    assert escape(reason[:100]) in index
    status = pipeline_status()
    assert ([c.pk for c in status.changes_at_risk], status.changes_at_risk_count) == ([revision.pk], 1)
    # Cancelled: nothing at risk any more.
    revisions.revision_cancel(revision_id=revision.pk, actor=editor)
    index = editor_client.get("/admin/").content.decode()
    assert "change to live articles is at risk" not in index and f"Change #{revision.pk}" not in index


def test_a_change_that_failed_at_its_time_is_on_the_status_panel(editor, editor_client, sent, monkeypatch):
    monkeypatch.setattr(dispatch, "revision_failure_alerts", lambda **kw: None)
    revision = change(editor, image=broken_png())
    token = claim(revision)
    revisions.step_process(revision_ids=[revision.pk], token=token)
    assert revisions.step_thumbnails(revision_ids=[revision.pk], token=token) == []
    failed = ArticleRevision.objects.get(pk=revision.pk)
    assert failed.status == RevisionStatus.FAILED
    assert [c.pk for c in pipeline_status().change_failures] == [revision.pk]
    index = editor_client.get("/admin/").content.decode()
    panel = index[index.index('id="recent-failures"'):]
    change_url = reverse("admin:publisher_article_revision", args=[revision.article_id, revision.pk])
    assert f'<a href="{change_url}">Change #{revision.pk} to “Harbour”</a>' in panel
    assert "Change failed (the live article is unchanged)" in panel
    assert "thumbnail: image could not be read" in panel and "No failures." not in panel
    # Dropped by the editor: off the panel.
    revisions.revision_cancel(revision_id=revision.pk, actor=editor)
    assert pipeline_status().change_failures == []
    assert "No failures." in editor_client.get("/admin/").content.decode()
