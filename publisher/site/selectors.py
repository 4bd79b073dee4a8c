"""Reads for the public site: what is visible, and when the next scheduled change is."""

import math
from datetime import datetime

from django.conf import settings
from django.db import connection
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Now
from django.utils import timezone

from publisher.models import Article, ArticleRevision, ArticleStatus


def database_now() -> datetime:
    """The database's clock, which decides visibility (Now() in the queries)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT STATEMENT_TIMESTAMP()")
            return cursor.fetchone()[0]
    return timezone.now()  # SQLite's clock is this process's host clock


def articles_visible():
    """Newest first: the index, the feeds and the sitemap."""
    return Article.objects.visible().exclude(slug__isnull=True).order_by("-published_at", "-id")


def _first(queryset, field: str) -> datetime | None:
    return queryset.order_by(field).values_list(field, flat=True).first()


def site_next_change() -> datetime | None:
    """When the set of visible articles changes next by the schedule alone: the earliest
    publish time still waiting (one already past but not live yet counts: it is due any
    moment), or the earliest unpublish time of a visible article. Each read uses a partial index."""
    times = [
        _first(Article.objects.filter(status=ArticleStatus.SCHEDULED), "publish_at"),
        _first(Article.objects.filter(status=ArticleStatus.PUBLISHING), "publish_at"),
        _first(Article.objects.filter(status=ArticleStatus.PUBLISHED, unpublish_at__gt=Now()), "unpublish_at"),
        # A change to a live article (publisher.revisions) changes its page, the index and the feeds.
        _first(ArticleRevision.objects.to_come(), "publish_at"),
    ]
    times = [t for t in times if t is not None]
    return min(times) if times else None


def max_age_until(when: datetime | None, *, now: datetime) -> int:
    """Whole seconds a response may be cached: never past `when`, never over the cap."""
    cap = settings.PUBLISHER_PUBLIC_MAX_AGE
    if when is None:
        return cap
    return max(0, min(cap, math.floor((when - now).total_seconds())))


def site_freshness() -> tuple[int, datetime | None]:
    """(max-age, Last-Modified) for the index, the feeds, the sitemap and the error pages."""
    now = database_now()
    max_age = max_age_until(site_next_change(), now=now)
    went_live = Article.objects.filter(published_at__isnull=False)
    changed = went_live.aggregate(updated=Max("updated_at"), published=Max("published_at"))
    taken_down = _latest(went_live.filter(unpublish_at__lte=now), "unpublish_at")
    times = [t for t in (changed["updated"], changed["published"], taken_down) if t is not None]
    return max_age, (min(max(times), now) if times else None)


def _latest(queryset, field: str) -> datetime | None:
    return queryset.order_by(f"-{field}").values_list(field, flat=True).first()


def with_next_change(queryset):
    """Each article with `next_change_at`, the time of its pending change (publisher.revisions),
    read in the same statement as the article itself: a page rendered from a row read just
    before the change went live is then never cached past the change's time (read afterwards,
    the change would be gone and the old page cached for PUBLISHER_PUBLIC_MAX_AGE)."""
    pending = (ArticleRevision.objects.to_come().filter(article=OuterRef("pk")).order_by("publish_at")
               .values("publish_at")[:1])
    return queryset.annotate(next_change_at=Subquery(pending))


def article_freshness(article: Article) -> tuple[int, datetime | None]:
    """(max-age, Last-Modified) for a visible article's page: until its own unpublish time, or
    its pending change's time if that comes first (`with_next_change`, else read now)."""
    if "next_change_at" in article.__dict__:
        change = article.next_change_at
    else:
        change = _first(ArticleRevision.objects.filter(article_id=article.pk).pending(), "publish_at")
    until = min((t for t in (article.unpublish_at, change) if t is not None), default=None)
    return max_age_until(until, now=database_now()), article.updated_at
