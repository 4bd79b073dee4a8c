"""What an editor meets on a change to a live article, through the test client: the *Notify
subscribers* tick on the change's own page (and on a restored draft), hostile input in every
release picker (a form error naming the problem, nothing written, never a 404), and who may put
a change live (publisher.publish_article) versus save it as a draft (change_article)."""

import uuid
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from publisher import dispatch, revisions
from publisher.admin.revisions import PUBLISH_NEEDED
from publisher.admin.releases import CHANGES_NEED_PUBLISH, ROLLBACK_NEEDS_PUBLISH
from publisher.models import Article, ArticleRevision, ArticleStatus, Release, ReleaseEvent
from publisher.services import TransitionError
from publisher.states import ReleaseStatus, RevisionStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.admin import CHANGELIST, change_url, form_data, texts

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "revisions_claimed", lambda **kw: sent.append(kw))
    monkeypatch.setattr(dispatch, "publish_release", lambda **kw: None)
    return sent


@pytest.fixture
def users(db):
    factories.newsroom_groups()
    return {"publisher": make_user("pia", "Publishers"), "editor": make_user("edith", "Editors")}


@pytest.fixture
def live(db):
    went_live = timezone.now() - timedelta(hours=2)
    return make_article(title="Live story", body="Old text.", status=ArticleStatus.PUBLISHED, publish_at=went_live,
                        published_at=went_live, slug="live-story")


def page_url(revision) -> str:
    return reverse("admin:publisher_article_revision", args=[revision.article_id, revision.pk])


def draft_change(live, user, **extra) -> ArticleRevision:
    return revisions.revision_create(article_id=live.pk, title="Live story, fixed", body="New text.", image_alt="",
                                     publish_at=None, actor=user, draft=True, **extra)


def local(when) -> dict:
    when = when.astimezone(PARIS)
    return {"publish_at_0": when.strftime("%Y-%m-%d"), "publish_at_1": when.strftime("%H:%M:%S"), "publish_at_2": ""}


# --- 1. The *Notify subscribers* tick on the change's own page ------------------------------------

def test_the_tick_is_on_the_change_page_and_saves_with_the_change(client, users, live, no_broker,
                                                                  django_capture_on_commit_callbacks):
    client.force_login(users["publisher"])
    change = draft_change(live, users["publisher"])
    url = page_url(change)
    page = client.get(url).content.decode()
    assert 'name="notify_subscribers" id="id_notify_subscribers">' in page  # shown, unticked
    assert "Notify subscribers of this update" in page

    response = client.post(url, {"action": "notify", "notify_shown": "1", "notify_subscribers": "on"}, follow=True)
    assert texts(response) == [f"Saved: subscribers will be notified when change #{change.pk} goes live."]
    assert response.redirect_chain == [(url, 302)]
    assert ArticleRevision.objects.get(pk=change.pk).notify_subscribers is True
    assert 'id="id_notify_subscribers" checked>' in response.content.decode()

    # Scheduling with the box unticked saves the untick in the same step.
    when = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    response = client.post(url, {"action": "schedule", "notify_shown": "1", **local(when)}, follow=True)
    assert texts(response)[0].endswith("(subscribers not notified).")
    change.refresh_from_db()
    assert (change.status, change.publish_at, change.notify_subscribers) == (RevisionStatus.SCHEDULED, when, False)

    # Publishing now with it ticked: stored with the claim; afterwards the tick is fixed.
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"action": "publish_now", "notify_shown": "1", "notify_subscribers": "on"},
                               follow=True)
    assert texts(response) == ["The change is being published now: readers see it within seconds (subscribers "
                               "will be notified)."]
    change.refresh_from_db()
    assert (change.status, change.notify_subscribers) == (RevisionStatus.PUBLISHING, True)
    assert [call["due"] for call in no_broker] == [[(change.pk, change.publish_at)]]
    response = client.post(url, {"action": "notify", "notify_shown": "1"}, follow=True)
    assert texts(response) == ["That cannot be done to this change now (it is publishing)."]
    assert ArticleRevision.objects.get(pk=change.pk).notify_subscribers is True
    page = client.get(url).content.decode()
    assert 'name="notify_subscribers"' not in page
    assert "Whether subscribers are notified can no longer be changed: the change is publishing." in page


