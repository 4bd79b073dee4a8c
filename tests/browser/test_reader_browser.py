"""A reader in a real browser, against a live server with a real worker and beat: an article
scheduled a few seconds ahead is nowhere (404, absent from the index, the feeds and the
sitemap) until its time, everywhere within a second of it, and gone (410) on the second of its
unpublish time with beat stopped. Screenshots go to test-artifacts/browser/."""

import time
from datetime import timedelta

import pytest
from django.core.management import call_command

from publisher import services
from publisher.models import Article, ArticleStatus
from publisher.site.selectors import database_now
from scheduling.models import Heartbeat
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

VIEWPORT = {"width": 1280, "height": 900}
TITLE = "Harbour bridge reopens"


def start_pipeline(processes):
    call_command("sync_schedules", verbosity=0)
    processes.worker()
    processes.beat()
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=60, message="the first scan")


def sleep_until(moment) -> None:
    time.sleep(max(0.0, (moment - database_now()).total_seconds()))


PLACES = (("article", None), ("index", "/"), ("atom", "/feeds/atom/"), ("rss", "/feeds/rss/"),
          ("sitemap", "/sitemap.xml"))


def shows(page, base: str, slug: str, name: str, path: str | None) -> bool:
    if path is None:
        return page.request.get(f"{base}/articles/{slug}/").status == 200
    return f"/articles/{slug}/" in page.request.get(base + path).text()


def where_it_shows(page, base: str, slug: str) -> dict[str, bool]:
    """Is the article on its page, the index, the two feeds and the sitemap right now?"""
    return {name: shows(page, base, slug, name, path) for name, path in PLACES}


def test_a_reader_sees_an_article_on_its_second_and_not_after(browser, live_server, processes, screenshot, settings):
    settings.PUBLISHER_SITE_NAME = "Harbour Times"
    start_pipeline(processes)
    yesterday = database_now() - timedelta(days=1)
    Article.objects.create(title="Yesterday's news", body="Old.", status=ArticleStatus.PUBLISHED,
                           slug="yesterdays-news", body_html="<p>Old.</p>", excerpt="Old.",
                           publish_at=yesterday, published_at=yesterday)
    publish_at = database_now() + timedelta(seconds=6)
    unpublish_at = publish_at + timedelta(seconds=14)
    article = services.article_schedule(
        article_id=Article.objects.create(title=TITLE, body="The bridge is **open** again after two years.").pk,
        publish_at=publish_at, unpublish_at=unpublish_at)
    slug = article.slug
    assert slug == "harbour-bridge-reopens"

    page = browser.new_page(viewport=VIEWPORT)
    base = live_server.url
    # Before its time: nowhere, and the 404 says nothing about it.
    response = page.goto(f"{base}/articles/{slug}/")
    assert response.status == 404 and TITLE not in page.content()
    assert where_it_shows(page, base, slug) == dict.fromkeys(("article", "index", "atom", "rss", "sitemap"), False)

    # On its second: everywhere within a second, never before.
    first_seen: dict[str, float] = {}
    sleep_until(publish_at - timedelta(milliseconds=300))
    deadline = time.monotonic() + 5
    while len(first_seen) < 5 and time.monotonic() < deadline:
        for name, path in PLACES:
            asked_at = database_now()
            if name not in first_seen and shows(page, base, slug, name, path):
                first_seen[name] = (asked_at - publish_at).total_seconds()
    assert set(first_seen) == {"article", "index", "atom", "rss", "sitemap"}, first_seen
    assert all(-0.05 < delay <= 1.0 for delay in first_seen.values()), first_seen  # asked_at precedes the answer
    live = Article.objects.get(pk=article.pk)
    assert live.status == ArticleStatus.PUBLISHED and live.published_at >= publish_at

    page.goto(f"{base}/")
    assert page.locator("main h2").first.inner_text() == TITLE  # newest first
    screenshot(page, "index")
    page.goto(f"{base}/articles/{slug}/")
    assert page.locator("h1").inner_text() == TITLE
    assert "UTC" in page.locator("p.date").inner_text()
    screenshot(page, "article")

    # Beat stopped: no scan will mark it expired; the database clock takes it down on its second.
    processes.stop("beat")
    sleep_until(unpublish_at - timedelta(milliseconds=400))
    statuses = []
    while not statuses or statuses[-1][1] != 410:
        asked_at = database_now()
        status = page.request.get(f"{base}/articles/{slug}/").status
        statuses.append(((asked_at - unpublish_at).total_seconds(), status))
        assert asked_at < unpublish_at + timedelta(seconds=2), statuses
    assert all(status == 200 for delay, status in statuses[:-1] if delay < -0.05), statuses
    assert statuses[-1][0] <= 1.0, statuses
    assert Article.objects.get(pk=article.pk).status == ArticleStatus.PUBLISHED  # no scan ran: the clock did it
    response = page.goto(f"{base}/articles/{slug}/")
    assert response.status == 410 and TITLE not in page.content()
    screenshot(page, "gone")
    assert where_it_shows(page, base, slug) == dict.fromkeys(("article", "index", "atom", "rss", "sitemap"), False)
