"""The editors' admin. Thin: every change of schedule or status is one call into
publisher.services (the same path the scan and "publish now" take), reads come from
publisher.selectors, and every time is shown in the editor's zone with the zone's name
(publisher.middleware activates it; publisher.forms reads and writes it)."""

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from . import selectors, services
from .webhooks import services as webhooks
from .forms import (
    ArticleAdminForm,
    BulkScheduleForm,
    TimeZoneForm,
    duration_text,
    local_time_text,
    past_publish_note,
    zone_label,
)
from .models import Article, ArticleEventAction, ArticleStatus, EditorProfile, Notification, Subscriber

# The admin index: the first template that exists. An app above publisher (scheduling) adds the
# pipeline status panel by providing admin/dashboard_index.html; publisher alone shows its own.
# (An app's admin/index.html cannot override Django's: django.contrib.admin is listed first.)
admin.site.index_template = ["admin/dashboard_index.html", "publisher/admin/index.html"]
admin.site.site_header = "Publisher"
admin.site.site_title = "Publisher admin"
admin.site.index_title = "Newsroom"
# The article list has many columns; the app sidebar would push them off screen.
admin.site.enable_nav_sidebar = False

# A bulk action works article by article (each its own transaction, each reported), inside one
# web request: it takes at most this many at once.
BULK_LIMIT = 500

STATUS_COLOURS = {
    ArticleStatus.DRAFT: "#6b7280",
    ArticleStatus.SCHEDULED: "#2563eb",
    ArticleStatus.PUBLISHING: "#d97706",
    ArticleStatus.PUBLISHED: "#15803d",
    ArticleStatus.FAILED: "#b91c1c",
    ArticleStatus.EXPIRED: "#4b5563",
    ArticleStatus.MISSED: "#9333ea",
}


def status_badge(status: str) -> str:
    label = ArticleStatus(status).label if status in ArticleStatus.values else status
    return format_html('<span class="status-badge status-{}" style="background:{}">{}</span>',
                       status, STATUS_COLOURS.get(status, "#6b7280"), label)


def zoned_time(value, *, short: bool = False) -> str:
    """A time in the editor's zone that says its zone; on hover, in full with the zone's name."""
    if value is None:
        return "—"
    return format_html('<time datetime="{}" title="{} — {}">{}</time>', value.isoformat(), local_time_text(value),
                       zone_label(at=value), local_time_text(value, short=short))


def lateness_text(article: Article, *, now=None) -> str:
    now = now or timezone.now()
    if article.published_at and article.publish_at:
        late = article.published_at - article.publish_at
        if late < timedelta(seconds=1):
            return format_html('<span class="on-time">on time (+{})</span>', duration_text(max(late, timedelta())))
        return format_html('<span class="late">{} late</span>', duration_text(late))
    if article.status == ArticleStatus.SCHEDULED and article.publish_at and article.publish_at < now:
        return format_html('<span class="overdue">overdue by {}</span>', duration_text(now - article.publish_at))
    if article.status == ArticleStatus.SCHEDULED and article.publish_at:
        return format_html('<span class="quiet">in {}</span>', duration_text(article.publish_at - now))
    if article.status == ArticleStatus.PUBLISHING and article.publish_at:
        if article.publish_at > now:
            return format_html('<span class="quiet">goes live in {}</span>', duration_text(article.publish_at - now))
        return format_html('<span class="quiet">{}</span>', "going live now")
    return "—"