def test_the_tick_is_refused_once_the_change_is_applied(users, live):
    change = draft_change(live, users["publisher"], notify_subscribers=True)
    ArticleRevision.objects.filter(pk=change.pk).update(status=RevisionStatus.APPLIED)
    with pytest.raises(TransitionError) as refused:
        revisions.revision_set_notify(revision_id=change.pk, notify_subscribers=False, actor=users["publisher"])
    assert str(refused.value) == (f"Whether subscribers are notified of change #{change.pk} can no longer be "
                                  "changed: it is applied (subscribers are notified).")
    assert ArticleRevision.objects.get(pk=change.pk).notify_subscribers is True


def test_a_restored_draft_starts_unticked_and_is_ticked_before_scheduling(client, users, live):
    client.force_login(users["publisher"])
    old = draft_change(live, users["publisher"], notify_subscribers=True)
    revisions.revision_cancel(revision_id=old.pk, actor=None)
    response = client.post(page_url(old), {"action": "restore"}, follow=True)
    draft = ArticleRevision.objects.exclude(pk=old.pk).get()
    assert (draft.status, draft.notify_subscribers) == (RevisionStatus.DRAFT, False)
    assert texts(response) == [f"Change #{draft.pk} is a new draft with this change's content: publish or schedule "
                               "it from its page. Subscribers are not notified unless you tick “Notify subscribers "
                               "of this update” first."]
    assert 'name="notify_subscribers" id="id_notify_subscribers">' in response.content.decode()

    when = (timezone.now() + timedelta(hours=3)).replace(microsecond=0)
    client.post(page_url(draft), {"action": "schedule", "notify_shown": "1", "notify_subscribers": "on",
                                  **local(when)})
    draft.refresh_from_db()
    assert (draft.status, draft.publish_at, draft.notify_subscribers) == (RevisionStatus.SCHEDULED, when, True)


# --- 2. Hostile input in the release pickers: a form error, nothing written -----------------------

def hostile_releases() -> dict:
    """A release id for each way a picked release can be wrong, and the error each gives."""
    deleted = Release.objects.create(name="Deleted")
    deleted_pk = deleted.pk
    deleted.delete()
    at = timezone.now() - timedelta(hours=1)
    live = Release.objects.create(name="Went live", status=ReleaseStatus.PUBLISHED, publish_at=at, published_at=at)
    gone = Release.objects.create(name="Gone", status=ReleaseStatus.ROLLED_BACK, publish_at=at, published_at=at)
    going = Release.objects.create(name="Going", status=ReleaseStatus.PREPARING, publish_at=timezone.now(),
                                  claim_token=uuid.uuid4())
    return {
        "x": "“x” is not a release: choose one from the list.",
        "-1": "“-1” is not a release: choose one from the list.",
        "1; DROP TABLE": "“1; DROP TABLE” is not a release: choose one from the list.",
        "9" * 30: f"“{'9' * 30}” is not a release: choose one from the list.",
        "": "This field is required.",
        str(deleted_pk): f"Release #{deleted_pk} does not exist (it may have been deleted): choose another.",
        str(live.pk): "Release “Went live” is published: only a draft, scheduled or blocked release takes new members.",
        str(gone.pk): "Release “Gone” is rolled back: only a draft, scheduled or blocked release takes new members.",
        str(going.pk): "Release “Going” is preparing: only a draft, scheduled or blocked release takes new members.",
    }


