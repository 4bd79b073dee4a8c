"""Atom, RSS 2.0 and the sitemap, parsed by a real feed parser and an XML parser."""

import html
import xml.etree.ElementTree as ET
from datetime import timedelta

import feedparser
import pytest

from publisher.models import ArticleStatus
from publisher.site.feeds import FEED_LENGTH
from publisher.site.selectors import database_now

pytestmark = pytest.mark.django_db

SITEMAP_NS = {"s": "http://www.sitemaps.org/schemas/sitemap/0.9"}


@pytest.fixture
def site(settings, live_article):
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    live_article("Old news", body="Old *body*.", ago=timedelta(days=2))
    live_article("Fresh news", body="Fresh **body**, in full.", ago=timedelta(hours=1))
    live_article("Taken down", unpublish_at=database_now() - timedelta(seconds=1))
    live_article("Embargoed", status=ArticleStatus.SCHEDULED, published_at=None,
                 publish_at=database_now() + timedelta(minutes=5))


@pytest.mark.parametrize("url, version", [("/feeds/atom/", "atom10"), ("/feeds/rss/", "rss20")])
def test_feeds_list_the_live_articles_newest_first_with_full_content(client, site, url, version):
    response = client.get(url)
    parsed = feedparser.parse(response.content)
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == version
    assert [e.title for e in parsed.entries] == ["Fresh news", "Old news"]
    fresh = parsed.entries[0]
    assert fresh.link == "https://news.example.com/articles/fresh-news/"
    content = fresh.content[0].value if version == "atom10" else fresh.description
    assert "<strong>body</strong>, in full." in content
    assert fresh.published_parsed is not None and fresh.updated_parsed is not None


def test_atom_updated_dates_follow_the_articles(client, site):
    from publisher.models import Article

    fresh = Article.objects.get(slug="fresh-news")
    parsed = feedparser.parse(client.get("/feeds/atom/").content)
    entry = parsed.entries[0]
    assert entry.updated_parsed[:6] == max(fresh.updated_at, fresh.published_at).utctimetuple()[:6]
    assert entry.published_parsed[:6] == fresh.published_at.utctimetuple()[:6]
    assert parsed.feed.updated_parsed == entry.updated_parsed  # the feed's own date: its latest entry


def test_feeds_carry_at_most_the_latest_fifty(client, live_article):
    for n in range(FEED_LENGTH + 3):
        live_article(f"Item {n}", ago=timedelta(minutes=n + 1))
    entries = feedparser.parse(client.get("/feeds/rss/").content).entries
    assert len(entries) == FEED_LENGTH and entries[0].title == "Item 0"


def test_a_hostile_body_is_inert_in_the_feed(client, live_article):
    live_article("Hostile", body='<script>alert(1)</script> [x](javascript:alert(2)) <img src=x onerror="alert(3)">')
    live_article("Teaching", body="Type `<script>alert(4)</script>` to start.")  # in its plain-text excerpt
    for url in ("/feeds/atom/", "/feeds/rss/"):
        raw = client.get(url).content.decode()
        rendered = html.unescape(raw).lower()  # the HTML a reader takes from the feed
        assert "<script" not in rendered and "javascript:" not in rendered and "onerror" not in rendered, url
        assert "&lt;script&gt;alert(4)" in rendered, url  # shown as text, as the author meant


def test_sitemap_lists_live_articles_with_lastmod_and_robots_names_it(client, site):
    root = ET.fromstring(client.get("/sitemap.xml").content)
    urls = {u.find("s:loc", SITEMAP_NS).text: u.find("s:lastmod", SITEMAP_NS).text
            for u in root.findall("s:url", SITEMAP_NS)}
    assert set(urls) == {"https://news.example.com/articles/fresh-news/",
                         "https://news.example.com/articles/old-news/"}
    assert all(lastmod for lastmod in urls.values())
    assert "Sitemap: https://news.example.com/sitemap.xml" in client.get("/robots.txt").content.decode()
