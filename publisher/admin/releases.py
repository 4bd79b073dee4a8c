"""The release admin: list and page (name, times in the editor's zone with the zone named,
members, notes, status, why it is blocked, history), Schedule / Reschedule / Unschedule / the
rollback time, removing members, and the article list's *Add to a release* action. Thin: every
change is one call into publisher.releases."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from .. import release_changes, releases, selectors
from ..forms import ZonedDateTimeField
from ..models import Article, ArticleStatus, Release, ReleaseEvent
from ..states import RELEASE_EDITABLE, ReleaseStatus
from ..text import error_text
from ..zones import zone_label
from . import release_changes as release_changes_admin
from .conflicts import conflict_html
from .display import status_badge, zoned_time
from .site import site

RELEASE_COLOURS = {ReleaseStatus.DRAFT: "#6b7280", ReleaseStatus.SCHEDULED: "#2563eb",
                   ReleaseStatus.PREPARING: "#d97706", ReleaseStatus.BLOCKED: "#b91c1c",
                   ReleaseStatus.PUBLISHED: "#15803d", ReleaseStatus.ROLLED_BACK: "#4b5563"}


def release_badge(status: str) -> str:
    return format_html('<span class="status-badge release-status-{}" style="background:{}">{}</span>', status,
                       RELEASE_COLOURS.get(status, "#6b7280"), ReleaseStatus(status).label)


class ReleaseScheduleForm(forms.Form):
    publish_at = ZonedDateTimeField(label="Goes live at", required=True)
    unpublish_at = ZonedDateTimeField(label="Roll back at", required=False,
                                      help_text="Optional: at this time every article of the release is taken down.")


class ReleaseRollbackForm(forms.Form):
    unpublish_at = ZonedDateTimeField(label="Roll back at", required=False,
                                      help_text="Empty: the release stays live.")


class AddToReleaseForm(forms.Form):
    release = release_changes_admin.ReleaseField()


def _at_risk(release: Release) -> bool:
    """The pre-flight's finding (publisher.release_preflight) holds while the release waits."""
    return bool(release.at_risk_reason) and release.status == ReleaseStatus.SCHEDULED


def _at_risk_flag(release: Release):
    if not _at_risk(release):
        return ""
    return format_html(' <span class="at-risk" title="{}">At risk</span>', release.at_risk_reason)


CHANGES_NEED_PUBLISH = ("This release changes live articles: scheduling it puts those changes live, so it needs "
                        "the permission to publish (the Publishers group).")
ROLLBACK_NEEDS_PUBLISH = ("Setting or clearing the rollback time of a live release changes what readers see, "
                          "so it needs the permission to publish (the Publishers group).")


def _can_edit(request) -> bool:
    return request.user.has_perm("publisher.change_article")


