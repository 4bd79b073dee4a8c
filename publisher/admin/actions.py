"""Editor actions in the admin, keyed by the state machine's action names (publisher.states).

The article page's buttons are one small POST view per action (CSRF-checked by the admin
site, permission-checked here); the list's bulk actions call the same `run`. Both go through
the bulk services, which skip, with the reason, an article the action does not apply to."""

from functools import partial

from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from .. import selectors, services
from ..models import Article
from ..states import ACTIONS

# The admin permission each action needs: "change" (the model's) or "publish" (publisher.publish_article).
PERMISSIONS = {"schedule": "change", "unschedule": "change", "publish_now": "publish", "retry": "publish",
               "unpublish_now": "publish"}
# Actions with a button on the article page (scheduling happens in the form itself), in button order.
BUTTONS = {"publish_now": "go", "retry": "go", "unschedule": "danger", "unpublish_now": "danger"}
# Actions that mail every subscriber: the button and the bulk action first show a page saying
# how many, and act only when that page's form is posted (`confirm`).
CONFIRMED = {"publish_now"}

_SERVICES = {
    "schedule": services.articles_schedule,
    "unschedule": services.articles_unschedule,
    "publish_now": services.articles_publish_now,
    "retry": services.articles_retry,
    "unpublish_now": services.articles_unpublish_now,
}
_DONE = {
    "unschedule": "Unscheduled {count}: back to draft.",
    "publish_now": "Publishing {count} now: the list shows them as published within seconds.",
    "retry": "Retrying {count}: each goes out again now, or at its publish time if that is still ahead.",
    "unpublish_now": "Unpublished {count}: taken down now (their pages answer 410 Gone).",
}
_DONE_ONE = {"unschedule": "“{article}” is back to draft and will not be published.",
             "unpublish_now": "“{article}” is taken down: its page answers 410 Gone. Schedule it again to put it back."}
_PAST = {"schedule": "scheduled", "unschedule": "unscheduled", "publish_now": "published", "retry": "retried",
         "unpublish_now": "unpublished"}

if not set(PERMISSIONS) == set(_SERVICES) == set(_PAST) == set(ACTIONS):
    raise ImproperlyConfigured("publisher.admin.actions: wire every action declared in publisher.states")


def count_text(items) -> str:
    return f"{len(items)} article{'s' if len(items) != 1 else ''}"


def allowed(model_admin, request, name: str, article: Article | None = None) -> bool:
    if PERMISSIONS[name] == "publish":
        return model_admin.has_publish_permission(request)
    return model_admin.has_change_permission(request, article)


def applies(model_admin, request, name: str, article: Article) -> bool:
    """Whether the article page offers this action: permitted, and the state machine allows it."""
    return allowed(model_admin, request, name, article) and ACTIONS[name].reason(article.status) is None


def buttons(model_admin, request, article: Article) -> list[dict]:
    return [{"name": name, "label": ACTIONS[name].label, "css": css,
             "url": reverse(f"{model_admin.admin_site.name}:publisher_article_{name}", args=[article.pk])}
            for name, css in BUTTONS.items() if applies(model_admin, request, name, article)]


def report_skipped(model_admin, request, result: services.BulkResult, name: str) -> None:
    if not result.skipped:
        return
    reasons = "; ".join(f"“{s.title}” (#{s.article_id}): {s.reason}" for s in result.skipped)
    model_admin.message_user(request, f"Skipped {count_text(result.skipped)}, not {_PAST[name]}: {reasons}.",
                             messages.WARNING)


def run(model_admin, request, name: str, article_ids: list[int], *, article: Article | None = None,
        **arguments) -> services.BulkResult:
    """Apply the action to these articles through its service and tell the editor what happened."""
    result = _SERVICES[name](article_ids=article_ids, actor=request.user, **arguments)
    if result.done and name in _DONE:
        text = (_DONE_ONE[name].format(article=article) if article is not None and name in _DONE_ONE
                else _DONE[name].format(count=count_text(result.done)))
        model_admin.message_user(request, text, messages.SUCCESS)
    report_skipped(model_admin, request, result, name)
    return result


def confirmation(model_admin, request, name: str, articles: list[Article], *, bulk: bool) -> TemplateResponse:
    """The page before an action in CONFIRMED: what it does, to which articles, and how many
    subscribers it mails (counted now, from the database)."""
    applicable = [a for a in articles if ACTIONS[name].reason(a.status) is None]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"{ACTIONS[name].label}?",
        "opts": model_admin.model._meta,
        "articles": articles,
        "applicable": applicable,
        "subscribers": selectors.subscribers_to_mail_count(),
        "bulk": bulk,
        "action": f"{name}_selected",
        "select_across": request.POST.get("select_across", "0"),
        "cancel_url": (reverse(f"{model_admin.admin_site.name}:publisher_article_changelist") if bulk else
                       reverse(f"{model_admin.admin_site.name}:publisher_article_change", args=[articles[0].pk])),
    }
    return TemplateResponse(request, "publisher/admin/confirm_action.html", context)


def confirmed(request) -> bool:
    return request.POST.get("confirm") == "yes"


@require_POST
def article_action_view(request, object_id: int, *, model_admin, name: str):
    """One button on the article page: POST only, permission checked, back to the article."""
    article = get_object_or_404(Article, pk=object_id)
    if not allowed(model_admin, request, name, article):
        raise PermissionDenied
    if name in CONFIRMED and not confirmed(request):
        return confirmation(model_admin, request, name, [article], bulk=False)
    run(model_admin, request, name, [article.pk], article=article)
    return HttpResponseRedirect(reverse(f"{model_admin.admin_site.name}:publisher_article_change", args=[article.pk]))


def urls(model_admin) -> list:
    return [path(f"<int:object_id>/{name.replace('_', '-')}/",
                 model_admin.admin_site.admin_view(partial(article_action_view, model_admin=model_admin, name=name)),
                 name=f"publisher_article_{name}")
            for name in BUTTONS]
