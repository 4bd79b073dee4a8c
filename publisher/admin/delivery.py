"""The article page's subscriber e-mail: how it went (counts per status, the failed and
interrupted addresses with their reasons) and, for publishers, the Resend of the interrupted ones
through a confirmation page (they may have been delivered once already: never automatic)."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse

from .. import notifications, selectors
from ..models import Article, NotificationStatus

URL_NAME = "publisher_article_resend_notifications"


def summary(article: Article, *, resend_url: str | None = None) -> str:
    delivery = selectors.article_delivery(article_id=article.pk)
    interrupted = delivery.interrupted
    return render_to_string("publisher/admin/fragments/delivery.html", {
        "delivery": delivery,
        "counts": _labelled(delivery.counts),
        "updates": [(update.revision_id, update.total, _labelled(update.counts)) for update in delivery.updates],
        "interrupted": interrupted,
        "resend_url": resend_url if interrupted else None,
    })


def _labelled(counts: dict[str, int]) -> list[tuple[str, int]]:
    return [(NotificationStatus(status).label, n) for status, n in counts.items()]


def resend_url(model_admin, article: Article) -> str:
    return reverse(f"{model_admin.admin_site.name}:{URL_NAME}", args=[article.pk])


def resend_view(request, object_id: int, *, model_admin):
    """GET: the confirmation page; POST: resend the interrupted notifications, back to the article."""
    if not model_admin.has_publish_permission(request):
        raise PermissionDenied
    article = get_object_or_404(Article, pk=object_id)
    back = reverse(f"{model_admin.admin_site.name}:publisher_article_change", args=[article.pk])
    if request.method == "POST":
        count = notifications.notifications_resend_interrupted(article_id=article.pk)
        if count:
            model_admin.message_user(request, f"Resending {count} interrupted e-mail{'s' if count != 1 else ''} "
                                              f"of “{article}”.", messages.SUCCESS)
        else:
            model_admin.message_user(request, f"Nothing to resend: “{article}” has no interrupted e-mail "
                                              "(or is no longer live).", messages.WARNING)
        return HttpResponseRedirect(back)
    delivery = selectors.article_delivery(article_id=article.pk)
    return TemplateResponse(request, "publisher/admin/resend_notifications.html", {
        **model_admin.admin_site.each_context(request),
        "title": f"Resend the interrupted e-mails of “{article}”?",
        "opts": model_admin.model._meta,
        "article": article,
        "back": back,
        "interrupted": delivery.interrupted,
    })


def urls(model_admin) -> list:
    return [path("<int:object_id>/resend-notifications/", model_admin.admin_site.admin_view(
        lambda request, object_id: resend_view(request, object_id, model_admin=model_admin)), name=URL_NAME)]
