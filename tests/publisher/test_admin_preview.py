"""Previews: the staff *Preview* of an article (the public template, noindex, never cached),
the shareable preview link (signed, own salt, expiring, read-only, the article as it is now),
and the body's live Markdown preview endpoint (staff only, CSRF-checked)."""

from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleStatus
from publisher.site.preview import PREVIEW_SALT, preview_token
from publisher.subscriptions import unsubscribe_token
from tests import factories
from tests.factories import make_article, make_user
from tests.support.admin import change_url


@pytest.fixture
def editor_client(client, db):
    factories.newsroom_groups()
    client.force_login(make_user("edith", "Editors"))
    return client


def preview_url(article) -> str:
    return reverse("admin:publisher_article_preview", args=[article.pk])


def share_url(article) -> str:
    return reverse("site:preview", args=[preview_token(article.pk)])


def assert_private_noindex(response):
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    cache_control = {part.strip() for part in response["Cache-Control"].split(",")}
    assert {"private", "no-store", "no-cache"} <= cache_control
    assert "public" not in cache_control
    assert b'<meta name="robots" content="noindex, nofollow">' in response.content


def test_preview_renders_a_draft_with_the_public_template_and_sanitizer(editor_client):
    article = make_article(title="Draft story", body="Hello **world**.\n\n<script>alert(1)</script>")
    response = editor_client.get(preview_url(article))
    assert response.status_code == 200
    assert [t.name for t in response.templates][0] == "site/article.html"
    page = response.content.decode()
    assert "<h1>Draft story</h1>" in page
    assert "<p>Hello <strong>world</strong>.</p>" in page
    assert "<script>alert(1)</script>" not in page
    assert 'class="preview-banner"' in page
    assert_private_noindex(response)
    # Nothing was written: the draft is still a draft with no rendered body.
    article.refresh_from_db()
    assert (article.status, article.body_html) == (ArticleStatus.DRAFT, "")


def test_preview_of_a_scheduled_article_shows_its_publish_time(editor_client):
    when = timezone.now() + timedelta(days=2)
    article = services.article_schedule(article_id=make_article(title="Later").pk, publish_at=when)
    response = editor_client.get(preview_url(article))
    assert response.status_code == 200
    assert response.context["article"].published_at == when
    assert response.context["canonical"] == f"http://testserver/articles/{article.slug}/"


def test_preview_is_for_staff_only(client, db):
    article = make_article()
    response = client.get(preview_url(article))
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_article_page_offers_preview_and_a_shareable_link(editor_client):
    article = make_article(title="Shared")
    page = editor_client.get(change_url(article)).content.decode()
    assert f'href="{preview_url(article)}"' in page
    assert 'id="preview-link"' in page
    token = page.split('value="http://testserver/preview/', 1)[1].split("/", 1)[0]
    assert signing.TimestampSigner(salt=PREVIEW_SALT).unsign(token) == str(article.pk)
    assert "Markdown:" in page
    assert f'data-preview-url="{reverse("admin:publisher_article_markdown_preview")}"' in page
    assert "publisher/markdown_preview.js" in page


def test_a_shareable_link_opens_without_login_and_shows_the_article_as_it_is_now(client, db):
    article = make_article(title="First title", body="First text.")
    url = share_url(article)
    Article.objects.filter(pk=article.pk).update(title="Second title", body="Second *text*.")
    response = client.get(url)
    assert response.status_code == 200
    page = response.content.decode()
    assert "<h1>Second title</h1>" in page and "<em>text</em>" in page and "First" not in page
    assert_private_noindex(response)
    assert client.post(url).status_code == 405  # read-only


def test_a_shareable_link_expires_after_the_configured_days(client, db, settings):
    settings.PUBLISHER_PREVIEW_DAYS = 2
    article = make_article(title="Soon gone")
    url = share_url(article)
    with time_machine.travel(timezone.now() + timedelta(days=2, seconds=-30)):
        assert client.get(url).status_code == 200
    with time_machine.travel(timezone.now() + timedelta(days=2, seconds=30)):
        response = client.get(url)
    assert response.status_code == 410
    assert "This preview link has expired" in response.content.decode()
    assert "Soon gone" not in response.content.decode()
    assert_private_noindex(response)


@pytest.mark.parametrize("token", ["forged", "1:1aaaaa:bbbbbbbbbbbbbbbbbbbbbbbbbbb"])
def test_a_forged_link_gets_a_clear_page(client, db, token):
    make_article(title="Secret")
    response = client.get(f"/preview/{token}/")
    assert response.status_code == 404
    assert "This preview link does not work" in response.content.decode()
    assert "Secret" not in response.content.decode()


def test_another_salts_token_opens_no_preview(client, db):
    article = make_article(title="Secret")
    response = client.get(f"/preview/{unsubscribe_token(article.pk)}/")
    assert response.status_code == 404
    assert "Secret" not in response.content.decode()


def test_a_link_to_a_deleted_article_says_it_does_not_work(client, db):
    article = make_article(title="Deleted")
    url = share_url(article)
    article.delete()
    response = client.get(url)
    assert response.status_code == 404
    assert "This preview link does not work" in response.content.decode()


def test_robots_txt_keeps_crawlers_out_of_previews(client, db):
    assert "Disallow: /preview/" in client.get("/robots.txt").content.decode().splitlines()


def test_markdown_endpoint_renders_with_the_pipelines_renderer(editor_client):
    url = reverse("admin:publisher_article_markdown_preview")
    response = editor_client.post(url, {"body": "# Head\n\nA [link](https://example.com) <img src=x onerror=alert(1)>"})
    assert response.status_code == 200
    assert response.json() == {
        "html": '<h1>Head</h1>\n<p>A <a href="https://example.com" rel="noopener noreferrer">link</a> '
                '<img src="x"></p>',
        "words": 3,
    }
    assert editor_client.get(url).status_code == 405


def test_markdown_endpoint_needs_staff_and_the_csrf_token(db):
    factories.newsroom_groups()
    url = reverse("admin:publisher_article_markdown_preview")
    assert Client().post(url, {"body": "x"}).status_code == 302  # to the login page
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(make_user("edith", "Editors"))
    assert checked.post(url, {"body": "x"}).status_code == 403
    checked.get(reverse("admin:publisher_article_add"))
    token = checked.cookies["csrftoken"].value
    assert checked.post(url, {"body": "*x*"}, HTTP_X_CSRFTOKEN=token).json()["html"] == "<p><em>x</em></p>"
