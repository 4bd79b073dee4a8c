"""Changes to a live article in the admin (publisher.revisions). Thin: the article form of a
live article gets "Publish the change now" / "Schedule the change for …" (in the editor's zone),
and its save hands an edited title, body, image or alt text to `revision_create` instead of
writing the live row; the article page lists its changes with a diff of the text, and each
change has a page to publish, schedule, cancel or restore it."""

import difflib
from dataclasses import dataclass
from datetime import date, datetime
from functools import partial

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from .. import revisions, schedule_rules, selectors
from ..forms import ZonedDateTimeField
from ..models import ArticleRevision
from ..services import TransitionError
from ..states import REVISION_PENDING, REVISION_TRANSITIONS, RevisionStatus
from ..text import error_text
from ..zones import local_time_text, zone_label

CONTENT = ("title", "body", "image", "image_alt")
NOW, SCHEDULE, DRAFT = "now", "schedule", "draft"
# Changing what readers see is publishing (as in Wagtail): putting a change live, now, at a time or
# with a release, needs `publisher.publish_article`; saving a draft change needs `change_article`.
PUBLISH_NEEDED = ("Publishing or scheduling a change to a live article needs the permission to publish "
                  "(the Publishers group). You can save it as a draft change: a Publisher then publishes or "
                  "schedules it from its page.")
URL_NAME = "publisher_article_revision"
STATUS_COLOURS = {RevisionStatus.DRAFT: "#6b7280", RevisionStatus.SCHEDULED: "#2563eb",
                  RevisionStatus.PUBLISHING: "#7c3aed", RevisionStatus.APPLIED: "#15803d",
                  RevisionStatus.FAILED: "#b91c1c", RevisionStatus.CANCELLED: "#6b7280",
                  RevisionStatus.IN_RELEASE: "#0891b2", RevisionStatus.ROLLED_BACK: "#4b5563"}


# --- the live article's form ---------------------------------------------------------------------

def live_form(form_class):
    """The article form for a live article: its content changes become a change, published now
    or scheduled for a time ahead."""

    class LiveArticleForm(form_class):
        can_publish_changes = True  # set by the admin's get_form: the user may publish (publish_article)
        change_when = forms.ChoiceField(
            required=False, initial=NOW, widget=forms.RadioSelect(attrs={"class": "radiolist"}),
            label="When the change goes live",
            choices=[(NOW, "Publish the change now"), (SCHEDULE, "Schedule the change for …"),
                     (DRAFT, "Save as a draft change (publish or schedule it later, from its page)")],
            error_messages={"invalid_choice": PUBLISH_NEEDED},
            help_text="The article is live: a change of its title, text, image or alt text is kept apart and "
                      "replaces the live version at this time. Readers see the live version until then.")
        change_publish_at = ZonedDateTimeField(required=False, label="Schedule the change for",
                                               help_text="A time ahead, in your time zone.")
        change_notify = forms.BooleanField(
            required=False, initial=False, label="Notify subscribers of this update",
            help_text="When the change goes live, every subscriber gets one e-mail saying the article was "
                      "updated. Off: nobody is mailed.")

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if not self.can_publish_changes:
                field = self.fields["change_when"]
                field.choices = [(DRAFT, "Save as a draft change")]
                field.initial = DRAFT
                field.help_text = ("The article is live: a change of its title, text, image or alt text is kept "
                                   "apart as a draft change. " + PUBLISH_NEEDED)
                self.fields.pop("change_publish_at", None)

        def clean(self):
            cleaned = super().clean()
            if not any(name in self.changed_data for name in CONTENT):
                return cleaned
            if not cleaned.get("change_when") and "change_when" not in self.errors:
                cleaned["change_when"] = NOW if self.can_publish_changes else DRAFT
            if cleaned.get("change_when") == SCHEDULE:
                when = cleaned.get("change_publish_at")
                if when is None:
                    if "change_publish_at" not in self.errors:
                        self.add_error("change_publish_at", "Enter when the change goes live.")
                    return cleaned
                unpublish_at = cleaned.get("unpublish_at") if "unpublish_at" in self.fields else None
                for error in schedule_rules.change_time_errors(
                        publish_at=when, unpublish_at=unpublish_at or self.instance.unpublish_at):
                    self.add_error("change_publish_at", error)
            return cleaned

    return LiveArticleForm


def fieldset(obj) -> tuple:
    pending = ArticleRevision.objects.filter(article_id=obj.pk).pending().first()
    description = f"Times are in your time zone, {zone_label()}."
    if pending is not None:
        description += (f" A change is already scheduled for {local_time_text(pending.publish_at)}: saving another "
                        "change replaces it.")
    return ("Change to the live article", {"fields": ("change_when", "change_publish_at", "change_notify"),
                                           "description": description})


