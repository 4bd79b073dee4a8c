"""The release admin through the test client: make a release, add articles from the article
list, schedule it in the editor's zone (named), see it on its page and in the agenda, see why
it is blocked, unschedule it, remove a member; every action in the release's history and the
articles' Activity."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.base import ContentFile
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from publisher import dispatch, release_preflight, releases
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus, Release, ReleaseEvent
from publisher.states import IN_RELEASE_REASON, ReleaseStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.admin import CHANGELIST, texts
from tests.support.images import broken_png

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(dispatch, "publish_release", lambda **kw: None)
    monkeypatch.setattr(dispatch, "release_alert", lambda **kw: None)


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Editors", "Europe/Paris", email="edith@example.com")


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


def page_url(release) -> str:
    return reverse("admin:publisher_release_change", args=[release.pk])


def test_an_editor_builds_schedules_and_unschedules_a_release(editor_client, editor):
    response = editor_client.post("/admin/publisher/release/add/", {"name": "Budget package",
                                                                    "notes": "Embargoed until Tuesday 06:00"})
    assert response.status_code == 302
    release = Release.objects.get()
    assert (release.name, release.status, release.created_by) == ("Budget package", ReleaseStatus.DRAFT, editor)

    articles = [make_article(title=f"Budget story {i}") for i in range(3)]
    live = make_article(title="Already live", status=ArticleStatus.PUBLISHED, publish_at=timezone.now(),
                        published_at=timezone.now())
    selection = {"action": "add_to_release", "_selected_action": [a.pk for a in [*articles, live]]}
    page = editor_client.post(CHANGELIST, selection).content.decode()
    assert "Add the 4 selected articles to a release" in page and "Budget package" in page
    response = editor_client.post(CHANGELIST, {**selection, "apply": "1", "release": release.pk}, follow=True)
    assert texts(response) == [f'Added 3 articles to <a href="{page_url(release)}">Budget package</a>.',
                               "“Already live” was not added: it is published: only articles not live can join a "
                               "release."]
    assert set(Article.objects.filter(release=release).values_list("pk", flat=True)) == {a.pk for a in articles}

    when = (timezone.now() + timedelta(days=2)).astimezone(PARIS).replace(hour=6, minute=0, second=0, microsecond=0)
    response = editor_client.post(reverse("admin:publisher_release_schedule", args=[release.pk]), {
        "publish_at_0": when.strftime("%Y-%m-%d"), "publish_at_1": "06:00", "publish_at_2": "",
        "unpublish_at_0": "", "unpublish_at_1": "", "unpublish_at_2": "", "apply": "Schedule"}, follow=True)
    [message] = texts(response)
    assert message.startswith("Release “Budget package” is scheduled: its 3 articles go live together")
    assert "06:00" in message and ("CET" in message or "CEST" in message)
    release.refresh_from_db()
    assert (release.status, release.publish_at, release.scheduled_by) == (ReleaseStatus.SCHEDULED, when, editor)
    assert set(Article.objects.filter(release=release).values_list("status", flat=True)) == {ArticleStatus.IN_RELEASE}

    page = editor_client.get(page_url(release)).content.decode()
    assert "Europe/Paris" in page and "Reschedule…" in page and 'name="unschedule"' in page
    assert all(f"Budget story {i}" in page for i in range(3)) and "Embargoed until Tuesday 06:00" in page
    # A member's own page says it goes with the release; the list's actions refuse it alone.
    member = editor_client.get(reverse("admin:publisher_article_change", args=[articles[0].pk])).content.decode()
    assert "with its release" in member and "Budget package" in member
    response = editor_client.post(CHANGELIST, {"action": "unschedule_selected", "_selected_action": [articles[0].pk]},
                                  follow=True)
    assert any(IN_RELEASE_REASON in text for text in texts(response)), texts(response)

    # Only a draft release can be deleted, and not in bulk.
    assert 'value="delete_selected"' not in editor_client.get("/admin/publisher/release/").content.decode()
    assert editor_client.get(reverse("admin:publisher_release_delete", args=[release.pk])).status_code == 403

    agenda = editor_client.get("/admin/publisher/article/upcoming/").content.decode()
    assert "Budget package" in agenda and "(3 articles)" in agenda

    response = editor_client.post(reverse("admin:publisher_release_unschedule", args=[release.pk]), follow=True)
    assert texts(response) == ["Release “Budget package” is unscheduled: its articles are drafts again."]
    assert set(Article.objects.filter(release=release).values_list("status", flat=True)) == {ArticleStatus.DRAFT}
    assert [e.action for e in ReleaseEvent.objects.filter(release=release)] == [
        "unscheduled", "scheduled", "members_added", "created"]
    assert [e.action for e in ArticleEvent.objects.filter(article=articles[1])] == [
        ArticleEventAction.UNSCHEDULED, ArticleEventAction.SCHEDULED, ArticleEventAction.ADDED_TO_RELEASE]
    assert ArticleEvent.objects.filter(article=articles[1]).last().actor == editor


def test_the_release_page_says_why_it_is_blocked_and_a_member_can_be_removed(editor_client, editor):
    release = releases.release_create(name="Package", actor=editor)
    first, second = make_article(title="Fine"), make_article(title="Broken photo")
    releases.release_add_members(release_id=release.pk, article_ids=[first.pk, second.pk], actor=editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(seconds=20), actor=editor)
    release.refresh_from_db()
    token = str(release.claim_token)
    from publisher import services
    services.articles_fail_claimed(article_ids=[second.pk], token=token, reason="thumbnail: cannot identify image")
    releases.release_members_prepared(release_id=release.pk, token=token, article_ids=[first.pk])

    page = editor_client.get(page_url(release)).content.decode()
    assert "Blocked" in page
    assert f"“Broken photo” (#{second.pk}) could not be prepared: thumbnail: cannot identify image" in page
    assert reverse("admin:publisher_article_change", args=[second.pk]) in page
    listing = editor_client.get("/admin/publisher/release/").content.decode()
    assert "could not be prepared" in listing
    panel = editor_client.get("/admin/").content.decode()  # the status panel warns
    assert "Release “Package” is blocked: none of its articles went live. “Broken photo”" in panel

    remove = reverse("admin:publisher_release_remove", args=[release.pk, second.pk])
    assert "Remove" in editor_client.get(remove).content.decode()
    response = editor_client.post(remove, follow=True)
    assert texts(response) == ["“Broken photo” was removed from “Package”."]
    second.refresh_from_db()
    assert (second.status, second.release_id) == (ArticleStatus.DRAFT, None)
    assert Release.objects.get(pk=release.pk).blocked_article_id is None


def test_a_release_is_scheduled_only_with_a_valid_time(editor_client, editor):
    release = releases.release_create(name="Package", actor=editor)
    response = editor_client.post(reverse("admin:publisher_release_schedule", args=[release.pk]), {
        "publish_at_0": "2030-01-01", "publish_at_1": "06:00", "publish_at_2": "",
        "unpublish_at_0": "2030-01-01", "unpublish_at_1": "05:00", "unpublish_at_2": "", "apply": "Schedule"})
    page = response.content.decode()
    assert "must be after the publish time" in page
    response = editor_client.post(reverse("admin:publisher_release_schedule", args=[release.pk]), {
        "publish_at_0": "2030-01-01", "publish_at_1": "06:00", "publish_at_2": "",
        "unpublish_at_0": "", "unpublish_at_1": "", "unpublish_at_2": "", "apply": "Schedule"})
    assert "has no articles or changes: add some before scheduling it" in response.content.decode()
    assert Release.objects.get(pk=release.pk).status == ReleaseStatus.DRAFT


def test_a_release_at_risk_is_flagged_on_its_page_the_list_the_agenda_and_the_panel(editor_client, editor, settings,
                                                                                  tmp_path, monkeypatch):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    monkeypatch.setattr(dispatch, "release_preflight", lambda **kw: None)
    monkeypatch.setattr(dispatch, "release_preflight_alert", lambda **kw: None)
    release = releases.release_create(name="Budget package", actor=editor)
    good, broken = make_article(title="Fine story"), make_article(title="Broken photo", image_alt="A photo")
    broken.image.save("broken.png", ContentFile(broken_png()), save=True)
    releases.release_add_members(release_id=release.pk, article_ids=[good.pk, broken.pk], actor=editor)
    releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(minutes=10), actor=editor)
    assert release_preflight.release_preflight(release_id=release.pk) == release_preflight.AT_RISK
    reason = Release.objects.get(pk=release.pk).at_risk_reason
    member_reason = Article.objects.get(pk=broken.pk).at_risk_reason
    flag = f'<span class="at-risk" title="{escape(reason)}">At risk</span>'

    listing = editor_client.get("/admin/publisher/release/").content.decode()
    assert flag in listing and f'<span class="problem">{escape(reason)}</span>' in listing
    page = editor_client.get(page_url(release)).content.decode()
    assert flag in page
    assert f'<div class="problem-box release-at-risk">{escape(reason)} Fix it before the release time' in page
    assert f"<td>{escape(member_reason)}</td>" in page  # the member's row in the release's articles
    assert f"<td>at risk</td><td>system</td><td>{escape(reason)}</td>" in page  # the release's history
    agenda = editor_client.get("/admin/publisher/article/upcoming/").content.decode()
    assert flag in agenda
    panel = editor_client.get("/admin/").content.decode()
    assert escape(f"Release “Budget package” is at risk: the pre-flight check found what would fail when it goes "
                  f"live. {reason}") in panel
