"""Small pieces the article pages show in lists and on the page: each a one-line fragment."""

from datetime import timedelta

from django.contrib import admin
from django.db import models
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import capfirst

from ..forms import ZonedDateTimeField
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
    ArticleStatus.IN_RELEASE: "#0e7490",
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


def zoned_field(name: str, description: str, *, short: bool = False):
    """A ModelAdmin column or read-only field showing the time field `name` with its zone."""
    @admin.display(description=description, ordering=name)
    def show(model_admin, obj):
        return zoned_time(getattr(obj, name), short=short)
    return show


class ZonedTimesAdmin:
    """For every ModelAdmin of the site: times entered in the editor's zone, which the inputs
    name (publisher.forms.ZonedDateTimeField), and a history page whose times say their zone.
    Lists and read-only fields name their times' zone through `zoned_field` columns."""

    object_history_template = "publisher/admin/object_history.html"

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if isinstance(db_field, models.DateTimeField) and db_field.editable and not db_field.auto_now_add:
            return ZonedDateTimeField(required=not db_field.blank, label=capfirst(db_field.verbose_name),
                                      help_text=db_field.help_text)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def history_view(self, request, object_id, extra_context=None):
        return super().history_view(request, object_id, {**(extra_context or {}), "zone_label": zone_label()})
