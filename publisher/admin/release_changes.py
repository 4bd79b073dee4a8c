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
from ..models import Article, ArticleRevision, Release
from ..states import RELEASE_EDITABLE
from ..zones import zone_label
from .revisions import PUBLISH_NEEDED, URL_NAME, revision_page, status_badge

RELEASE_NUMBER = re.compile(r"[0-9]{1,18}")


class ReleaseField(forms.ModelChoiceField):
    """A release that takes new members (draft, scheduled or blocked), picked from the list. Any
    other input is a form error that names the problem: not a release number, a release that
    does not exist (deleted), or one that is live, rolled back or going live now."""

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Release")
        super().__init__(queryset=Release.objects.filter(status__in=RELEASE_EDITABLE).order_by("name", "pk"),
                         empty_label=None, **kwargs)

    def label_from_instance(self, obj):
        return f"{obj} ({obj.get_status_display().lower()})"

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if not RELEASE_NUMBER.fullmatch(text):
            raise forms.ValidationError("“%(value)s” is not a release: choose one from the list.",
                                        code="invalid_choice", params={"value": text[:40]})
        release = Release.objects.filter(pk=int(text)).first()
        if release is None:
            raise forms.ValidationError("Release #%(pk)s does not exist (it may have been deleted): choose another.",
                                        code="invalid_choice", params={"pk": int(text)})
        if release.status not in RELEASE_EDITABLE:
            raise forms.ValidationError(
                "Release “%(release)s” is %(status)s: only a draft, scheduled or blocked release takes new members.",
                code="invalid_choice", params={"release": release, "status": release.get_status_display().lower()})
        return release


class ReleasePickForm(forms.Form):
    release = ReleaseField(widget=forms.Select(attrs={"aria-label": "Release"}))


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


def _release(request, release_id) -> Release | None:
    """The release named by the URL, or None (the caller says it is gone, as Django's own
    pages do, rather than a 404)."""
    if not request.user.has_perm("publisher.change_article"):
        raise PermissionDenied
    return Release.objects.filter(pk=release_id).first()


def release_gone(model_admin, request, release_id):
    model_admin.message_user(request, f"Release #{release_id} does not exist (it may have been deleted).",
                             messages.WARNING)
    return HttpResponseRedirect(reverse("admin:publisher_release_changelist"))


def _back(release):
    return HttpResponseRedirect(reverse("admin:publisher_release_change", args=[release.pk]))


def add_changes_view(model_admin, request, release_id):
    release = _release(request, release_id)
    if release is None:
        return release_gone(model_admin, request, release_id)
    form = AddChangesForm(request.POST or None)
    intro = ("A change in a release is applied with the release's new articles, in the same instant, and undone "
             "at its rollback time.")
    if not request.user.has_perm("publisher.publish_article"):
        # A change in a release goes live with it: adding one is publishing (docs/revisions.md).
        intro = PUBLISH_NEEDED
        if form.is_bound:
            form.is_valid()
            form.add_error(None, f"Changes were not added: {PUBLISH_NEEDED}")
    elif request.method == "POST" and form.is_valid():
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
                 submit="Add", intro=intro)


def remove_change_view(model_admin, request, release_id, revision_id):
    release = _release(request, release_id)
    if release is None:
        return release_gone(model_admin, request, release_id)
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
    """From the change's page: add it to the release picked, then show that release. Bad input
    (not a release, a deleted one, one live or rolled back) or a refusal is a form error on the
    change's page, with nothing written."""
    if request.method != "POST":
        raise PermissionDenied
    if not request.user.has_perm("publisher.change_article"):
        raise PermissionDenied
    article_admin = model_admin.admin_site._registry[Article]
    revision = ArticleRevision.objects.select_related("article", "author").filter(pk=revision_id).first()
    if revision is None:
        model_admin.message_user(request, f"Change #{revision_id} does not exist.", messages.WARNING)
        return HttpResponseRedirect(reverse("admin:publisher_article_changelist"))
    form = ReleasePickForm(request.POST)
    if not article_admin.has_publish_permission(request):
        form.is_valid()
        form.add_error(None, f"The change was not added: {PUBLISH_NEEDED}")
    elif form.is_valid():
        release = form.cleaned_data["release"]
        try:
            result = release_changes.release_add_changes(release_id=release.pk, revision_ids=[revision.pk],
                                                         actor=request.user)
        except release_changes.ReleaseChangeError as exc:
            form.add_error("release", str(exc))
        else:
            if result.done:
                model_admin.message_user(request, f"Change #{revision.pk} was added to “{release}”.",
                                         messages.SUCCESS)
                return _back(release)
            for _, reason in result.skipped:
                form.add_error("release", f"Change #{revision.pk} was not added to “{release}”: {reason}.")
    return revision_page(request, article_admin, revision, release_form=form)


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