@admin.register(Release, site=site)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ("name", "status_column", "publish_at_column", "unpublish_at_column", "members_column",
                    "problem_column")
    list_filter = ("status",)
    search_fields = ("name", "notes")
    fields = ("name", "notes", "status_display", "publish_at_display", "unpublish_at_display", "scheduled_by",
              "blocked_display", "at_risk_display", "members_display", "changes_display", "history_display")
    readonly_fields = ("status_display", "publish_at_display", "unpublish_at_display", "scheduled_by",
                       "blocked_display", "at_risk_display", "members_display", "changes_display", "history_display")
    change_form_template = "publisher/admin/release_change_form.html"
    view_on_site = False  # a release has no public page; its articles do

    # Who may: the article permissions (a release is a way of scheduling articles).
    def has_module_permission(self, request):
        return request.user.has_perm("publisher.view_article")

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("publisher.view_article")

    def has_add_permission(self, request):
        return _can_edit(request)

    def has_change_permission(self, request, obj=None):
        return _can_edit(request)

    def has_delete_permission(self, request, obj=None):
        return _can_edit(request) and (obj is None or obj.status == ReleaseStatus.DRAFT)

    def get_actions(self, request):
        # Django's bulk delete checks only the model permission: only draft releases are deleted, one by one.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_count=Count("members"))

    def get_fields(self, request, obj=None):
        return ("name", "notes") if obj is None else self.fields

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name", "notes", "updated_at"])
            return
        created = releases.release_create(name=obj.name, notes=obj.notes, actor=request.user)
        obj.pk = created.pk
        obj.refresh_from_db()

    # --- list ----------------------------------------------------------------------------------

    @admin.display(description="Status", ordering="status")
    def status_column(self, obj):
        return format_html("{}{}", release_badge(obj.status), _at_risk_flag(obj))

    @admin.display(description="Goes live at", ordering="publish_at")
    def publish_at_column(self, obj):
        return zoned_time(obj.publish_at, short=True)

    @admin.display(description="Roll back at", ordering="unpublish_at")
    def unpublish_at_column(self, obj):
        return zoned_time(obj.unpublish_at, short=True)

    @admin.display(description="Articles", ordering="member_count")
    def members_column(self, obj):
        return obj.member_count

    @admin.display(description="Problem")
    def problem_column(self, obj):
        problem = obj.last_error or (obj.at_risk_reason if _at_risk(obj) else "")
        return format_html('<span class="problem">{}</span>', problem) if problem else "—"

    # --- page ----------------------------------------------------------------------------------

    @admin.display(description="Status")
    def status_display(self, obj):
        return format_html("{}{}", release_badge(obj.status), _at_risk_flag(obj))

    @admin.display(description="Goes live at")
    def publish_at_display(self, obj):
        if obj.publish_at is None:
            return "—"
        return format_html('{} <span class="quiet">({})</span>', zoned_time(obj.publish_at),
                           zone_label(at=obj.publish_at))

    @admin.display(description="Roll back at")
    def unpublish_at_display(self, obj):
        return zoned_time(obj.unpublish_at)

    @admin.display(description="Why it is blocked")
    def blocked_display(self, obj):
        if obj.status != ReleaseStatus.BLOCKED:
            return "—"
        link = ""
        if obj.blocked_article_id:
            link = format_html(' <a href="{}">Open the article</a>',
                               reverse("admin:publisher_article_change", args=[obj.blocked_article_id]))
        return format_html('<div class="problem-box release-blocked">{}{}</div>', obj.last_error, link)

    @admin.display(description="At risk (pre-flight)")
    def at_risk_display(self, obj):
        if not _at_risk(obj):
            return "—"
        return format_html('<div class="problem-box release-at-risk">{} Fix it before the release time (saving the '
                           'article checks the release again at once), or remove it from the release.</div>',
                           obj.at_risk_reason)

    @admin.display(description="Articles")
    def members_display(self, obj):
        members = list(Article.objects.filter(release=obj).order_by("pk")
                       .only("id", "title", "status", "last_error", "at_risk_reason", "published_at"))
        if not members:
            return "No articles yet: select them in the article list and choose “Add to a release”."
        editable = obj.status in RELEASE_EDITABLE
        rows = format_html_join("", "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (reverse("admin:publisher_article_change", args=[a.pk]), str(a), status_badge(a.status),
             a.last_error or (a.at_risk_reason if a.status == ArticleStatus.IN_RELEASE else "") or "—",
             format_html('<a href="{}" class="remove-member">Remove</a>',
                         reverse("admin:publisher_release_remove", args=[obj.pk, a.pk])) if editable else "")
            for a in members))
        return format_html('<table class="release-members"><thead><tr><th>Article</th><th>Status</th><th>Problem</th>'
                           '<th></th></tr></thead><tbody>{}</tbody></table>', rows)

    @admin.display(description="Changes to live articles")
    def changes_display(self, obj):
        return release_changes_admin.changes_html(obj)

    @admin.display(description="History")
    def history_display(self, obj):
        events = ReleaseEvent.objects.filter(release=obj).select_related("actor")[:50]
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (zoned_time(e.created_at, short=True), e.action.replace("_", " "), e.actor or "system", e.note or "")
            for e in events))
        return format_html('<table class="release-history"><tbody>{}</tbody></table>', rows)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        release = Release.objects.filter(pk=object_id).first()
        tools = []
        if release is not None and _can_edit(request):
            if releases.release_action_reason(release=release, action="schedule") is None:
                label = "Schedule…" if release.status == ReleaseStatus.DRAFT else "Reschedule…"
                tools.append({"url": reverse("admin:publisher_release_schedule", args=[release.pk]), "label": label,
                              "post": False, "name": "schedule"})
            if releases.release_action_reason(release=release, action="unschedule") is None:
                tools.append({"url": reverse("admin:publisher_release_unschedule", args=[release.pk]),
                              "label": "Unschedule", "post": True, "name": "unschedule"})
            if release.status in RELEASE_EDITABLE:
                tools.append({"url": reverse("admin:publisher_release_add_changes", args=[release.pk]),
                              "label": "Add a change…", "post": False, "name": "add_changes"})
            if release.status == ReleaseStatus.PUBLISHED:
                tools.append({"url": reverse("admin:publisher_release_rollback", args=[release.pk]),
                              "label": "Rollback time…", "post": False, "name": "rollback"})
        conflicts = [] if release is None else selectors.release_conflicts(
            release_id=release.pk, zone=timezone.get_current_timezone())
        extra_context = {**(extra_context or {}), "release_tools": tools, "zone_label": zone_label(),
                         "conflicts": [conflict_html(c) for c in conflicts]}
        return super().change_view(request, object_id, form_url, extra_context)

    # --- actions -------------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:release_id>/schedule/", view(self.schedule_view), name="publisher_release_schedule"),
            path("<int:release_id>/unschedule/", view(require_POST(self.unschedule_view)),
                 name="publisher_release_unschedule"),
            path("<int:release_id>/rollback/", view(self.rollback_view), name="publisher_release_rollback"),
            path("<int:release_id>/remove/<int:article_id>/", view(self.remove_view), name="publisher_release_remove"),
        ] + release_changes_admin.urls(self) + super().get_urls()

    def _page(self, request, release, *, title, form, submit, intro=""):
        return TemplateResponse(request, "publisher/admin/release_form.html", {
            **self.admin_site.each_context(request), "opts": self.opts, "title": title, "release": release,
            "form": form, "submit": submit, "intro": intro, "zone_label": zone_label()})

    def _release(self, request, release_id) -> Release | None:
        """The release named by the URL, or None: the views then say it is gone (as Django's own
        change page does) instead of answering 404."""
        if not _can_edit(request):
            raise PermissionDenied
        return Release.objects.filter(pk=release_id).first()

    def _gone(self, request, release_id):
        return release_changes_admin.release_gone(self, request, release_id)

    def _back(self, release):
        return HttpResponseRedirect(reverse("admin:publisher_release_change", args=[release.pk]))

    def schedule_view(self, request, release_id):
        release = self._release(request, release_id)
        if release is None:
            return self._gone(request, release_id)
        initial = {"publish_at": release.publish_at, "unpublish_at": release.unpublish_at}
        form = ReleaseScheduleForm(request.POST or None, initial=initial)
        intro = ("Every article of the release is scheduled for this time and goes live with the others in one "
                 "step, or none does.")
        if (not request.user.has_perm("publisher.publish_article")
                and release_changes.members(release.pk).exists()):
            # Its changes to live articles go live with it: scheduling it is publishing them.
            intro = CHANGES_NEED_PUBLISH
            if form.is_bound:
                form.is_valid()
                form.add_error(None, f"The release was not scheduled: {CHANGES_NEED_PUBLISH}")
        elif request.method == "POST" and form.is_valid():
            try:
                releases.release_schedule(release_id=release.pk, publish_at=form.cleaned_data["publish_at"],
                                          unpublish_at=form.cleaned_data["unpublish_at"], actor=request.user)
            except ValidationError as exc:
                form.add_error(None, error_text(exc))
            except releases.ReleaseError as exc:
                form.add_error(None, str(exc))
            else:
                release.refresh_from_db()
                count = release.members.count()
                self.message_user(request, format_html(
                    "Release “{}” is scheduled: its {} article{} go live together {}.", release, count,
                    "s" if count != 1 else "", zoned_time(release.publish_at)), messages.SUCCESS)
                return self._back(release)
        return self._page(request, release, title=f"Schedule release “{release}”", form=form, submit="Schedule",
                          intro=intro)

    def unschedule_view(self, request, release_id):
        release = self._release(request, release_id)
        if release is None:
            return self._gone(request, release_id)
        try:
            releases.release_unschedule(release_id=release.pk, actor=request.user)
        except releases.ReleaseError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, f"Release “{release}” is unscheduled: its articles are drafts again.",
                              messages.SUCCESS)
        return self._back(release)

    def rollback_view(self, request, release_id):
        release = self._release(request, release_id)
        if release is None:
            return self._gone(request, release_id)
        form = ReleaseRollbackForm(request.POST or None, initial={"unpublish_at": release.unpublish_at})
        intro = "At this time every article of the release is taken down."
        if not request.user.has_perm("publisher.publish_article"):
            # Taking a live release back (its new articles down, its changes undone) is publishing.
            intro = ROLLBACK_NEEDS_PUBLISH
            if form.is_bound:
                form.is_valid()
                form.add_error(None, f"The rollback time was not saved: {ROLLBACK_NEEDS_PUBLISH}")
        elif request.method == "POST" and form.is_valid():
            try:
                releases.release_set_rollback(release_id=release.pk, unpublish_at=form.cleaned_data["unpublish_at"],
                                              actor=request.user)
            except (ValidationError, releases.ReleaseError) as exc:
                form.add_error(None, error_text(exc))
            else:
                self.message_user(request, f"Rollback time of “{release}” saved.", messages.SUCCESS)
                return self._back(release)
        return self._page(request, release, title=f"Rollback time of “{release}”", form=form, submit="Save",
                          intro=intro)

    def remove_view(self, request, release_id, article_id):
        release = self._release(request, release_id)
        if release is None:
            return self._gone(request, release_id)
        article = get_object_or_404(Article, pk=article_id, release=release)
        if request.method == "POST":
            try:
                releases.release_remove_members(release_id=release.pk, article_ids=[article.pk], actor=request.user)
            except releases.ReleaseError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"“{article}” was removed from “{release}”.", messages.SUCCESS)
            return self._back(release)
        return self._page(request, release, title=f"Remove “{article}” from “{release}”", form=forms.Form(),
                          submit="Remove", intro="A scheduled article goes back to draft.")


