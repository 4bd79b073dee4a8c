"""The release page's changes to live articles (publisher.release_changes): the list of its
changes, *Add a change…* (by change number, as shown on the article's *Changes to the live
article*) and *Remove*. Thin: each is one call into publisher.release_changes."""

import re

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from .. import release_changes
from ..models import ArticleRevision, Release
from ..states import RELEASE_EDITABLE
from ..zones import zone_label
from .revisions import URL_NAME, status_badge


class AddChangesForm(forms.Form):
    changes = forms.CharField(label="Change numbers", max_length=500,
                              help_text="The numbers of pending changes of live articles (e.g. 12, 15), as listed on "
                                        "each article's “Changes to the live article”.")

    def clean_changes(self) -> list[int]:
        text = self.cleaned_data["changes"]
        if not re.fullmatch(r"\s*#?\d+(\s*[,\s]\s*#?\d+)*\s*", text):
            raise forms.ValidationError("Give change numbers separated by commas, e.g. 12, 15.")
        return sorted({int(n) for n in re.findall(r"\d+", text)})


def changes_html(release: Release) -> str:
    changes = list(release_changes.members(release.pk).select_related("article").order_by("pk"))
    if not changes:
        return "No changes to live articles: add one with “Add a change…”."
    editable = release.status in RELEASE_EDITABLE
    rows = format_html_join("", '<tr><td><a href="{}">Change #{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>', (
        (reverse(f"admin:{URL_NAME}", args=[c.article_id, c.pk]), c.pk, str(c.article), status_badge(c.status),
         c.last_error or "—",
         format_html('<a href="{}" class="remove-change">Remove</a>',
                     reverse("admin:publisher_release_remove_change", args=[release.pk, c.pk])) if editable else "")
        for c in changes))
    return format_html('<table class="release-changes"><thead><tr><th>Change</th><th>Article</th><th>Status</th>'
                       '<th>Problem</th><th></th></tr></thead><tbody>{}</tbody></table>', rows)


def _page(model_admin, request, release, *, title, form, submit, intro):
    return TemplateResponse(request, "publisher/admin/release_form.html", {
        **model_admin.admin_site.each_context(request), "opts": model_admin.opts, "title": title, "release": release,
        "form": form, "submit": submit, "intro": intro, "zone_label": zone_label()})


def _release(request, release_id) -> Release:
    if not request.user.has_perm("publisher.change_article"):
        raise PermissionDenied
    return get_object_or_404(Release, pk=release_id)


def _back(release):
    return HttpResponseRedirect(reverse("admin:publisher_release_change", args=[release.pk]))


def add_changes_view(model_admin, request, release_id):
    release = _release(request, release_id)
    form = AddChangesForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            result = release_changes.release_add_changes(release_id=release.pk, revision_ids=form.cleaned_data["changes"],
                                                         actor=request.user)
        except release_changes.ReleaseChangeError as exc:
            form.add_error(None, str(exc))
        else:
            if result.done:
                model_admin.message_user(request, "Added to “{}”: {}.".format(
                    release, ", ".join(f"change #{pk}" for pk in result.done)), messages.SUCCESS)
            for pk, reason in result.skipped:
                model_admin.message_user(request, f"Change #{pk} was not added: {reason}.", messages.WARNING)
            return _back(release)
    return _page(model_admin, request, release, title=f"Add changes to release “{release}”", form=form,
                 submit="Add", intro="A change in a release is applied with the release's new articles, in the "
                                     "same instant, and undone at its rollback time.")


def remove_change_view(model_admin, request, release_id, revision_id):
    release = _release(request, release_id)
    revision = get_object_or_404(ArticleRevision, pk=revision_id, release=release)
    if request.method == "POST":
        try:
            release_changes.release_remove_changes(release_id=release.pk, revision_ids=[revision.pk],
                                                   actor=request.user)
        except release_changes.ReleaseChangeError as exc:
            model_admin.message_user(request, str(exc), messages.ERROR)
        else:
            model_admin.message_user(request, f"Change #{revision.pk} was removed from “{release}”: it is a draft "
                                              "change of its article again.", messages.SUCCESS)
        return _back(release)
    return _page(model_admin, request, release, title=f"Remove change #{revision.pk} from “{release}”",
                 form=forms.Form(), submit="Remove", intro="The change becomes a draft change of its article again.")


def joinable_releases(revision: ArticleRevision) -> list[Release]:
    """The releases the revision's page offers (“Add this change to a release”), if it may join one."""
    if revision.status not in release_changes.JOINABLE or revision.release_id is not None:
        return []
    return list(Release.objects.filter(status__in=RELEASE_EDITABLE).order_by("name", "pk"))


def add_to_release_view(model_admin, request, revision_id):
    """From the change's page: add it to the release chosen, then show that release."""
    if request.method != "POST":
        raise PermissionDenied
    release = _release(request, request.POST.get("release") if str(request.POST.get("release", "")).isdigit() else 0)
    try:
        result = release_changes.release_add_changes(release_id=release.pk, revision_ids=[revision_id],
                                                     actor=request.user)
    except release_changes.ReleaseChangeError as exc:
        model_admin.message_user(request, str(exc), messages.ERROR)
    else:
        if result.done:
            model_admin.message_user(request, f"Change #{revision_id} was added to “{release}”.", messages.SUCCESS)
        for pk, reason in result.skipped:
            model_admin.message_user(request, f"Change #{pk} was not added: {reason}.", messages.WARNING)
    return _back(release)


def urls(model_admin) -> list:
    view = model_admin.admin_site.admin_view
    return [
        path("<int:release_id>/changes/add/", view(lambda request, release_id: add_changes_view(
            model_admin, request, release_id)), name="publisher_release_add_changes"),
        path("<int:release_id>/changes/<int:revision_id>/remove/", view(
            lambda request, release_id, revision_id: remove_change_view(model_admin, request, release_id,
                                                                        revision_id)),
             name="publisher_release_remove_change"),
        path("add-change/<int:revision_id>/", view(lambda request, revision_id: add_to_release_view(
            model_admin, request, revision_id)), name="publisher_release_add_change"),
    ]