class ScheduleFilter(admin.SimpleListFilter):
    """Upcoming today / this week (calendar days in the editor's zone), overdue, failed."""

    title = "schedule"
    parameter_name = "when"

    def lookups(self, request, model_admin):
        return [
            ("today", "Going out today"),
            ("week", "Going out in the next 7 days"),
            ("overdue", "Overdue (should be live)"),
            ("attention", "Failed or missed"),
        ]

    def queryset(self, request, queryset):
        zone = timezone.get_current_timezone()
        if self.value() == "today":
            return selectors.articles_going_out(queryset=queryset, zone=zone, days=1)
        if self.value() == "week":
            return selectors.articles_going_out(queryset=queryset, zone=zone, days=7)
        if self.value() == "overdue":
            return selectors.articles_overdue(queryset=queryset)
        if self.value() == "attention":
            return selectors.articles_needing_attention(queryset=queryset)
        return queryset


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    form = ArticleAdminForm
    list_display = ("headline", "status_column", "publish_at_column", "went_live_column", "unpublish_at_column",
                    "problem_column", "last_change_column")
    list_display_links = ("headline",)
    list_filter = ("status", ScheduleFilter)
    search_fields = ("title", "body")
    search_help_text = "Search titles and text."
    date_hierarchy = "publish_at"
    ordering = (F("publish_at").desc(nulls_last=True), "-id")
    list_per_page = 50
    actions = ["schedule_selected", "unschedule_selected", "publish_now_selected", "retry_selected"]
    readonly_fields = ("status_display", "schedule_summary", "publish_at_display", "published_at_display",
                       "lateness_display", "last_error_display", "attempts", "thumbnail", "activity")

    # --- permissions ---------------------------------------------------------------------------

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm("publisher.publish_article")

    # --- list ----------------------------------------------------------------------------------

    def get_queryset(self, request):
        return selectors.articles_for_admin_list(queryset=super().get_queryset(request))

    @admin.display(description="Title", ordering="title")
    def headline(self, obj):
        return str(obj)

    @admin.display(description="Status", ordering="status")
    def status_column(self, obj):
        return status_badge(obj.status)

    @admin.display(description="Publish at", ordering="publish_at")
    def publish_at_column(self, obj):
        return zoned_time(obj.publish_at, short=True)

    @admin.display(description="Went live · lateness", ordering="published_at")
    def went_live_column(self, obj):
        if obj.published_at is None:
            return lateness_text(obj)
        return format_html("{}<br>{}", zoned_time(obj.published_at, short=True), lateness_text(obj))

    @admin.display(description="Unpublish at", ordering="unpublish_at")
    def unpublish_at_column(self, obj):
        return zoned_time(obj.unpublish_at, short=True)

    @admin.display(description="Problem")
    def problem_column(self, obj):
        if not obj.last_error:
            return "—"
        return format_html('<span class="problem" title="{}">{}</span>', obj.last_error,
                           Truncator(obj.last_error).chars(90))

    @admin.display(description="Last schedule change")
    def last_change_column(self, obj):
        if not getattr(obj, "last_event_action", None):
            return "—"
        action = ArticleEventAction(obj.last_event_action).label
        return format_html("{} by {}<br><span class=\"quiet\">{}</span>", action, obj.last_event_actor or "system",
                           zoned_time(obj.last_event_at, short=True))

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "zone_label": zone_label(),
                         "can_publish": self.has_publish_permission(request)}
        return super().changelist_view(request, extra_context)

    # --- form ----------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("title", "body", "image")}),
                    ("Schedule", {"fields": ("publish_at", "unpublish_at"),
                                  "description": f"Times are in your time zone, {zone_label()}. "
                                                 "Leave the publish time empty to save a draft."})]
        timing = ("publish_at_display" if obj.status == ArticleStatus.PUBLISHED else "publish_at", "unpublish_at")
        outcome = ("published_at_display", "lateness_display", "last_error_display", "attempts", "thumbnail")
        return [
            ("Schedule", {"fields": ("status_display", "schedule_summary") + timing,
                          "description": f"Times are in your time zone, {zone_label()}. Change them here to "
                                         "reschedule; clear the publish time to take the article back to draft."}),
            ("Content", {"fields": ("title", "body", "image")}),
            ("Outcome", {"fields": outcome}),
            ("History", {"fields": ("activity",)}),
        ]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None and obj.status == ArticleStatus.PUBLISHED:
            # It went live: only the take-down time can change. (A declared field survives
            # `exclude`, so drop it from this request's form class, made fresh per call.)
            form.base_fields.pop("publish_at", None)
        return form

    @admin.display(description="Status")
    def status_display(self, obj):
        return status_badge(obj.status)

    @admin.display(description="What happens next")
    def schedule_summary(self, obj):
        now = timezone.now()
        if obj.status == ArticleStatus.SCHEDULED:
            if obj.publish_at <= now:
                return f"Due since {local_time_text(obj.publish_at)}: it goes out at the next scan."
            return f"Goes live {local_time_text(obj.publish_at)}, in {duration_text(obj.publish_at - now)}."
        if obj.status == ArticleStatus.PUBLISHING:
            return f"Being published now (due {local_time_text(obj.publish_at)})."
        if obj.status == ArticleStatus.PUBLISHED:
            until = f" until {local_time_text(obj.unpublish_at)}" if obj.unpublish_at else ""
            return f"Live since {local_time_text(obj.published_at)}{until}."
        if obj.status == ArticleStatus.FAILED:
            return format_html(
                '<strong class="problem">Publishing failed: {}</strong><br>To recover, fix the article if needed, then '
                "Retry (publishers), or set a new publish time and save to schedule it again.", obj.last_error)
        if obj.status == ArticleStatus.MISSED:
            return format_html(
                '<strong class="problem">Not published: {}</strong><br>Retry to publish it anyway (publishers), or set '
                "a new publish time and save.", obj.last_error)
        if obj.status == ArticleStatus.EXPIRED:
            return "Taken down (or never put live: its unpublish time passed). Set new times to schedule it again."
        return "Draft: set a publish time and save to schedule it."

    @admin.display(description="Publish at")
    def publish_at_display(self, obj):
        return zoned_time(obj.publish_at)

    @admin.display(description="Went live at")
    def published_at_display(self, obj):
        return zoned_time(obj.published_at)

    @admin.display(description="Lateness")
    def lateness_display(self, obj):
        return lateness_text(obj)

    @admin.display(description="Reason it failed")
    def last_error_display(self, obj):
        if not obj.last_error:
            return "—"
        return format_html('<div class="problem-box">{}</div>', obj.last_error)

    @admin.display(description="Activity")
    def activity(self, obj):
        events = selectors.article_events(article_id=obj.pk)
        if not events:
            return "No schedule changes yet."
        rows = []
        for event in events:
            action = ArticleEventAction(event.action).label
            detail = []
            if event.action == ArticleEventAction.UNSCHEDULED:
                detail.append(f"was due {local_time_text(event.previous_publish_at)}" if event.previous_publish_at
                              else "")
            elif event.action == ArticleEventAction.RESCHEDULED and event.previous_publish_at:
                detail.append(f"from {local_time_text(event.previous_publish_at)} "
                              f"to {local_time_text(event.publish_at)}")
            elif event.action == ArticleEventAction.UNPUBLISH_CHANGED:
                detail.append(f"take down {local_time_text(event.unpublish_at)}" if event.unpublish_at
                              else "no take-down time")
            else:
                detail.append(f"for {local_time_text(event.publish_at)}")
            if event.previous_status:
                detail.append(f"was {ArticleStatus(event.previous_status).label.lower()}")
            rows.append((local_time_text(event.created_at, with_seconds=True), action,
                         event.actor.get_username() if event.actor else "system",
                         "; ".join(d for d in detail if d)))
        return format_html('<table class="activity"><thead><tr><th>When</th><th>What</th><th>Who</th><th>Details'
                           '</th></tr></thead><tbody>{}</tbody></table>',
                           format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    def save_model(self, request, obj, form, change):
        """Content is saved as typed; times go through the schedule services (never a status
        write): a full save could write back a status the pipeline moved meanwhile."""
        if not change:
            obj.status = ArticleStatus.DRAFT
            obj.save()
            current = {"publish_at": None, "unpublish_at": None}
        else:
            content = [name for name in ("title", "body", "image") if name in form.changed_data]
            if content:
                obj.save(update_fields=content + ["updated_at"])
                webhooks.record(event="updated", article_ids=[obj.pk])  # only if it is live
            current = Article.objects.filter(pk=obj.pk).values("publish_at", "unpublish_at").first() or {}
        publish_at = form.cleaned_data["publish_at"] if "publish_at" in form.changed_data else current.get("publish_at")
        if "publish_at" not in form.fields:
            publish_at = current.get("publish_at")
        unpublish_at = (form.cleaned_data["unpublish_at"] if "unpublish_at" in form.changed_data
                        else current.get("unpublish_at"))
        try:
            event = services.article_update_schedule(article_id=obj.pk, publish_at=publish_at,
                                                     unpublish_at=unpublish_at, actor=request.user)
        except (ValidationError, services.TransitionError) as exc:
            self.message_user(request, f"Saved “{obj}”, but its schedule was not changed: {_reason(exc)}",
                              messages.ERROR)
            return
        if event is not None:
            self._report_event(request, obj, event)

    def _report_event(self, request, obj, event):
        if event.action in (ArticleEventAction.SCHEDULED, ArticleEventAction.RESCHEDULED):
            text = f"“{obj}” is scheduled for {local_time_text(event.publish_at)}"
            if event.action == ArticleEventAction.RESCHEDULED and event.previous_publish_at:
                text += f" (was {local_time_text(event.previous_publish_at)})"
            self.message_user(request, text + ".", messages.SUCCESS)
            note = past_publish_note(event.publish_at)
            if note:
                self.message_user(request, note, messages.WARNING)
        elif event.action == ArticleEventAction.UNSCHEDULED:
            self.message_user(request, f"“{obj}” is back to draft and will not be published.", messages.SUCCESS)
        elif event.action == ArticleEventAction.UNPUBLISH_CHANGED:
            text = (f"“{obj}” will be taken down {local_time_text(event.unpublish_at)}." if event.unpublish_at
                    else f"“{obj}” no longer has a take-down time.")
            self.message_user(request, text, messages.SUCCESS)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        article = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if article is not None:
            allowed = self.has_publish_permission(request)
            extra_context.update({
                "can_publish_now": allowed and article.status not in services.NOT_APPLICABLE["publish now"],
                "can_retry": allowed and article.status in selectors.NEEDS_ATTENTION,
                "can_unschedule": (self.has_change_permission(request, article)
                                   and article.status in services.UNSCHEDULABLE),
            })
        return super().change_view(request, object_id, form_url, extra_context)

    # --- bulk actions --------------------------------------------------------------------------

    @admin.action(description="Schedule selected articles…", permissions=["change"])
    def schedule_selected(self, request, queryset):
        article_ids = self._selected_ids(request, queryset)
        if article_ids is None:
            return None
        applying = "apply" in request.POST
        form = BulkScheduleForm(request.POST if applying else None)
        if applying and form.is_valid():
            result = services.articles_schedule(
                article_ids=article_ids, publish_at=form.cleaned_data["publish_at"],
                unpublish_at=form.cleaned_data.get("unpublish_at"), spacing=form.spacing, actor=request.user)
            if result.done:
                first = form.cleaned_data["publish_at"]
                when = local_time_text(first)
                if form.spacing and len(result.done) > 1:
                    last = first + form.spacing * (len(result.done) - 1)
                    when = f"{when} to {local_time_text(last)}, one every {duration_text(form.spacing)}"
                self.message_user(request, f"Scheduled {_count(result.done)}: {when}.", messages.SUCCESS)
                note = past_publish_note(first)
                if note:
                    self.message_user(request, note, messages.WARNING)
            self._report_skipped(request, result, "scheduled")
            return None
        selected = list(queryset.only("id", "title", "status", "publish_at").order_by("pk"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Schedule articles",
            "opts": self.model._meta,
            "form": form,
            "articles": selected,
            "zone_label": zone_label(),
            "action": "schedule_selected",
            "selected_ids": [a.pk for a in selected],
            "select_across": request.POST.get("select_across", "0"),
            "media": self.media + form.media,
        }
        return TemplateResponse(request, "publisher/admin/bulk_schedule.html", context)

    @admin.action(description="Unschedule selected articles (back to draft)", permissions=["change"])
    def unschedule_selected(self, request, queryset):
        article_ids = self._selected_ids(request, queryset)
        if article_ids is None:
            return
        result = services.articles_unschedule(article_ids=article_ids, actor=request.user)
        if result.done:
            self.message_user(request, f"Unscheduled {_count(result.done)}: back to draft.", messages.SUCCESS)
        self._report_skipped(request, result, "unscheduled")

    @admin.action(description="Publish selected articles now", permissions=["publish"])
    def publish_now_selected(self, request, queryset):
        article_ids = self._selected_ids(request, queryset)
        if article_ids is not None:
            self._publish_now(request, article_ids)

    @admin.action(description="Retry selected failed articles", permissions=["publish"])
    def retry_selected(self, request, queryset):
        article_ids = self._selected_ids(request, queryset)
        if article_ids is not None:
            self._retry(request, article_ids)

    def _selected_ids(self, request, queryset) -> list[int] | None:
        article_ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:BULK_LIMIT + 1])
        if len(article_ids) > BULK_LIMIT:
            self.message_user(request, f"Select at most {BULK_LIMIT} articles at a time: nothing was changed. "
                                       "Narrow the list with the filters first.", messages.ERROR)
            return None
        return article_ids

    def _publish_now(self, request, article_ids):
        result = services.articles_publish_now(article_ids=article_ids, actor=request.user)
        if result.done:
            self.message_user(request, f"Publishing {_count(result.done)} now: "
                                       "the list shows them as published within seconds.", messages.SUCCESS)
        self._report_skipped(request, result, "published")

    def _retry(self, request, article_ids):
        result = services.articles_retry(article_ids=article_ids, actor=request.user)
        if result.done:
            self.message_user(request, f"Retrying {_count(result.done)}: each goes out again now, or at its "
                                       "publish time if that is still ahead.", messages.SUCCESS)
        self._report_skipped(request, result, "retried")

    def _report_skipped(self, request, result, verb):
        if not result.skipped:
            return
        reasons = "; ".join(f"“{s.title}” (#{s.article_id}): {s.reason}" for s in result.skipped)
        self.message_user(request, f"Skipped {_count(result.skipped)}, not {verb}: {reasons}.", messages.WARNING)

    # --- extra pages ---------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path("upcoming/", view(self.upcoming_view), name="%s_%s_upcoming" % info),
            path("time-zone/", view(self.time_zone_view), name="%s_%s_time_zone" % info),
            path("<int:object_id>/publish-now/", view(self.object_action_view("publish now")),
                 name="%s_%s_publish_now" % info),
            path("<int:object_id>/retry/", view(self.object_action_view("retry")), name="%s_%s_retry" % info),
            path("<int:object_id>/unschedule/", view(self.object_action_view("unschedule")),
                 name="%s_%s_unschedule" % info),
        ] + super().get_urls()

    def object_action_view(self, verb):
        """POST-only buttons on the article page; the same services and checks as the bulk actions."""

        def view(request, object_id):
            if request.method != "POST":
                return HttpResponseNotAllowed(["POST"])
            article = get_object_or_404(Article, pk=object_id)
            if verb in ("publish now", "retry"):
                allowed = self.has_publish_permission(request)
            else:
                allowed = self.has_change_permission(request, article)
            if not allowed:
                raise PermissionDenied
            if verb == "publish now":
                self._publish_now(request, [article.pk])
            elif verb == "retry":
                self._retry(request, [article.pk])
            else:
                result = services.articles_unschedule(article_ids=[article.pk], actor=request.user)
                if result.done:
                    self.message_user(request, f"“{article}” is back to draft and will not be published.",
                                      messages.SUCCESS)
                self._report_skipped(request, result, "unscheduled")
            return HttpResponseRedirect(reverse("admin:publisher_article_change", args=[article.pk]))

        return view

    def upcoming_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        zone = timezone.get_current_timezone()
        agenda = selectors.articles_agenda(zone=zone, days=7)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upcoming: the next 7 days",
            "opts": self.model._meta,
            "agenda": agenda,
            "days": [(day.day, [(a, zoned_time(a.publish_at), status_badge(a.status), lateness_text(a))
                                for a in day.articles]) for day in agenda.days],
            "overdue": [(a, zoned_time(a.publish_at), status_badge(a.status), lateness_text(a))
                        for a in agenda.overdue],
            "zone_label": zone_label(),
            "today": timezone.localtime(timezone.now(), zone).date(),
        }
        return TemplateResponse(request, "publisher/admin/upcoming.html", context)

    def history_view(self, request, object_id, extra_context=None):
        return super().history_view(request, object_id, {**(extra_context or {}), "zone_label": zone_label()})

    def time_zone_view(self, request):
        profile = EditorProfile.objects.filter(user=request.user).first() or EditorProfile(user=request.user)
        form = TimeZoneForm(request.POST or None, instance=profile)
        if request.method == "POST" and form.is_valid():
            form.save()
            name = form.cleaned_data["time_zone"] or "the site's time zone"
            self.message_user(request, f"Your time zone is now {name}.", messages.SUCCESS)
            return HttpResponseRedirect(request.GET.get("next") or reverse("admin:publisher_article_changelist"))
        context = {**self.admin_site.each_context(request), "title": "Your time zone", "form": form,
                   "opts": self.model._meta, "zone_label": zone_label()}
        return TemplateResponse(request, "publisher/admin/time_zone.html", context)


def _reason(exc: Exception) -> str:
    return " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)


def _count(items) -> str:
    return f"{len(items)} article{'s' if len(items) != 1 else ''}"


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ("email", "is_active", "created_column")
    list_filter = ("is_active",)
    search_fields = ("email",)

    @admin.display(description="Subscribed", ordering="created_at")
    def created_column(self, obj):
        return zoned_time(obj.created_at, short=True)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("article", "subscriber", "status", "expires_column", "sent_column")
    list_filter = ("status",)
    list_select_related = ("article", "subscriber")
    raw_id_fields = ("article", "subscriber")
    readonly_fields = ("status", "sent_at", "last_error")

    @admin.display(description="Expires", ordering="expires_at")
    def expires_column(self, obj):
        return zoned_time(obj.expires_at, short=True)

    @admin.display(description="Sent", ordering="sent_at")
    def sent_column(self, obj):
        return zoned_time(obj.sent_at, short=True)


class EditorProfileInline(admin.StackedInline):
    model = EditorProfile
    form = TimeZoneForm
    can_delete = False
    verbose_name = "time zone"
    verbose_name_plural = "time zone"


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    """Django's user admin, plus each editor's time zone."""

    inlines = [EditorProfileInline]