def fieldset_for(obj, *, can_publish: bool) -> tuple:
    """The live article's *Change to the live article* box; without the permission to publish,
    a change is saved as a draft (no time to enter)."""
    name, options = fieldset(obj)
    if not can_publish:
        options = {**options, "fields": ("change_when", "change_notify")}
    return name, options


def pending_text(obj) -> str:
    """The sentence a live article's summary adds about its pending change ("" without one)."""
    pending = ArticleRevision.objects.filter(article_id=obj.pk).pending().first()
    if pending is None:
        return ""
    return f" A change goes live {local_time_text(pending.publish_at)} (change #{pending.pk}, below)."


def save_change(request, obj, form) -> bool:
    """Hand the edited content of a live article to `revision_create`: True when a change was
    made (the live row is left as it is), False when it was refused (the editor is told why)."""
    data = form.cleaned_data
    image = None  # unchanged: the change keeps the live image
    if "image" in form.changed_data:
        image = data["image"] or ""  # False: cleared
    draft = data.get("change_when") == DRAFT
    when = data.get("change_publish_at") if data.get("change_when") == SCHEDULE else None
    try:
        revision = revisions.revision_create(
            article_id=obj.pk, title=data["title"], body=data["body"], image=image,
            image_alt=data.get("image_alt") or "", publish_at=when, notify_subscribers=bool(data.get("change_notify")),
            actor=request.user, draft=draft)
    except (ValidationError, TransitionError) as exc:
        messages.error(request, f"The change to “{obj}” was not saved: {error_text(exc)}")
        return False
    if draft:
        request.publisher_save_message = (f"The change to “{obj}” is saved as draft change #{revision.pk}: readers see "
                                          "the live version until it is published or scheduled from its page.")
    elif when is None:
        request.publisher_save_message = (f"The change to “{obj}” is being published now: readers see it within "
                                          "seconds.")
    else:
        request.publisher_save_message = (f"The change to “{obj}” is scheduled for {local_time_text(when)}. "
                                          "Readers see the live version until then.")
    return revision is not None


# --- the article page: its changes -----------------------------------------------------------------

def status_badge(status: str) -> str:
    return format_html('<span class="status-badge status-{}" style="background:{}">{}</span>', status,
                       STATUS_COLOURS.get(status, "#6b7280"), RevisionStatus(status).label)


def at_risk_reason(revision: ArticleRevision) -> str:
    """What the pre-flight found would fail on this change while it waits to go live ("" when
    nothing, or when it is not waiting any more)."""
    if revision.status in (RevisionStatus.SCHEDULED, RevisionStatus.IN_RELEASE):
        return revision.at_risk_reason
    return ""


def at_risk_flag(revision: ArticleRevision) -> str:
    reason = at_risk_reason(revision)
    return format_html(' <span class="at-risk" title="{}">At risk</span>', reason) if reason else ""


def diff_html(before: str, after: str) -> str:
    """The text's lines removed and added (difflib), escaped; one line of context."""
    lines = [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=1)
             if not line.startswith(("---", "+++"))]
    if not lines:
        return format_html('<span class="quiet">{}</span>', "The text is unchanged.")
    css = {"+": "diff-add", "-": "diff-del", "@": "diff-hunk"}
    return format_html('<pre class="diff">{}</pre>', format_html_join(
        "\n", '<span class="{}">{}</span>', ((css.get(line[:1], "diff-same"), line) for line in lines)))


def revision_when(revision: ArticleRevision) -> str:
    if revision.publish_at is None:
        return "Draft: not scheduled"
    if revision.immediate:
        return f"Published now ({local_time_text(revision.publish_at)})"
    return f"Scheduled for {local_time_text(revision.publish_at)}"


def notify_text(revision: ArticleRevision) -> str:
    """Whether subscribers are mailed about the change, and whether that mail went out."""
    if not revision.notify_subscribers:
        return "Subscribers not notified"
    if revision.fanned_out_at is not None:
        return "Subscribers notified"
    if revision.status == RevisionStatus.APPLIED:
        return "Notifying subscribers"
    return "Subscribers will be notified"


def history(model_admin, obj) -> str:
    """The article's changes, newest first: who, when, scheduled or immediate, status, the diff."""
    rows = []
    for revision in ArticleRevision.objects.filter(article_id=obj.pk).select_related("author"):
        title = (format_html("Title: “{}” → “{}”", revision.base_title, revision.title)
                 if revision.title != revision.base_title else "")
        rows.append({
            "revision": revision,
            "url": reverse(f"{model_admin.admin_site.name}:{URL_NAME}", args=[obj.pk, revision.pk]),
            "who": revision.author.get_username() if revision.author else "system",
            "made": local_time_text(revision.created_at),
            "when": revision_when(revision),
            "applied": local_time_text(revision.applied_at) if revision.applied_at else "",
            "notify": notify_text(revision),
            "status": format_html("{}{}", status_badge(revision.status), at_risk_flag(revision)),
            "at_risk": at_risk_reason(revision),
            "title_change": title,
            "diff": diff_html(revision.base_body, revision.body),
        })
    if not rows:
        return "No changes yet. Edit the live article's content to make one."
    return render_to_string("publisher/admin/fragments/revisions.html", {"rows": rows})


