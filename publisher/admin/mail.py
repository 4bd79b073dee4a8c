"""The article page's mail buttons: a preview of the subscribers' mail (anyone who may view the
article) and "Send me a test e-mail" (publishers only, to their own address). Thin: the mail is
built by publisher.emails."""

import logging
from functools import partial

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from .. import emails
from ..models import Article

logger = logging.getLogger(__name__)


def links(model_admin, request, article: Article) -> dict:
    name = model_admin.admin_site.name
    return {"mail_preview_url": reverse(f"{name}:publisher_article_mail_preview", args=[article.pk]),
            "mail_test_url": reverse(f"{name}:publisher_article_mail_test", args=[article.pk])
            if model_admin.has_publish_permission(request) else ""}


def preview_view(request, object_id: int, *, model_admin):
    article = get_object_or_404(Article, pk=object_id)
    if not model_admin.has_view_permission(request, article):
        raise PermissionDenied
    context = {**model_admin.admin_site.each_context(request), "opts": Article._meta, "original": article,
               "title": f"E-mail preview: {article}", "preview": emails.article_mail_preview(article_id=article.pk),
               **links(model_admin, request, article)}
    return TemplateResponse(request, "publisher/admin/mail_preview.html", context)


@require_POST
def send_test_view(request, object_id: int, *, model_admin):
    article = get_object_or_404(Article, pk=object_id)
    if not model_admin.has_publish_permission(request):
        raise PermissionDenied
    if not request.user.email:
        model_admin.message_user(request, "Your account has no e-mail address: add one to get a test e-mail.",
                                 messages.ERROR)
    else:
        try:
            emails.article_mail_send_test(article_id=article.pk, to=request.user.email)
        except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors; the editor hears why, not a 500
            logger.warning("test e-mail for article %s failed", article.pk, exc_info=True)
            model_admin.message_user(request, f"The test e-mail was not sent: {type(exc).__name__}: {exc}",
                                     messages.ERROR)
        else:
            model_admin.message_user(request, f"Sent a test e-mail of “{article}” to {request.user.email}.",
                                     messages.SUCCESS)
    return HttpResponseRedirect(reverse(f"{model_admin.admin_site.name}:publisher_article_change", args=[article.pk]))


def urls(model_admin) -> list:
    view = model_admin.admin_site.admin_view
    return [path("<int:object_id>/mail-preview/", view(partial(preview_view, model_admin=model_admin)),
                 name="publisher_article_mail_preview"),
            path("<int:object_id>/mail-test/", view(partial(send_test_view, model_admin=model_admin)),
                 name="publisher_article_mail_test")]
