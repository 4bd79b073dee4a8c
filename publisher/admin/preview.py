"""The article page's previews: *Preview* (the public page as it will be, staff only), the
shareable preview link shown on the page, and the body's live Markdown preview (a small
staff-only POST endpoint rendering with the pipeline's own renderer and sanitizer; CSRF-checked
by the admin site)."""

from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.urls import path
from django.views.decorators.http import require_POST, require_safe

from ..models import Article
from ..rendering import render_body
from ..site.preview import preview_link, render_preview
from ..zones import local_time_text

# The longest body the live preview renders: the schedule rules refuse longer ones anyway.
MAX_PREVIEW_CHARS = 200_000


def preview_view(request, object_id: int, *, model_admin):
    """GET: the article rendered by the public template, marked as a preview (noindex, never cached)."""
    article = get_object_or_404(Article, pk=object_id)
    if not model_admin.has_view_permission(request, article):
        raise PermissionDenied
    return render_preview(request, article, shared=False)


def markdown_view(request, *, model_admin):
    """POST `body`: {"html": the sanitized HTML the pipeline would make of it}."""
    if not (model_admin.has_add_permission(request) or model_admin.has_change_permission(request)):
        raise PermissionDenied
    body = request.POST.get("body", "")
    if len(body) > MAX_PREVIEW_CHARS:
        return JsonResponse({"error": f"The text is longer than {MAX_PREVIEW_CHARS:,} characters: "
                                      "no preview."}, status=400)
    html, _, words = render_body(body)
    return JsonResponse({"html": html, "words": words})


def share_link_fragment(request, article: Article) -> str:
    link = preview_link(request, article.pk)
    return render_to_string("publisher/admin/fragments/preview_link.html",
                            {"url": link.url, "expires": local_time_text(link.expires_at)})


def urls(model_admin) -> list:
    view = model_admin.admin_site.admin_view
    return [
        path("<int:object_id>/preview/", view(require_safe(lambda request, object_id: preview_view(
            request, object_id, model_admin=model_admin))), name="publisher_article_preview"),
        path("markdown-preview/", view(require_POST(lambda request: markdown_view(
            request, model_admin=model_admin))), name="publisher_article_markdown_preview"),
    ]
