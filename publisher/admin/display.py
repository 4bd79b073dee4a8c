"""Small pieces the article pages show in lists and on the page: each a one-line fragment."""

from datetime import timedelta

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from ..text import duration_text
from ..zones import local_time_text, zone_label
from ..models import Article, ArticleStatus

STATUS_COLOURS = {
    ArticleStatus.DRAFT: "#6b7280",
    ArticleStatus.SCHEDULED: "#2563eb",
    ArticleStatus.PUBLISHING: "#d97706",
    ArticleStatus.PUBLISHED: "#15803d",
    ArticleStatus.FAILED: "#b91c1c",
    ArticleStatus.EXPIRED: "#4b5563",
    ArticleStatus.MISSED: "#9333ea",
}


def status_badge(status: str) -> str:
    label = ArticleStatus(status).label if status in ArticleStatus.values else status
    return format_html('<span class="status-badge status-{}" style="background:{}">{}</span>',
                       status, STATUS_COLOURS.get(status, "#6b7280"), label)


def zoned_time(value, *, short: bool = False) -> str:
    """A time in the editor's zone that says its zone; on hover, in full with the zone's name."""
    if value is None:
        return "—"
    return format_html('<time datetime="{}" title="{} — {}">{}</time>', value.isoformat(), local_time_text(value),
                       zone_label(at=value), local_time_text(value, short=short))


def time_column(field: str, description: str):
    """A list column showing the model's `field` (a datetime) in the editor's zone, sortable."""
    @admin.display(description=description, ordering=field)
    def column(model_admin, obj):
        return zoned_time(getattr(obj, field), short=True)
    return column


def lateness_text(article: Article, *, now=None) -> str:
    now = now or timezone.now()
    if article.published_at and article.publish_at:
        late = article.published_at - article.publish_at
        if late < timedelta(seconds=1):
            return format_html('<span class="on-time">on time (+{})</span>', duration_text(max(late, timedelta())))
        return format_html('<span class="late">{} late</span>', duration_text(late))
    if article.status == ArticleStatus.SCHEDULED and article.publish_at and article.publish_at < now:
        return format_html('<span class="overdue">overdue by {}</span>', duration_text(now - article.publish_at))
    if article.status == ArticleStatus.SCHEDULED and article.publish_at:
        return format_html('<span class="quiet">in {}</span>', duration_text(article.publish_at - now))
    if article.status == ArticleStatus.PUBLISHING and article.publish_at:
        if article.publish_at > now:
            return format_html('<span class="quiet">goes live in {}</span>', duration_text(article.publish_at - now))
        return format_html('<span class="quiet">{}</span>', "going live now")
    return "—"