def test_the_change_page_release_picker_says_what_is_wrong(client, users, live):
    client.force_login(users["publisher"])
    change = draft_change(live, users["publisher"])
    Release.objects.create(name="Open")
    url = reverse("admin:publisher_release_add_change", args=[change.pk])
    for value, error in hostile_releases().items():
        response = client.post(url, {"release": value})
        assert response.status_code == 200, value
        assert response.context["release_form"].errors == {"release": [error]}, value
        assert error in response.content.decode(), value
    assert ArticleRevision.objects.get(pk=change.pk).release_id is None
    assert not ReleaseEvent.objects.filter(action="changes_added").exists()
    # A change that no longer exists: said, not a 404.
    response = client.post(reverse("admin:publisher_release_add_change", args=[999999]), {"release": "1"},
                           follow=True)
    assert texts(response) == ["Change #999999 does not exist."]
    # A refusal of the service (the change is not joinable) is a form error too.
    other = Release.objects.create(name="Other")
    ArticleRevision.objects.filter(pk=change.pk).update(status=RevisionStatus.CANCELLED)
    response = client.post(url, {"release": other.pk})
    assert response.context["release_form"].errors == {"release": [
        f"Change #{change.pk} was not added to “Other”: it is cancelled: only a draft, scheduled or failed change "
        "can join a release."]}


def test_the_article_list_add_to_a_release_says_what_is_wrong(client, users):
    client.force_login(users["editor"])
    draft = make_article(title="A draft")
    Release.objects.create(name="Open")
    selection = {"action": "add_to_release", "_selected_action": [draft.pk], "apply": "1"}
    for value, error in hostile_releases().items():
        response = client.post(CHANGELIST, {**selection, "release": value})
        assert response.status_code == 200, value
        assert response.context["form"].errors == {"release": [error]}, value
    assert Article.objects.get(pk=draft.pk).release_id is None


def test_the_release_pages_of_a_deleted_or_live_release(client, users):
    client.force_login(users["publisher"])
    deleted = Release.objects.create(name="Deleted")
    deleted_pk = deleted.pk
    deleted.delete()
    for name in ("publisher_release_add_changes", "publisher_release_schedule", "publisher_release_rollback"):
        response = client.post(reverse(f"admin:{name}", args=[deleted_pk]), {"changes": "1"}, follow=True)
        assert response.redirect_chain == [(reverse("admin:publisher_release_changelist"), 302)], name
        assert texts(response) == [f"Release #{deleted_pk} does not exist (it may have been deleted)."], name
    response = client.post(reverse("admin:publisher_release_unschedule", args=[deleted_pk]), follow=True)
    assert texts(response) == [f"Release #{deleted_pk} does not exist (it may have been deleted)."]

    at = timezone.now() - timedelta(hours=1)
    went_live = Release.objects.create(name="Went live", status=ReleaseStatus.PUBLISHED, publish_at=at,
                                       published_at=at)
    for value in ("1", "abc"):
        response = client.post(reverse("admin:publisher_release_add_changes", args=[went_live.pk]),
                               {"changes": value})
        assert response.status_code == 200
    assert response.context["form"].errors == {"changes": ["Give change numbers separated by commas, e.g. 12, 15."]}
    response = client.post(reverse("admin:publisher_release_add_changes", args=[went_live.pk]), {"changes": "1"})
    assert response.context["form"].errors == {"__all__": [
        "The changes of release “Went live” cannot be edited: it is published."]}


# --- 3. Who may put a change live ---------------------------------------------------------------

