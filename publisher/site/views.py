"""Public pages. Every lookup goes through Article.objects.visible() / taken_down(): an article
that is not live answers exactly like one that never existed (404, no title, no hint)."""

import logging

from django.conf import settings
from django.core import signing
from django.http import HttpResponse, HttpResponsePermanentRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe
from django.views.generic import ListView

from publisher.models import Article, ArticleSlugRedirect
from publisher.site.cache import schedule_cached
from publisher.site.forms import SubscribeForm
from publisher.site.links import absolute_url
from publisher.subscriptions import (Confirmed, NotQueued, read_unsubscribe_token, subscriptions_client_allowed,
                                     subscriptions_confirm, subscriptions_request, subscriptions_unsubscribe)
from publisher.site.preview import PreviewExpired, read_preview_token, render_preview, render_preview_unavailable
from publisher.site.selectors import article_freshness, articles_visible, site_freshness, with_next_change

PAGE_SIZE = 20

logger = logging.getLogger(__name__)


class IndexView(ListView):
    template_name = "site/index.html"
    context_object_name = "articles"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        return articles_visible().only("id", "slug", "title", "excerpt", "thumbnail", "image_alt", "published_at")

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs, canonical=absolute_url(self.request, self.request.get_full_path()))


index = require_safe(schedule_cached(site_freshness)(IndexView.as_view()))


def _not_found(request):
    # The same page for "never existed", "not yet" and "never went live": nothing to tell them apart.
    return render(request, "site/not_found.html", status=404)


@require_safe
@schedule_cached(site_freshness)
def article(request, slug: str):
    found = with_next_change(Article.objects.visible().filter(slug=slug)).first()
    if found is not None:
        response = render(request, "site/article.html", {
            "article": found, "canonical": absolute_url(request, found.get_absolute_url()),
            "image_url": absolute_url(request, found.image.url) if found.image else "",
        })
        response.freshness = article_freshness(found)
        return response
    if Article.objects.taken_down().filter(slug=slug).exists():
        return render(request, "site/gone.html", status=410)
    moved = ArticleSlugRedirect.objects.filter(old_slug=slug).select_related("article").first()
    if moved is not None and moved.article.slug:
        if Article.objects.visible().filter(pk=moved.article_id).exists():
            return HttpResponsePermanentRedirect(moved.article.get_absolute_url())
        if Article.objects.taken_down().filter(pk=moved.article_id).exists():
            return render(request, "site/gone.html", status=410)
    return _not_found(request)


@require_safe
def preview(request, token: str):
    """A shareable preview link: the article as it is now, for anyone holding a link that is
    genuine and younger than PUBLISHER_PREVIEW_DAYS; read-only, noindex, never cached publicly."""
    try:
        article_id = read_preview_token(token)
    except PreviewExpired:
        return render_preview_unavailable(request, expired=True)
    except signing.BadSignature:
        return render_preview_unavailable(request, expired=False)
    found = Article.objects.filter(pk=article_id).first()
    if found is None:
        return render_preview_unavailable(request, expired=False)
    return render_preview(request, found, shared=True)


@require_safe
def robots_txt(request):
    sitemap = absolute_url(request, reverse("site:sitemap"))
    lines = ["User-agent: *", "Disallow: /admin/", "Disallow: /preview/", "", f"Sitemap: {sitemap}", ""]
    response = HttpResponse("\n".join(lines), content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = f"public, max-age={settings.PUBLISHER_PUBLIC_MAX_AGE}"
    return response


@csrf_exempt  # RFC 8058: a mail client's one-click POST carries no CSRF token; the signed URL is the proof
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token: str):
    """GET: a page with one button. POST (that button, or a mail client's RFC 8058 one-click
    POST `List-Unsubscribe=One-Click`): unsubscribes at once; again is harmless."""
    try:
        subscriber_id = read_unsubscribe_token(token)
    except signing.BadSignature:
        return render(request, "site/unsubscribe.html", {"invalid": True}, status=404)
    if request.method == "POST":
        subscriptions_unsubscribe(subscriber_id=subscriber_id)
        return render(request, "site/unsubscribe.html", {"done": True})
    return render(request, "site/unsubscribe.html", {"token": token})


def client_address(request) -> str:
    """The reader's IP address: REMOTE_ADDR, or behind PUBLISHER_PROXY_COUNT proxies the entry
    that many hops from the right of X-Forwarded-For (the left part is whatever the client sent)."""
    hops = settings.PUBLISHER_PROXY_COUNT
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


# Never cached: these pages carry a CSRF token, or answer one reader (the public pages are
# cached for everyone, so their small form only sends the address here, by GET, to prefill).
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe(request):
    """The subscribe form. Every accepted request, known address or not, ends on the same page."""
    if request.method != "POST":
        form = SubscribeForm(initial={"email": request.GET.get("email", "")[:SubscribeForm.base_fields["email"].max_length]})
        return render(request, "site/subscribe.html", {"form": form})
    if not subscriptions_client_allowed(client=client_address(request)):
        response = render(request, "site/subscribe.html", {"throttled": True}, status=429)
        response["Retry-After"] = "3600"
        return response
    form = SubscribeForm(request.POST)
    if not form.is_valid():
        return render(request, "site/subscribe.html", {"form": form}, status=400)
    if not form.is_bot():
        try:
            subscriptions_request(email=form.cleaned_data["email"], site_url=absolute_url(request, "/")[:-1])
        except NotQueued:
            logger.warning("subscribe: the confirmation mail could not be queued", exc_info=True)
            return render(request, "site/subscribe.html", {"form": form, "not_queued": True}, status=503)
    return redirect("site:subscribe_sent")


@never_cache
@require_safe
def subscribe_sent(request):
    return render(request, "site/subscribe.html", {"sent": True, "days": settings.PUBLISHER_CONFIRM_DAYS})


CONFIRM_STATUS = {Confirmed.CONFIRMED: 200, Confirmed.ALREADY: 200, Confirmed.USED: 410, Confirmed.EXPIRED: 410,
                  Confirmed.INVALID: 404}


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def confirm(request, token: str):
    """GET: a page with one button (a mail scanner that opens links confirms nothing). POST:
    confirms; a replayed, expired or forged link gets its own page and changes nothing."""
    outcome = subscriptions_confirm(token=token, dry_run=request.method != "POST")
    context = {"outcome": outcome.value, "pending": request.method != "POST" and outcome is Confirmed.CONFIRMED,
               "days": settings.PUBLISHER_CONFIRM_DAYS}
    return render(request, "site/confirm.html", context, status=CONFIRM_STATUS[outcome])