# --- the agenda and the month calendar ------------------------------------------------------------

@dataclass(frozen=True)
class CalendarChange:
    """A pending change as an agenda or calendar row: links to its article."""

    pk: int  # the article's
    label: str

    def __str__(self):
        return self.label


def calendar_changes(*, zone, first: date, last: date) -> dict[date, list[tuple[datetime, CalendarChange, str]]]:
    """Pending changes due on the local days first..last in `zone`, by day: (time, row, badge; the
    badge carries the pre-flight's *At risk* flag)."""
    start, _ = selectors.local_day_bounds(day=first, zone=zone)
    _, end = selectors.local_day_bounds(day=last, zone=zone)
    by_day: dict[date, list] = {}
    for revision in selectors.changes_pending(start=start, end=end):
        row = CalendarChange(revision.article_id, f"Change #{revision.pk} to “{revision.article}”")
        by_day.setdefault(timezone.localtime(revision.publish_at, zone).date(), []).append(
            (revision.publish_at, row, format_html("{}{}", status_badge(revision.status), at_risk_flag(revision))))
    return by_day


# --- one change's page --------------------------------------------------------------------------

class ScheduleChangeForm(forms.Form):
    use_required_attribute = False  # one form with *Publish the change now*: the time is checked here

    publish_at = ZonedDateTimeField(label="Schedule the change for", required=False)

    def clean_publish_at(self):
        when = self.cleaned_data.get("publish_at")
        if when is None:
            raise ValidationError("Enter when the change goes live.")
        return when


ACTIONS = {
    "publish_now": "Publish the change now",
    "schedule": "Schedule the change",
    "notify": "Save",
    "cancel": "Cancel the change",
    "restore": "Restore as a new draft change",
}
# What each action needs: "publish" (publisher.publish_article: it puts the change live) or
# "change" (the article's change permission: a draft, or taking a change back).
NEEDS = {"publish_now": "publish", "schedule": "publish", "notify": "change", "cancel": "change",
         "restore": "change"}
NOTIFY_HELP = ("When the change goes live, every subscriber gets one e-mail saying the article was updated. "
               "Off: nobody is mailed.")


def _offered(revision: ArticleRevision) -> list[str]:
    """What the state machine allows for the change now (permission aside)."""
    offered = [name for name in ("publish_now", "schedule", "cancel")
               if revision.status in REVISION_TRANSITIONS[name].sources]
    if revision.status in revisions.NOTIFY_EDITABLE:
        offered.append("notify")
    return offered + ["restore"]


def _permitted(model_admin, request, article, name: str) -> bool:
    if NEEDS[name] == "publish":
        return model_admin.has_publish_permission(request)
    return model_admin.has_change_permission(request, article)


def _notify_posted(request) -> bool | None:
    """The *Notify subscribers* tick as posted, or None when the form did not carry it."""
    if "notify_shown" not in request.POST:
        return None
    return forms.BooleanField(required=False).clean(request.POST.get("notify_subscribers"))


