"""The release page's changes to live articles through the test client: add changes by number
(refusals said with their reason, bad input refused at the form), see them listed, remove one."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from publisher import dispatch, revisions
from publisher.models import Article, ArticleRevision, ArticleStatus, Release
from publisher.states import RevisionStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.admin import texts


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr(dispatch, "publish_release", lambda **kw: None)
    monkeypatch.setattr(dispatch, "revisions_claimed", lambda **kw: None)


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Publishers", email="edith@example.com")


def test_an_editor_adds_a_change_to_a_release_and_removes_it(client, editor):
    client.force_login(editor)
    now = timezone.now()
    live = make_article(title="Live", body="Old.", status=ArticleStatus.PUBLISHED, publish_at=now, published_at=now,
                        slug="live")
    change = revisions.revision_create(article_id=live.pk, title="Live, updated", body="New.", image_alt="",
                                       publish_at=now + timedelta(hours=1), actor=editor)
    draft = make_article(title="A draft")
    release = Release.objects.create(name="Launch")
    page = reverse("admin:publisher_release_change", args=[release.pk])
    add = reverse("admin:publisher_release_add_changes", args=[release.pk])
    assert "Add a change…" in client.get(page).content.decode()

    response = client.post(add, {"changes": "twelve"})
    assert "Give change numbers separated by commas, e.g. 12, 15." in response.content.decode()
    response = client.post(add, {"changes": f"#{change.pk}, 999999"}, follow=True)
    assert texts(response) == [f"Added to “Launch”: change #{change.pk}.",
                               "Change #999999 was not added: it no longer exists."]
    change.refresh_from_db()
    assert (change.release_id, change.status) == (release.pk, RevisionStatus.DRAFT)
    html = client.get(page).content.decode()
    assert f"Change #{change.pk}</a>" in html and "remove-change" in html
    assert draft.title not in html

    remove = reverse("admin:publisher_release_remove_change", args=[release.pk, change.pk])
    response = client.post(remove, follow=True)
    assert texts(response) == [f"Change #{change.pk} was removed from “Launch”: it is a draft change of its "
                               "article again."]
    assert ArticleRevision.objects.get(pk=change.pk).release_id is None
    assert Article.objects.get(pk=live.pk).title == "Live"


def test_a_change_is_added_to_a_release_from_its_own_page(client, editor):
    client.force_login(editor)
    now = timezone.now()
    live = make_article(title="Live", body="Old.", status=ArticleStatus.PUBLISHED, publish_at=now, published_at=now,
                        slug="live")
    change = revisions.revision_create(article_id=live.pk, title="Live, updated", body="New.", image_alt="",
                                       publish_at=now + timedelta(hours=1), actor=editor)
    release = Release.objects.create(name="Launch")
    Release.objects.create(name="Old launch", status="rolled_back")
    page = reverse("admin:publisher_article_revision", args=[live.pk, change.pk])
    html = client.get(page).content.decode()
    assert "Add this change to a release" in html and "Launch (draft)" in html and "Old launch" not in html
    response = client.post(reverse("admin:publisher_release_add_change", args=[change.pk]),
                           {"release": release.pk}, follow=True)
    assert texts(response) == [f"Change #{change.pk} was added to “Launch”."]
    assert response.redirect_chain[-1][0] == reverse("admin:publisher_release_change", args=[release.pk])
    assert ArticleRevision.objects.get(pk=change.pk).release_id == release.pk
    # In a release: no longer offered on its page.
    assert "Add this change to a release" not in client.get(page).content.decode()
    response = client.post(reverse("admin:publisher_release_add_change", args=[change.pk]), {"release": "x"})
    assert response.status_code == 200
    assert response.context["release_form"].errors == {"release": ["“x” is not a release: choose one from the list."]}
