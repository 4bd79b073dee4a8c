"""Previews: an article rendered exactly as its public page will be (the same template,
site/article.html, and the same renderer and sanitizer as the pipeline), before it is live.

Staff open it from the article page; anyone else through a shareable link: the article's id
signed with SECRET_KEY under a salt of its own (no other signed token of the site opens a
preview, and a preview token opens nothing else), valid PUBLISHER_PREVIEW_DAYS days. The link
shows the article as it is when opened, never a copy from when the link was made. Every preview
answers noindex and is never stored by a shared cache.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers, patch_cache_control

from publisher.models import Article
from publisher.rendering import render_body
from publisher.site.links import absolute_url

PREVIEW_SALT = "publisher.site.preview"


class PreviewExpired(Exception):
    """A genuine preview link older than PUBLISHER_PREVIEW_DAYS."""


def preview_max_age() -> timedelta:
    return timedelta(days=settings.PUBLISHER_PREVIEW_DAYS)


def preview_token(article_id: int) -> str:
    return signing.TimestampSigner(salt=PREVIEW_SALT).sign(str(article_id))


def read_preview_token(token: str) -> int:
    """The article id a token was made for. PreviewExpired when it is genuine but too old;
    signing.BadSignature when forged or mangled."""
    try:
        value = signing.TimestampSigner(salt=PREVIEW_SALT).unsign(token, max_age=preview_max_age())
    except signing.SignatureExpired as exc:
        raise PreviewExpired(str(exc)) from exc
    if not value.isdigit():
        raise signing.BadSignature("not an article id")
    return int(value)


@dataclass(frozen=True)
class PreviewLink:
    url: str
    expires_at: object  # aware datetime


def preview_link(request, article_id: int) -> PreviewLink:
    path = reverse("site:preview", args=[preview_token(article_id)])
    return PreviewLink(url=absolute_url(request, path), expires_at=timezone.now() + preview_max_age())


def preview_article(article: Article) -> Article:
    """An unsaved copy of the article filled the way the pipeline fills it on going live: its
    body rendered and sanitized, its date the one it is due (now for a draft)."""
    copy = Article.objects.get(pk=article.pk)
    copy.body_html, copy.excerpt, copy.word_count = render_body(copy.body)
    if copy.published_at is None:
        copy.published_at = copy.publish_at or timezone.now()
    return copy


def _private(response: HttpResponse) -> HttpResponse:
    add_never_cache_headers(response)
    patch_cache_control(response, private=True)
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def render_preview(request, article: Article, *, shared: bool) -> HttpResponse:
    """The public article page for `article` as it is now, marked as a preview."""
    shown = preview_article(article)
    return _private(render(request, "site/article.html", {
        "article": shown, "preview": True, "shared_preview": shared,
        "canonical": absolute_url(request, shown.get_absolute_url()) if shown.slug else "",
        "image_url": absolute_url(request, shown.image.url) if shown.image else "",
    }))


def render_preview_unavailable(request, *, expired: bool) -> HttpResponse:
    return _private(render(request, "site/preview_unavailable.html", {"expired": expired},
                           status=410 if expired else 404))
