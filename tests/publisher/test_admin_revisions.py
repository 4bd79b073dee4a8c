"""Changes to a live article in the admin: the form keeps them apart from the live row, in the
editor's zone; the article page lists them with a diff; a change's page publishes, schedules,
cancels or restores it."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from publisher import dispatch
from publisher.models import Article, ArticleRevision, ArticleStatus
from publisher.states import RevisionStatus
from publisher.zones import local_time_text
from tests import factories
from tests.factories import make_article, make_user
from tests.support.admin import change_url, errors, form_data, texts

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def newsroom_groups(db):
    factories.newsroom_groups()


@pytest.fixture
def editor(db):
    return make_user("edith", "Publishers")


@pytest.fixture
def editor_client(client, editor):
    client.force_login(editor)
    return client


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "revisions_claimed", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def live(db):
    went_live = timezone.now() - timedelta(hours=2)
    return make_article(title="Live story", body="First line.\nSecond <b>line</b>.",
                        status=ArticleStatus.PUBLISHED, publish_at=went_live, published_at=went_live,
                        body_html="<p>First line.</p>")


def local(dt: datetime) -> tuple[str, str]:
    dt = dt.astimezone(PARIS)
    return dt.strftime("%Y-%m-%d"), dt.strftime("%H:%M:%S")


def test_the_live_article_form_offers_now_or_a_time(editor_client, live):
    page = editor_client.get(change_url(live)).content.decode()
    assert "Publish the change now" in page and "Schedule the change for …" in page
    assert 'name="change_publish_at_0"' in page
    assert "Changes to the live article" in page and "No changes yet." in page


def test_scheduling_a_change_leaves_the_live_row_alone(editor_client, editor, live, sent):
    when = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    day, clock = local(when)
    response = editor_client.post(change_url(live), form_data(
        title="Live story, corrected", body="First line.\nSecond line, fixed.", change_when="schedule",
        change_publish_at_0=day, change_publish_at_1=clock, change_publish_at_2=""), follow=True)
    assert response.status_code == 200
    assert response.redirect_chain, (texts(response), response.context and response.context.get("errors"))
    live.refresh_from_db()
    assert (live.title, live.body) == ("Live story", "First line.\nSecond <b>line</b>.")
    revision = ArticleRevision.objects.get()
    assert (revision.status, revision.publish_at, revision.author, revision.title) == (
        RevisionStatus.SCHEDULED, when, editor, "Live story, corrected")
    assert texts(response) == [f"The change to “Live story, corrected” is scheduled for "
                               f"{local_time_text(when, zone=PARIS)}. Readers see the live version until then."]
    assert sent == []
    # The article page lists it, with the text's diff, escaped.
    page = editor_client.get(change_url(live)).content.decode()
    assert f"#{revision.pk}</a>" in page and "Scheduled for" in page
    assert '<span class="diff-del">-Second &lt;b&gt;line&lt;/b&gt;.</span>' in page
    assert '<span class="diff-add">+Second line, fixed.</span>' in page
    assert "A change is already scheduled for" in page
    assert f"A change goes live {local_time_text(when, zone=PARIS)} (change #{revision.pk}, below)." in page


def test_a_change_time_in_the_past_is_refused_where_it_is_entered(editor_client, live):
    day, clock = local(timezone.now() - timedelta(minutes=5))
    response = editor_client.post(change_url(live), form_data(
        title="Live story", body="New.", change_when="schedule", change_publish_at_0=day, change_publish_at_1=clock))
    assert response.status_code == 200
    (message,) = errors(response)["change_publish_at"]
    assert "has already passed: a change is scheduled for a time ahead" in message
    response = editor_client.post(change_url(live), form_data(title="Live story", body="New.",
                                                              change_when="schedule"))
    assert errors(response)["change_publish_at"] == ["Enter when the change goes live."]
    assert not ArticleRevision.objects.exists()


def test_publish_the_change_now_claims_it(editor_client, live, sent, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(change_url(live), form_data(title="Live story", body="Fixed now.",
                                                                  change_when="now"), follow=True)
    revision = ArticleRevision.objects.get()
    assert revision.status == RevisionStatus.PUBLISHING and revision.immediate
    assert [call["due"] for call in sent] == [[(revision.pk, revision.publish_at)]]
    assert texts(response) == ["The change to “Live story” is being published now: readers see it within seconds."]
    assert Article.objects.get(pk=live.pk).body == "First line.\nSecond <b>line</b>."


def test_only_the_take_down_time_changes_no_change_is_made(editor_client, live):
    take_down = timezone.now() + timedelta(days=3)
    editor_client.post(change_url(live), form_data(title=live.title, body=live.body, unpublish=local(take_down)))
    assert not ArticleRevision.objects.exists()
    assert Article.objects.get(pk=live.pk).unpublish_at is not None


def test_the_change_page_cancels_restores_and_schedules(editor_client, live, sent):
    when = timezone.now() + timedelta(days=1)
    day, clock = local(when)
    editor_client.post(change_url(live), form_data(title="Live story", body="Version two.", change_when="schedule",
                                                   change_publish_at_0=day, change_publish_at_1=clock))
    revision = ArticleRevision.objects.get()
    url = reverse("admin:publisher_article_revision", args=[live.pk, revision.pk])
    page = editor_client.get(url).content.decode()
    assert "Cancel the change" in page and "Restore as a new draft change" in page

    response = editor_client.post(url, {"action": "cancel"}, follow=True)
    assert texts(response) == ["The change is cancelled: the live article stays as it is."]
    assert ArticleRevision.objects.get(pk=revision.pk).status == RevisionStatus.CANCELLED
    response = editor_client.post(url, {"action": "cancel"}, follow=True)
    assert texts(response) == ["That cannot be done to this change now (it is cancelled)."]

    response = editor_client.post(url, {"action": "restore"})
    draft = ArticleRevision.objects.exclude(pk=revision.pk).get()
    assert (draft.status, draft.body, draft.base_body) == (RevisionStatus.DRAFT, "Version two.",
                                                           "First line.\nSecond <b>line</b>.")
    draft_url = reverse("admin:publisher_article_revision", args=[live.pk, draft.pk])
    assert response["Location"] == draft_url

    past_day, past_clock = local(timezone.now() - timedelta(hours=1))
    response = editor_client.post(draft_url, {"action": "schedule", "publish_at_0": past_day,
                                              "publish_at_1": past_clock})
    assert response.status_code == 200
    assert "has already passed" in response.content.decode()
    response = editor_client.post(draft_url, {"action": "schedule", "publish_at_0": day, "publish_at_1": clock},
                                  follow=True)
    assert texts(response)[0].startswith("The change is scheduled for ")
    assert ArticleRevision.objects.get(pk=draft.pk).status == RevisionStatus.SCHEDULED


def test_a_pending_change_is_on_the_agenda_and_the_month_calendar(editor_client, editor, live, sent):
    from publisher import revisions

    when = timezone.now() + timedelta(days=2)
    revision = revisions.revision_create(article_id=live.pk, title="Live story", body="Later.", image_alt="",
                                         publish_at=when, actor=editor)
    label = f"Change #{revision.pk} to “Live story”"
    agenda = editor_client.get(reverse("admin:publisher_article_upcoming")).content.decode()
    day = when.astimezone(PARIS).date()
    assert label in agenda.split(f'id="day-{day:%Y-%m-%d}"')[1].split("agenda-day")[0]
    calendar = editor_client.get(reverse("admin:publisher_article_calendar") + f"?month={day:%Y-%m}")
    assert label in calendar.content.decode()
    assert f'href="{change_url(live)}">{label}</a>' in calendar.content.decode().replace("&ldquo;", "“").replace(
        "&rdquo;", "”")
