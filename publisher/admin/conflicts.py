"""Scheduling warnings (publisher.conflicts) as the admin shows them: the sentence, each item
it names linked to its page."""

from django.urls import reverse
from django.utils.html import format_html

from ..conflicts import Conflict, Ref

PAGES = {"article": "admin:publisher_article_change", "release": "admin:publisher_release_change"}


def ref_link(ref: Ref) -> str:
    if ref.kind not in PAGES:  # a kind of item with no page here yet: named, not linked
        return format_html('<span class="conflict-{}">{}</span>', ref.kind, ref.label)
    return format_html('<a href="{}" class="conflict-{}">{}</a>', reverse(PAGES[ref.kind], args=[ref.pk]), ref.kind,
                       ref.label)


def conflict_html(conflict: Conflict) -> str:
    """The warning's sentence, its items linked (everything else escaped)."""
    return format_html(conflict.template, *(ref_link(a) if isinstance(a, Ref) else a for a in conflict.args))