@admin.action(description="Add to a release…")
def add_to_release(modeladmin, request, queryset):
    """The article list's action: pick a release (draft, scheduled or blocked), add the selected
    articles, say which were skipped and why."""
    if not _can_edit(request):
        raise PermissionDenied
    ids = sorted(queryset.values_list("pk", flat=True))
    form = AddToReleaseForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        release = form.cleaned_data["release"]
        try:
            result = releases.release_add_members(release_id=release.pk, article_ids=ids, actor=request.user)
        except releases.ReleaseError as exc:
            modeladmin.message_user(request, str(exc), messages.ERROR)
            return None
        if result.done:
            modeladmin.message_user(request, format_html(
                "Added {} article{} to <a href=\"{}\">{}</a>.", len(result.done), "s" if len(result.done) != 1 else "",
                reverse("admin:publisher_release_change", args=[release.pk]), release), messages.SUCCESS)
        titles = dict(Article.objects.filter(pk__in=[pk for pk, _ in result.skipped]).values_list("pk", "title"))
        for pk, reason in result.skipped:
            modeladmin.message_user(request, f"“{titles.get(pk) or f'Article #{pk}'}” was not added: {reason}.",
                                    messages.WARNING)
        return None
    return TemplateResponse(request, "publisher/admin/add_to_release.html", {
        **modeladmin.admin_site.each_context(request), "opts": modeladmin.opts, "title": "Add to a release",
        "form": form, "articles": list(Article.objects.filter(pk__in=ids).order_by("pk")), "selected_ids": ids,
        "action": "add_to_release", "select_across": request.POST.get("select_across", "0"),
        "new_release_url": reverse("admin:publisher_release_add")})
