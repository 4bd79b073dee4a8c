"""Caching that follows the schedule: max-age never past the next change, 304, invalidation."""

import re
import time
from datetime import timedelta

import pytest

from publisher.models import Article, ArticleStatus
from publisher.pipeline import step_make_live
from publisher.services import article_set_unpublish_at, articles_take_down_expired
from publisher.site.selectors import database_now, max_age_until

pytestmark = pytest.mark.django_db


def max_age(response) -> int:
    return int(re.search(r"max-age=(\d+)", response["Cache-Control"]).group(1))


@pytest.mark.parametrize("seconds_ahead, expected", [
    (None, 60), (0, 0), (-5, 0), (0.999, 0), (1.0, 1), (1.5, 1), (59.999, 59), (60, 60), (61, 60), (3600, 60),
])
def test_max_age_never_reaches_past_the_next_change(seconds_ahead, expected):
    now = database_now()
    when = None if seconds_ahead is None else now + timedelta(seconds=seconds_ahead)
    assert max_age_until(when, now=now) == expected


def test_index_feeds_and_sitemap_expire_by_the_next_publish_time(client, live_article):
    live_article("Live")
    live_article("Next", status=ArticleStatus.SCHEDULED, published_at=None,
                 publish_at=database_now() + timedelta(seconds=10.5))
    for url in ("/", "/feeds/atom/", "/feeds/rss/", "/sitemap.xml", "/articles/no-such/"):
        assert max_age(client.get(url)) in (9, 10), url
    assert max_age(client.get("/articles/live/")) == 60  # its own page waits for nobody else


def test_a_publish_time_that_came_but_did_not_go_live_yet_means_no_caching(client, live_article):
    live_article("Overdue", status=ArticleStatus.PUBLISHING, published_at=None, claim_token="1" * 32,
                 publish_at=database_now() - timedelta(seconds=1))
    response = client.get("/")
    assert max_age(response) == 0


def test_article_page_expires_by_its_own_unpublish_time_and_the_cap(client, live_article, settings):
    settings.PUBLISHER_PUBLIC_MAX_AGE = 30
    live_article("Leaving", unpublish_at=database_now() + timedelta(seconds=12.5))
    live_article("Staying")
    assert max_age(client.get("/articles/leaving/")) in (11, 12)
    assert max_age(client.get("/articles/staying/")) == 30
    assert max_age(client.get("/")) in (11, 12)  # the index loses it then too


def test_conditional_get_answers_304(client, live_article):
    live_article("Cached")
    for url in ("/", "/articles/cached/", "/feeds/atom/", "/sitemap.xml"):
        first = client.get(url)
        assert first.status_code == 200 and first["ETag"] and first["Last-Modified"], url
        assert client.get(url, headers={"if-none-match": first["ETag"]}).status_code == 304
        assert client.get(url, headers={"if-modified-since": first["Last-Modified"]}).status_code == 304
        assert client.get(url, headers={"if-none-match": '"other"'}).status_code == 200


def test_server_cache_is_invalidated_on_go_live_and_take_down(client, live_article,
                                                               django_capture_on_commit_callbacks):
    live_article("First")
    assert b"Second" not in client.get("/").content
    second = live_article("Second", status=ArticleStatus.PUBLISHING, published_at=None, claim_token="2" * 32,
                          publish_at=database_now() + timedelta(hours=1))
    # Changed behind the cache's back: the cached index stands until something says so.
    Article.objects.filter(pk=second.pk).update(publish_at=database_now() - timedelta(seconds=1))
    assert b"Second" not in client.get("/").content
    with django_capture_on_commit_callbacks(execute=True):
        published, _ = step_make_live(article_ids=[second.pk], token="2" * 32)
    assert published == [second.pk]
    assert b"Second" in client.get("/").content

    unpublish_at = database_now() + timedelta(seconds=1.2)
    with django_capture_on_commit_callbacks(execute=True):
        article_set_unpublish_at(article_id=second.pk, unpublish_at=unpublish_at)
    assert b"Second" in client.get("/").content and max_age(client.get("/")) <= 1
    time.sleep(max(0.0, (unpublish_at - database_now()).total_seconds()) + 0.05)
    assert b"Second" not in client.get("/").content  # its own schedule, before any scan ran
    with django_capture_on_commit_callbacks(execute=True):
        assert articles_take_down_expired() == 1
    assert client.get("/articles/second/").status_code == 410


def test_error_pages_and_redirects_are_not_kept_in_the_server_cache(client, live_article):
    assert client.get("/articles/soon/").status_code == 404
    live_article("Soon")
    assert client.get("/articles/soon/").status_code == 200


def test_a_page_rendered_before_a_go_live_is_not_cached_past_it(rf, live_article):
    """The go-live lands while the index renders (after the view read the articles, before the
    response is stored): the freshness must be the one the view's data had, not the later one,
    or the page without the new article would be cached until the next change after it."""
    from publisher.site.cache import schedule_cached
    from publisher.site.selectors import site_freshness
    from publisher.site.views import index

    due = live_article("Due now", status=ArticleStatus.PUBLISHING, published_at=None, claim_token="1" * 32,
                       publish_at=database_now() - timedelta(milliseconds=1), unpublish_at=None)

    def index_then_go_live(request):
        response = index(request)
        response.render()  # the articles were read: "Due now" is not among them
        Article.objects.filter(pk=due.pk).update(status=ArticleStatus.PUBLISHED, published_at=database_now())
        return response

    first = schedule_cached(site_freshness)(index_then_go_live)(rf.get("/?race"))
    assert b"Due now" not in first.content
    assert max_age(first) == 0
    again = schedule_cached(site_freshness)(index)(rf.get("/?race"))
    assert b"Due now" in again.content


def test_the_site_freshness_is_the_clock_and_one_statement_of_every_scheduled_time(live_article,
                                                                                   django_assert_num_queries):
    from django.db import connection

    from publisher.site.selectors import _site_times, site_freshness

    now = database_now()
    live = live_article("Live", unpublish_at=now + timedelta(minutes=9))
    gone = live_article("Gone", ago=timedelta(hours=2), unpublish_at=now - timedelta(minutes=30))
    waiting = live_article("Waiting", status=ArticleStatus.SCHEDULED, published_at=None,
                           publish_at=now + timedelta(minutes=7))
    overdue = live_article("Overdue", status=ArticleStatus.PUBLISHING, published_at=None, claim_token="1" * 32,
                           publish_at=now + timedelta(minutes=8))
    Article.objects.filter(pk=live.pk).update(updated_at=now - timedelta(minutes=1))
    Article.objects.filter(pk=gone.pk).update(updated_at=now - timedelta(hours=1))
    Article.objects.filter(pk__in=[waiting.pk, overdue.pk]).update(updated_at=now)  # never live: not counted

    times = _site_times()
    assert times == {
        "scheduled": waiting.publish_at, "publishing": overdue.publish_at, "unpublishing": live.unpublish_at,
        "change": None, "updated": now - timedelta(minutes=1), "published": live.published_at,
        "taken_down": gone.unpublish_at,
    }
    assert all(value is None or value.utcoffset() == timedelta(0) for value in times.values())
    # The clock (a statement on PostgreSQL; this process's clock on SQLite), then one statement.
    with django_assert_num_queries(2 if connection.vendor == "postgresql" else 1):
        max_age, last_modified = site_freshness()
    assert max_age == 60  # the first coming time (the publish in 7 minutes) is past the 60 s cap
    assert last_modified == now - timedelta(minutes=1)
