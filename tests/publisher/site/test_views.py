"""The public pages: what a reader sees, and what they never see before its time."""

import re
import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from publisher.models import Article, ArticleStatus
from publisher.site.selectors import database_now
from publisher.site.views import PAGE_SIZE

pytestmark = pytest.mark.django_db

HIDDEN = [ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING, ArticleStatus.FAILED,
          ArticleStatus.MISSED]


def test_index_lists_what_is_live_newest_first(client, live_article):
    live_article("Older", ago=timedelta(hours=2))
    live_article("Newer", ago=timedelta(hours=1))
    live_article("Leaving later", unpublish_at=database_now() + timedelta(hours=1))
    live_article("Gone already", unpublish_at=database_now() - timedelta(seconds=1))
    for status in HIDDEN:
        live_article(f"Secret {status}", status=status, published_at=None,
                     publish_at=database_now() + timedelta(hours=1), claim_token="0" * 32)
    response = client.get("/")
    assert response.status_code == 200
    titles = re.findall(r'<h2><a href="/articles/[^"]+/">([^<]+)</a></h2>', response.content.decode())
    assert titles == ["Leaving later", "Newer", "Older"]
    assert b"Secret" not in response.content and b"Gone already" not in response.content


def test_index_is_paginated(client, live_article):
    for n in range(PAGE_SIZE + 1):
        live_article(f"Article {n}", ago=timedelta(minutes=n + 1))
    first, second = client.get("/"), client.get("/?page=2")
    assert first.content.count(b"<article") == PAGE_SIZE and b'rel="next" href="?page=2"' in first.content
    assert second.content.count(b"<article") == 1 and b"Article 20" in second.content


def test_article_page_has_canonical_social_meta_zoned_date_body_and_alt(client, live_article, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    image = SimpleUploadedFile("cat.png", b"not really a png", content_type="image/png")
    article = live_article("Cats at dawn", body="# Heading\n\nA *fine* cat.", image=image,
                           image_alt="A grey cat on a wall")
    page = client.get("/articles/cats-at-dawn/").content.decode()
    assert '<link rel="canonical" href="https://news.example.com/articles/cats-at-dawn/">' in page
    assert '<meta property="og:title" content="Cats at dawn">' in page
    assert '<meta property="og:url" content="https://news.example.com/articles/cats-at-dawn/">' in page
    assert f'<meta property="og:image" content="https://news.example.com{article.image.url}">' in page
    assert '<meta name="twitter:card" content="summary_large_image">' in page
    assert f'alt="A grey cat on a wall"' in page
    assert "<h1>Heading</h1>" in page and "<em>fine</em>" in page
    shown = article.published_at.strftime("%-d %B %Y, %H:%M")
    assert f"{shown} UTC</time>" in page  # the date names its zone


@pytest.mark.parametrize("status", HIDDEN)
def test_an_article_not_live_answers_404_exactly_like_one_that_never_existed(client, live_article, status):
    live_article("Embargoed merger", body="The secret terms.", status=status, published_at=None,
                 publish_at=database_now() + timedelta(seconds=30), claim_token="0" * 32)
    response = client.get("/articles/embargoed-merger/")
    never = client.get("/articles/no-such-article/")
    assert response.status_code == never.status_code == 404
    assert response.content == never.content
    assert b"Embargoed" not in response.content and b"secret" not in response.content


def test_taken_down_answers_410_but_expired_without_ever_going_live_is_404(client, live_article):
    live_article("Expired", status=ArticleStatus.EXPIRED, unpublish_at=database_now() - timedelta(minutes=1))
    live_article("Past unpublish", unpublish_at=database_now() - timedelta(milliseconds=1))
    live_article("Never live", status=ArticleStatus.EXPIRED, published_at=None)
    assert client.get("/articles/expired/").status_code == 410
    gone = client.get("/articles/past-unpublish/")
    assert gone.status_code == 410 and b"Past unpublish" not in gone.content
    assert client.get("/articles/never-live/").status_code == 404


def test_the_database_clock_takes_an_article_down_on_its_second_without_a_scan(client, live_article):
    unpublish_at = database_now() + timedelta(seconds=1)
    live_article("Short lived", unpublish_at=unpublish_at)
    assert client.get("/articles/short-lived/").status_code == 200
    time.sleep(max(0.0, (unpublish_at - database_now()).total_seconds()) + 0.05)
    response = client.get("/articles/short-lived/")
    assert response.status_code == 410
    assert Article.objects.get(slug="short-lived").status == ArticleStatus.PUBLISHED  # no job ran


def test_visibility_is_strict_at_the_boundary(live_article):
    now = database_now()
    live_article("Just ahead", unpublish_at=now + timedelta(seconds=2))
    live_article("Just past", unpublish_at=now - timedelta(microseconds=1000))
    assert list(Article.objects.visible().values_list("title", flat=True)) == ["Just ahead"]
    assert list(Article.objects.taken_down().values_list("title", flat=True)) == ["Just past"]


def test_a_hostile_body_is_inert_on_the_page(client, live_article):
    body = ('Hi <script>alert(1)</script> [click](javascript:alert(2)) <img src="x" onerror="alert(3)"> '
            '<a href="javascript:alert(4)">x</a>')
    live_article("Hostile", body=body)
    page = client.get("/articles/hostile/").content.decode().lower()
    assert "<script" not in page and "javascript:" not in page and "onerror" not in page


def test_robots_txt_names_the_sitemap(client, settings):
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    response = client.get("/robots.txt")
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "Sitemap: https://news.example.com/sitemap.xml" in response.content.decode().splitlines()


def test_a_signed_in_editor_gets_the_page_every_reader_gets(client, live_article, django_user_model):
    from publisher.models import EditorProfile

    editor = django_user_model.objects.create_user("ed", password="pw", is_staff=True)
    EditorProfile.objects.create(user=editor, time_zone="America/New_York")
    live_article("Zoned")
    client.force_login(editor)
    page = client.get("/articles/zoned/").content.decode()
    assert " UTC</time>" in page and "EST" not in page and "EDT" not in page