def test_an_editor_without_the_publish_permission_saves_draft_changes(client, users, live):
    editor = users["editor"]
    client.force_login(editor)
    page = client.get(change_url(live)).content.decode()
    assert "Save as a draft change" in page and "Publish the change now" not in page
    assert PUBLISH_NEEDED in page and 'name="change_publish_at_0"' not in page

    # A hostile "now" is a form error, nothing saved.
    response = client.post(change_url(live), form_data(title="Live story", body="Sneaky.", slug="live-story",
                                                       change_when="now"))
    assert response.context["adminform"].form.errors == {"change_when": [PUBLISH_NEEDED]}
    assert not ArticleRevision.objects.exists()

    response = client.post(change_url(live), form_data(title="Live story", body="Fixed text.",
                                                       slug="live-story", change_notify="on"), follow=True)
    change = ArticleRevision.objects.get()
    assert (change.status, change.publish_at, change.author, change.notify_subscribers) == (
        RevisionStatus.DRAFT, None, editor, True)
    assert texts(response) == [f"The change to “Live story” is saved as draft change #{change.pk}: readers see the "
                               "live version until it is published or scheduled from its page."]
    assert Article.objects.get(pk=live.pk).body == "Old text."

    url = page_url(change)
    Release.objects.create(name="Open")
    page = client.get(url).content.decode()
    assert 'value="publish_now"' not in page and 'value="schedule"' not in page
    assert page.count(PUBLISH_NEEDED) == 2  # publishing, and the release picker
    assert 'name="notify_subscribers"' in page and "Restore as a new draft change" in page
    for action in ("publish_now", "schedule"):
        response = client.post(url, {"action": action, "notify_shown": "1",
                                     **local(timezone.now() + timedelta(days=1))}, follow=True)
        assert response.status_code == 200 and response.redirect_chain == [(url, 302)]
        assert texts(response) == [f"The change was not published or scheduled: {PUBLISH_NEEDED}"]
    change.refresh_from_db()
    assert (change.status, change.notify_subscribers) == (RevisionStatus.DRAFT, True)  # nothing written

    # The draft itself stays theirs: the tick, a restore, a cancel.
    client.post(url, {"action": "notify", "notify_shown": "1"})
    assert ArticleRevision.objects.get(pk=change.pk).notify_subscribers is False
    response = client.post(url, {"action": "restore"})
    assert response.status_code == 302

    # Adding it to a release is publishing too: explained, nothing written.
    open_release = Release.objects.get(name="Open")
    response = client.post(reverse("admin:publisher_release_add_change", args=[change.pk]),
                           {"release": open_release.pk})
    assert response.status_code == 200
    assert response.context["release_form"].errors == {"__all__": [f"The change was not added: {PUBLISH_NEEDED}"]}
    add = reverse("admin:publisher_release_add_changes", args=[open_release.pk])
    assert PUBLISH_NEEDED in client.get(add).content.decode()
    response = client.post(add, {"changes": str(change.pk)})
    assert response.context["form"].errors == {"__all__": [f"Changes were not added: {PUBLISH_NEEDED}"]}
    assert ArticleRevision.objects.get(pk=change.pk).release_id is None

    # Scheduling a release that holds a change puts the change live: a Publisher's too.
    ArticleRevision.objects.filter(pk=change.pk).update(release=open_release)
    schedule = reverse("admin:publisher_release_schedule", args=[open_release.pk])
    assert CHANGES_NEED_PUBLISH in client.get(schedule).content.decode()
    response = client.post(schedule, {**local(timezone.now() + timedelta(days=1)), "unpublish_at_0": "",
                                      "unpublish_at_1": "", "unpublish_at_2": ""})
    assert response.context["form"].errors == {"__all__": [f"The release was not scheduled: {CHANGES_NEED_PUBLISH}"]}
    assert Release.objects.get(pk=open_release.pk).status == ReleaseStatus.DRAFT

    # So is the rollback time of a live release.
    at = timezone.now() - timedelta(hours=1)
    went_live = Release.objects.create(name="Went live", status=ReleaseStatus.PUBLISHED, publish_at=at,
                                       published_at=at)
    rollback = reverse("admin:publisher_release_rollback", args=[went_live.pk])
    response = client.post(rollback, {"unpublish_at_0": "", "unpublish_at_1": "", "unpublish_at_2": ""})
    assert response.status_code == 200
    assert response.context["form"].errors == {"__all__": [
        f"The rollback time was not saved: {ROLLBACK_NEEDS_PUBLISH}"]}
    assert not ReleaseEvent.objects.filter(release=went_live).exists()


def test_a_publisher_publishes_schedules_and_adds_changes_to_a_release(client, users, live, no_broker):
    client.force_login(users["publisher"])
    page = client.get(change_url(live)).content.decode()
    assert "Publish the change now" in page and "Save as a draft change" in page
    change = draft_change(live, users["publisher"])
    page = client.get(page_url(change)).content.decode()
    assert 'value="publish_now"' in page and 'value="schedule"' in page and PUBLISH_NEEDED not in page
    release = Release.objects.create(name="Open")
    response = client.post(reverse("admin:publisher_release_add_change", args=[change.pk]), {"release": release.pk},
                           follow=True)
    assert texts(response) == [f"Change #{change.pk} was added to “Open”."]
    assert ArticleRevision.objects.get(pk=change.pk).release_id == release.pk
