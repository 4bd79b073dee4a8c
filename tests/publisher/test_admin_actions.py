"""The article page's actions beyond scheduling: *Publish now* behind a confirmation that says
how many subscribers it mails, *Unpublish now*, editors deleting their own drafts, and what
the editor is told after a save."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus
from publisher.webhooks.models import Delivery, Endpoint
from tests import factories
from tests.factories import make_article, make_subscriber, make_user
from tests.support.admin import CHANGELIST, change_url, texts


@pytest.fixture
def publisher_user(db):
    factories.newsroom_groups()
    return make_user("paul", "Publishers")


@pytest.fixture
def publisher_client(client, publisher_user):
    client.force_login(publisher_user)
    return client


def live(title="Live story"):
    now = timezone.now()
    return make_article(title=title, slug=title.lower().replace(" ", "-"), status=ArticleStatus.PUBLISHED,
                        publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1))


# --- Publish now: confirmed, with the number of subscribers -------------------------------------

def test_publish_now_button_asks_first_with_the_subscriber_count(publisher_client):
    for n in range(3):
        make_subscriber(f"reader{n}@example.com")
    make_subscriber("gone@example.com", active=False)
    article = make_article(title="Breaking")
    url = reverse("admin:publisher_article_publish_now", args=[article.pk])
    response = publisher_client.post(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "“Breaking” goes live now, and" in page
    assert '<strong class="subscriber-count">3 subscribers</strong> are e-mailed' in page
    assert '<input type="hidden" name="confirm" value="yes">' in page
    assert 'name="publish" value="Publish now and e-mail 3 subscribers">' in page
    article.refresh_from_db()
    assert (article.status, article.events.count()) == (ArticleStatus.DRAFT, 0)

    response = publisher_client.post(url, {"confirm": "yes"})
    assert response.status_code == 302 and response["Location"] == change_url(article)
    article.refresh_from_db()
    assert article.status == ArticleStatus.PUBLISHING
    assert list(article.events.values_list("action", flat=True)) == [ArticleEventAction.PUBLISHED_NOW]


def test_bulk_publish_now_asks_first_and_names_what_it_skips(publisher_client):
    make_subscriber("one@example.com")
    ready, already = make_article(title="Ready"), live("Already out")
    data = {"action": "publish_now_selected", "_selected_action": [ready.pk, already.pk], "index": "0",
            "select_across": "0"}
    response = publisher_client.post(CHANGELIST, data)
    page = response.content.decode()
    assert "“Ready” goes live now, and" in page
    assert '<strong class="subscriber-count">1 subscriber</strong> is e-mailed' in page
    assert f"Already out <span class=\"quiet\">(#{already.pk}, published: skipped)</span>" in page
    assert Article.objects.get(pk=ready.pk).status == ArticleStatus.DRAFT

    response = publisher_client.post(CHANGELIST, {**data, "confirm": "yes"}, follow=True)
    assert Article.objects.get(pk=ready.pk).status == ArticleStatus.PUBLISHING
    assert "Publishing 1 article now: the list shows them as published within seconds." in texts(response)


# --- Unpublish now ------------------------------------------------------------------------------

def test_unpublish_now_takes_a_live_article_down_audited(publisher_client, publisher_user, client,
                                                         django_capture_on_commit_callbacks):
    Endpoint.objects.create(url="https://hooks.example.com/", events=["unpublished"])
    article = live()
    page = publisher_client.get(change_url(article)).content.decode()
    assert 'name="unpublish_now">Unpublish now</button>' in page
    with django_capture_on_commit_callbacks():
        response = publisher_client.post(reverse("admin:publisher_article_unpublish_now", args=[article.pk]),
                                         follow=True)
    assert texts(response) == ["“Live story” is taken down: its page answers 410 Gone. Schedule it again to put it back."]
    article.refresh_from_db()
    assert article.status == ArticleStatus.EXPIRED
    event = article.events.get()
    assert (event.action, event.actor, event.previous_status) == (ArticleEventAction.UNPUBLISHED_NOW, publisher_user,
                                                                  ArticleStatus.PUBLISHED)
    assert list(Delivery.objects.values_list("event", "article_id")) == [("unpublished", article.pk)]
    publisher_client.logout()
    assert client.get("/articles/live-story/").status_code == 410


def test_unpublish_now_is_offered_only_for_live_articles_and_only_to_publishers(publisher_client, client):
    draft = make_article(title="Draft")
    assert 'name="unpublish_now"' not in publisher_client.get(change_url(draft)).content.decode()
    response = publisher_client.post(reverse("admin:publisher_article_unpublish_now", args=[draft.pk]), follow=True)
    assert texts(response) == [f"Skipped 1 article, not unpublished: “Draft” (#{draft.pk}): it is a draft, not live."]
    editor = make_user("edith", "Editors")
    client.force_login(editor)
    article = live()
    assert 'name="unpublish_now"' not in client.get(change_url(article)).content.decode()
    assert client.post(reverse("admin:publisher_article_unpublish_now", args=[article.pk])).status_code == 403
    assert Article.objects.get(pk=article.pk).status == ArticleStatus.PUBLISHED


# --- One success message per save ---------------------------------------------------------------

def test_a_save_that_schedules_says_so_once(client, db):
    from tests.support.admin import ADD, form_data

    factories.newsroom_groups()
    client.force_login(make_user("edith", "Editors", "UTC"))
    when = timezone.now().replace(second=0, microsecond=0) + timedelta(days=3)
    response = client.post(ADD, form_data(title="Once", publish=(when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S"))),
                           follow=True)
    article = Article.objects.get(title="Once")
    assert article.status == ArticleStatus.SCHEDULED
    assert texts(response) == [f"“Once” is scheduled for {when:%a} {when.day} {when:%b %Y, %H:%M} UTC."]
    response = client.post(change_url(article), form_data(title="Once more", slug=article.slug, publish=(
        when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S"))), follow=True)
    messages = texts(response)
    assert messages == [f'The article “<a href="{change_url(article)}">Once more</a>” was changed successfully.']


# --- The time-zone picker -----------------------------------------------------------------------

def test_the_time_zone_picker_is_searchable_and_offers_no_deprecated_alias(client, db):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", "Europe/Paris")
    client.force_login(editor)
    url = reverse("admin:publisher_article_time_zone")
    page = client.get(url).content.decode()
    assert 'list="id_time_zone-zones"' in page and '<datalist id="id_time_zone-zones">' in page
    assert '<option value="America/New_York">New York (UTC-0' in page
    assert '<option value="Asia/Kolkata">' in page and '<option value="Europe/Kyiv">' in page
    for alias in ("US/Eastern", "Asia/Calcutta", "Europe/Kiev", "GMT", "UTC", "Asia/Saigon"):
        assert f'<option value="{alias}">' not in page
    response = client.post(url, {"time_zone": "Asia/Calcutta"})
    assert response.status_code == 200
    assert "“Asia/Calcutta” is an old name for Asia/Kolkata: choose Asia/Kolkata." in response.content.decode()
    assert client.post(url, {"time_zone": "Asia/Kolkata"}).status_code == 302
    from publisher.models import EditorProfile
    assert EditorProfile.objects.get(user=editor).time_zone == "Asia/Kolkata"


# --- Editors delete their own drafts --------------------------------------------------------------

def test_an_editor_deletes_a_draft_they_created_and_the_deletion_is_in_the_history(client, db):
    from django.contrib.admin.models import DELETION, LogEntry
    from tests.support.admin import ADD, form_data

    factories.newsroom_groups()
    editor = make_user("edith", "Editors")
    client.force_login(editor)
    client.post(ADD, form_data(title="My idea"))
    article = Article.objects.get(title="My idea")
    created = article.events.get()
    assert (created.action, created.actor) == (ArticleEventAction.CREATED, editor)
    delete_url = reverse("admin:publisher_article_delete", args=[article.pk])
    assert f'href="{delete_url}"' in client.get(change_url(article)).content.decode()
    assert client.get(delete_url).status_code == 200
    response = client.post(delete_url, {"post": "yes"}, follow=True)
    assert not Article.objects.filter(pk=article.pk).exists()
    assert texts(response) == ["The article “My idea” was deleted successfully."]
    entry = LogEntry.objects.get(action_flag=DELETION)
    assert (entry.user, entry.object_id, entry.object_repr) == (editor, str(article.pk), "My idea")


def test_an_editor_cannot_delete_someone_elses_draft_or_anything_not_a_draft(client, db):
    factories.newsroom_groups()
    owner, other = make_user("edith", "Editors"), make_user("otto", "Editors")
    theirs = make_article(title="Edith's")
    services.article_record_created(article_id=theirs.pk, actor=owner)
    mine_scheduled = make_article(title="Otto's, scheduled")
    services.article_record_created(article_id=mine_scheduled.pk, actor=other)
    services.article_schedule(article_id=mine_scheduled.pk, publish_at=timezone.now() + timedelta(days=1))
    client.force_login(other)
    for article in (theirs, mine_scheduled):
        url = reverse("admin:publisher_article_delete", args=[article.pk])
        assert f'href="{url}"' not in client.get(change_url(article)).content.decode()
        assert client.post(url, {"post": "yes"}).status_code == 403
    assert Article.objects.count() == 2
    # No bulk delete: it would check only the model permission.
    page = client.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in page


def test_a_publisher_may_delete_any_draft_but_never_a_live_article(publisher_client):
    draft, out = make_article(title="Anyone's draft"), live()
    assert publisher_client.post(reverse("admin:publisher_article_delete", args=[out.pk]),
                                 {"post": "yes"}).status_code == 403
    publisher_client.post(reverse("admin:publisher_article_delete", args=[draft.pk]), {"post": "yes"})
    assert list(Article.objects.values_list("title", flat=True)) == ["Live story"]


# --- A publish time in the past: publish now, or record it (back catalogue) -------------------------

def past_form(when, choice, title="From the archive", zone="UTC"):
    from zoneinfo import ZoneInfo

    from tests.support.admin import form_data

    when = when.astimezone(ZoneInfo(zone))
    return form_data(title=title, body="Old *news*.", publish=(when.strftime("%Y-%m-%d"), when.strftime("%H:%M:%S")),
                     when_passed=choice)


def test_a_past_publish_time_asks_what_to_do(client, db):
    from tests.support.admin import ADD, errors

    factories.newsroom_groups()
    client.force_login(make_user("edith", "Editors", "UTC"))
    when = timezone.now().replace(microsecond=0) - timedelta(days=400)
    response = client.post(ADD, past_form(when, ""))
    assert errors(response)["publish_at"] == [
        f"The publish time {when:%a} {when.day} {when:%b %Y, %H:%M:%S} UTC has already passed. Choose below whether "
        "to publish it now (subscribers are e-mailed) or to record it as published at that time (nobody is e-mailed)."]
    assert 'name="when_passed"' in response.content.decode()
    # An editor without the publish permission cannot make it live this way.
    response = client.post(ADD, past_form(when, "record"))
    assert errors(response)["publish_at"] == [
        "Recording an article as published puts it live: ask a publisher to do it, or choose to publish it now."]
    assert not Article.objects.exists()


def test_recording_a_past_time_makes_it_live_since_then_and_mails_nobody(publisher_client, publisher_user, client,
                                                                         django_capture_on_commit_callbacks):
    from tests.support.admin import ADD

    make_subscriber("reader@example.com")
    when = timezone.now().replace(microsecond=0) - timedelta(days=400)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = publisher_client.post(ADD, past_form(when, "record", zone="Europe/Paris"), follow=True)
    article = Article.objects.get(title="From the archive")
    assert (article.status, article.publish_at, article.published_at) == (ArticleStatus.PUBLISHED, when, when)
    assert article.body_html == "<p>Old <em>news</em>.</p>"
    assert article.slug == "from-the-archive"
    from zoneinfo import ZoneInfo

    from publisher.zones import local_time_text
    assert texts(response) == [f"“From the archive” is recorded as published since "
                               f"{local_time_text(when, zone=ZoneInfo('Europe/Paris'))}; nobody was e-mailed."]
    assert article.notifications.count() == 0
    from publisher.site.cache import bump_generation
    assert [c for c in callbacks if c is not bump_generation] == []  # nothing dispatched: no pipeline, no mail
    assert list(article.events.values_list("action", "actor")) == [
        (ArticleEventAction.RECORDED_PUBLISHED, publisher_user.pk), (ArticleEventAction.CREATED, publisher_user.pk)]
    publisher_client.logout()
    assert client.get("/articles/from-the-archive/").status_code == 200


def test_choosing_now_for_a_past_time_publishes_it_through_the_pipeline(publisher_client):
    from tests.support.admin import ADD

    when = timezone.now() - timedelta(minutes=5)
    publisher_client.post(ADD, past_form(when, "now", zone="Europe/Paris"))
    assert Article.objects.get(title="From the archive").status == ArticleStatus.PUBLISHING


# --- The month calendar ---------------------------------------------------------------------------

def test_the_month_calendar_places_articles_on_the_editors_day_and_warns(client, db):
    from datetime import UTC, datetime

    factories.newsroom_groups()
    client.force_login(make_user("edith", "Editors", "Europe/Paris"))
    nine = datetime(2027, 1, 12, 8, 0, tzinfo=UTC)  # 09:00 CET
    for title in ("Budget", "Budget", "Weather"):
        make_article(title=title, status=ArticleStatus.SCHEDULED, publish_at=nine)
    late = make_article(title="Late night", status=ArticleStatus.SCHEDULED,
                        publish_at=datetime(2027, 1, 31, 23, 30, tzinfo=UTC))  # 1 Feb, 00:30 in Paris
    make_article(title="A draft", publish_at=nine)
    response = client.get(reverse("admin:publisher_article_calendar") + "?month=2027-01")
    page = response.content.decode()
    assert response.context["title"] == "Calendar: January 2027"
    day = page.split('id="day-2027-01-12"', 1)[1].split("</td>", 1)[0]
    assert day.count('<span class="quiet">09:00</span>') == 3 and "A draft" not in day
    assert "Late night" not in page  # the 1st of February in Paris
    conflicts = [str(c) for c in response.context["calendar"].conflicts]
    assert conflicts[0] == "3 articles go out at 09:00 on Tue 12 Jan: “Budget”, “Budget”, “Weather”"
    assert conflicts[1].startswith("2 articles this month are titled “Budget” (#") and conflicts[1].endswith(
        "): a duplicate?")
    assert len(conflicts) == 2
    assert "Europe/Paris" in page
    february = client.get(reverse("admin:publisher_article_calendar") + "?month=2027-02").content.decode()
    assert "Late night" in february.split('id="day-2027-02-01"', 1)[1].split("</td>", 1)[0]
    assert f'href="{change_url(late)}"' in february
    for nonsense in ("nonsense", "2027-13", "9999-12", "1-2-3"):
        assert client.get(reverse("admin:publisher_article_calendar") + f"?month={nonsense}").status_code == 200
