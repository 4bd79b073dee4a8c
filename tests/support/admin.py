"""The editors' admin as the test client sees it: its URLs, the article form as a browser posts
it, and what a response says (messages, form errors)."""

from django.contrib.messages import get_messages
from django.urls import reverse

CHANGELIST = "/admin/publisher/article/"
ADD = "/admin/publisher/article/add/"


def change_url(article) -> str:
    return reverse("admin:publisher_article_change", args=[article.pk])


def form_data(*, title="A title", body="Some text.", publish=None, unpublish=None, publish_fold="",
              unpublish_fold="", **extra) -> dict:
    """The article form as the browser posts it; `publish` / `unpublish` are local wall-clock
    (date, time) strings in the editor's zone."""
    data = {"title": title, "body": body, "_save": "Save",
            "publish_at_0": "", "publish_at_1": "", "publish_at_2": publish_fold,
            "unpublish_at_0": "", "unpublish_at_1": "", "unpublish_at_2": unpublish_fold}
    if publish:
        data["publish_at_0"], data["publish_at_1"] = publish
    if unpublish:
        data["unpublish_at_0"], data["unpublish_at_1"] = unpublish
    data.update(extra)
    return data


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def errors(response) -> dict:
    return response.context["adminform"].form.errors