def revision_view(request, object_id: int, revision_id: int, *, model_admin):
    """GET: the change, its diff and what can be done with it; POST: do it, back to the article."""
    revision = get_object_or_404(ArticleRevision.objects.select_related("article", "author"),
                                 pk=revision_id, article_id=object_id)
    article = revision.article
    if not model_admin.has_view_permission(request, article):
        raise PermissionDenied
    back = reverse(f"{model_admin.admin_site.name}:publisher_article_change", args=[article.pk])
    here = reverse(f"{model_admin.admin_site.name}:{URL_NAME}", args=[article.pk, revision.pk])
    form = ScheduleChangeForm(request.POST if request.POST.get("action") == "schedule" else None)
    if request.method == "POST":
        if not model_admin.has_change_permission(request, article):
            raise PermissionDenied
        action = request.POST.get("action")
        if action not in _offered(revision):
            messages.error(request, f"That cannot be done to this change now (it is {revision.get_status_display().lower()}).")
            return HttpResponseRedirect(back)
        if not _permitted(model_admin, request, article, action):
            messages.error(request, f"The change was not published or scheduled: {PUBLISH_NEEDED}")
            return HttpResponseRedirect(here)
        notify = _notify_posted(request)
        try:
            if action == "schedule":
                if form.is_valid():
                    done = revisions.revision_schedule(revision_id=revision.pk, notify_subscribers=notify,
                                                       publish_at=form.cleaned_data["publish_at"], actor=request.user)
                    messages.success(request, f"The change is scheduled for {local_time_text(done.publish_at)}"
                                              f" ({notify_text(done).lower()}).")
                    return HttpResponseRedirect(back)
            elif action == "publish_now":
                done = revisions.revision_publish_now(revision_id=revision.pk, notify_subscribers=notify,
                                                      actor=request.user)
                messages.success(request, "The change is being published now: readers see it within seconds "
                                          f"({notify_text(done).lower()}).")
                return HttpResponseRedirect(back)
            elif action == "notify":
                done = revisions.revision_set_notify(revision_id=revision.pk, notify_subscribers=bool(notify),
                                                     actor=request.user)
                messages.success(request, f"Saved: {notify_text(done).lower()} when change #{done.pk} goes live."
                                 if done.notify_subscribers else
                                 f"Saved: nobody is mailed when change #{done.pk} goes live.")
                return HttpResponseRedirect(here)
            elif action == "cancel":
                revisions.revision_cancel(revision_id=revision.pk, actor=request.user)
                messages.success(request, "The change is cancelled: the live article stays as it is.")
                return HttpResponseRedirect(back)
            else:
                draft = revisions.revision_restore(revision_id=revision.pk, actor=request.user)
                messages.success(request, f"Change #{draft.pk} is a new draft with this change's content: "
                                          "publish or schedule it from its page. Subscribers are not notified "
                                          "unless you tick “Notify subscribers of this update” first.")
                return HttpResponseRedirect(reverse(f"{model_admin.admin_site.name}:{URL_NAME}",
                                                    args=[article.pk, draft.pk]))
        except (ValidationError, TransitionError) as exc:
            if action == "schedule" and isinstance(exc, schedule_rules.ScheduleErrors):
                for error in exc.errors:
                    form.add_error("publish_at", error.message)
            else:
                messages.error(request, error_text(exc))
                return HttpResponseRedirect(here if action == "notify" else back)
    return revision_page(request, model_admin, revision, form=form)


def revision_page(request, model_admin, revision: ArticleRevision, *, form=None, release_form=None):
    """The change's page: what it is, its diff, and what this user may do with it (an action
    they may not take is explained, not hidden)."""
    article = revision.article
    form = form if form is not None else ScheduleChangeForm()
    can_change = model_admin.has_change_permission(request, article)
    can_publish = can_change and model_admin.has_publish_permission(request)
    offered = _offered(revision) if can_change else []
    from .release_changes import ReleasePickForm, joinable_releases  # it imports this module's badge
    joinable = joinable_releases(revision) if can_change else []
    if release_form is None and joinable:
        release_form = ReleasePickForm()
    return TemplateResponse(request, "publisher/admin/revision.html", {
        **model_admin.admin_site.each_context(request),
        "title": f"Change #{revision.pk} to “{article}”",
        "opts": model_admin.model._meta,
        "article": article,
        "revision": revision,
        "back": reverse(f"{model_admin.admin_site.name}:publisher_article_change", args=[article.pk]),
        "who": revision.author.get_username() if revision.author else "system",
        "made": local_time_text(revision.created_at),
        "when": revision_when(revision),
        "notify": notify_text(revision),
        "status": format_html("{}{}", status_badge(revision.status), at_risk_flag(revision)),
        "at_risk": at_risk_reason(revision),
        "pending": revision.status in REVISION_PENDING,
        "title_change": revision.title != revision.base_title,
        "diff": diff_html(revision.base_body, revision.body),
        "form": form,
        # The change's own form: the tick, *Publish the change now*, *Schedule the change* (a time).
        "notify_editable": "notify" in offered,
        "notify_fixed": revision.status not in revisions.NOTIFY_EDITABLE,
        "notify_help": NOTIFY_HELP,
        "publish_actions": [(name, ACTIONS[name]) for name in ("publish_now", "schedule")
                            if name in offered and can_publish],
        "publish_needed": PUBLISH_NEEDED if any(name in offered for name in ("publish_now", "schedule"))
                          and not can_publish else "",
        "actions": [(name, ACTIONS[name]) for name in ("cancel", "restore") if name in offered],
        "releases": joinable if can_publish else [],
        "release_form": release_form if can_publish or (release_form is not None and release_form.errors) else None,
        "release_needed": PUBLISH_NEEDED if joinable and not can_publish else "",
        "zone_label": zone_label(),
        "media": model_admin.media + form.media,
    })


def urls(model_admin) -> list:
    return [path("<int:object_id>/changes/<int:revision_id>/", model_admin.admin_site.admin_view(
        partial(revision_view, model_admin=model_admin)), name=URL_NAME)]
