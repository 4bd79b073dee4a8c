"""Slugs: from the title when first scheduled, unique, and kept answering (301) once live."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleSlugRedirect, ArticleStatus
from publisher.site.services import article_ensure_slug, article_set_slug, slug_candidates

pytestmark = pytest.mark.django_db


def test_scheduling_makes_a_unicode_slug_from_the_title_with_a_uniqueness_suffix(article_factory):
    first = article_factory(title="Ça va? Über Straße 東京")
    second = article_factory(title="Ça va? Über Straße 東京")
    later = timezone.now() + timedelta(hours=1)
    assert first.slug is None  # a draft has no address yet
    services.article_schedule(article_id=first.pk, publish_at=later)
    services.article_schedule(article_id=second.pk, publish_at=later)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.slug == "ça-va-über-straße-東京"
    assert second.slug == "ça-va-über-straße-東京-2"


def test_rescheduling_keeps_the_slug_and_a_title_without_letters_still_gets_one(article_factory):
    article = article_factory(title="!!!")
    later = timezone.now() + timedelta(hours=1)
    services.article_schedule(article_id=article.pk, publish_at=later)
    Article.objects.filter(pk=article.pk).update(title="Renamed")
    services.article_schedule(article_id=article.pk, publish_at=later + timedelta(hours=1))
    assert Article.objects.get(pk=article.pk).slug == "article"


def test_a_slug_taken_by_a_redirect_is_not_handed_out_again(article_factory):
    owner = article_factory(title="Owner", slug="news", status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    ArticleSlugRedirect.objects.create(old_slug="news-2", article=owner)
    newcomer = article_factory(title="News")
    assert article_ensure_slug(article_id=newcomer.pk) == "news-3"
    assert next(slug_candidates("")) == "article"


def test_changing_the_slug_before_going_live_leaves_no_redirect(article_factory):
    article = article_factory(title="Draft", slug="draft")
    article_set_slug(article_id=article.pk, slug="better")
    assert Article.objects.get(pk=article.pk).slug == "better"
    assert not ArticleSlugRedirect.objects.exists()


def test_after_going_live_the_old_slug_answers_301_and_can_be_taken_back(client, live_article,
                                                                         django_capture_on_commit_callbacks):
    article = live_article("Launch day", slug="launch-day")
    with django_capture_on_commit_callbacks(execute=True):  # the site cache forgets the old pages
        article_set_slug(article_id=article.pk, slug="launch-day-2026")
    response = client.get("/articles/launch-day/")
    assert response.status_code == 301 and response["Location"] == "/articles/launch-day-2026/"
    assert client.get("/articles/launch-day-2026/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        article_set_slug(article_id=article.pk, slug="launch-day")
    assert list(ArticleSlugRedirect.objects.values_list("old_slug", flat=True)) == ["launch-day-2026"]
    assert client.get("/articles/launch-day-2026/")["Location"] == "/articles/launch-day/"


def test_an_old_slug_of_an_article_no_longer_live_does_not_reveal_its_new_address(client, live_article):
    article = live_article("Recalled", slug="recalled")
    article_set_slug(article_id=article.pk, slug="recalled-v2")
    Article.objects.filter(pk=article.pk).update(status=ArticleStatus.DRAFT)
    assert client.get("/articles/recalled/").status_code == 404
    Article.objects.filter(pk=article.pk).update(status=ArticleStatus.EXPIRED)
    assert client.get("/articles/recalled/").status_code == 410


@pytest.mark.parametrize("slug, message", [
    ("Has Spaces", "letters, digits, hyphens"),
    ("taken", "already the address of another article"),
    ("!!!", "at least one letter or digit"),
])
def test_a_bad_slug_is_refused_with_the_reason(article_factory, slug, message):
    article_factory(title="Other", slug="taken")
    article = article_factory(title="Mine", slug="mine")
    with pytest.raises(ValidationError, match=message):
        article_set_slug(article_id=article.pk, slug=slug)
