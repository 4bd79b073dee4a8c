"""The article admin. Thin: every change of schedule or status is one call into
publisher.services (the same path the scan and "publish now" take), reads come from
publisher.selectors, and every time is shown in the editor's zone with the zone's name
(publisher.middleware activates it; publisher.forms reads and writes it)."""

from datetime import date, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import F
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import Truncator

from .. import selectors, services
from ..forms import ArticleAdminForm, BulkScheduleForm, TimeZoneForm
from ..schedule_rules import publish_passed_note
from ..text import duration_text, error_text
from ..zones import local_time_text, zone_label
from ..models import Article, ArticleEventAction, ArticleStatus, EditorProfile
from . import actions, delivery, mail, preview
from . import calendar as month_calendar
from .releases import add_to_release, release_badge
from . import revisions as changes
from .display import lateness_text, status_badge, zoned_time
from .site import site
from ..site import services as site_services
from ..webhooks import services as webhooks

# A bulk action works article by article (each its own transaction, each reported), inside one
# web request: it takes at most this many at once.
BULK_LIMIT = 500


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
            ("at_risk", "At risk (pre-flight)"),
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
        if self.value() == "at_risk":
            return selectors.articles_at_risk(queryset=queryset)
        return queryset


@admin.register(Article, site=site)
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
    actions = ["schedule_selected", "unschedule_selected", "publish_now_selected", "retry_selected",
               "unpublish_now_selected", add_to_release]
    readonly_fields = ("status_display", "schedule_summary", "publish_at_display", "published_at_display",
                       "lateness_display", "last_error_display", "attempts", "thumbnail", "activity",
                       "preview_link_display", "delivery_display", "delivery_for_publishers", "changes_display")

    class Media:
        js = ["publisher/markdown_preview.js"]

    # --- permissions ---------------------------------------------------------------------------

    def has_publish_permission(self, request) -> bool:
        return request.user.has_perm("publisher.publish_article")

    def has_delete_permission(self, request, obj=None):
        """Only drafts, ever. An editor may delete a draft they created (its `created` event
        names them); anyone else's only with the delete permission (Publishers). Django's
        history keeps the deletion (who, when, which article)."""
        if obj is None:
            return super().has_delete_permission(request) or self.has_change_permission(request)
        if obj.status != ArticleStatus.DRAFT:
            return False
        if super().has_delete_permission(request, obj):
            return True
        return (self.has_change_permission(request, obj)
                and selectors.article_creator_id(article_id=obj.pk) == request.user.pk)

    def get_actions(self, request):
        # Django's bulk delete checks only the model permission: drafts are deleted one by one.
        actions_ = super().get_actions(request)
        actions_.pop("delete_selected", None)
        return actions_

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
        if obj.at_risk_reason and obj.status == ArticleStatus.SCHEDULED:
            return format_html('<span class="at-risk">At risk</span> <span class="problem" title="{}">{}</span>',
                               obj.at_risk_reason, Truncator(obj.at_risk_reason).chars(90))
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

    def view_on_site(self, obj):
        """*View on site* on an article readers can see now (the site answers 404 for the rest)."""
        if obj.slug and Article.objects.visible().filter(pk=obj.pk).exists():
            return obj.get_absolute_url()
        return None

    # --- form ----------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ("title", "slug", "body", "image", "image_alt")}),
                    ("Schedule", {"fields": ("publish_at", "when_passed", "unpublish_at"),
                                  "description": f"Times are in your time zone, {zone_label()}. "
                                                 "Leave the publish time empty to save a draft."})]
        timing = (("publish_at_display", "unpublish_at") if obj.status == ArticleStatus.PUBLISHED
                  else ("publish_at", "when_passed", "unpublish_at"))
        outcome = ("published_at_display", "lateness_display", "last_error_display", "attempts", "thumbnail")
        if obj.published_at is not None:
            outcome += ("delivery_for_publishers" if self.has_publish_permission(request) else "delivery_display",)
        fieldsets = [
            ("Schedule", {"fields": ("status_display", "schedule_summary") + timing,
                          "description": f"Times are in your time zone, {zone_label()}. Change them here to "
                                         "reschedule; clear the publish time to take the article back to draft."}),
            ("Content", {"fields": ("title", "slug", "body", "image", "image_alt", "preview_link_display")}),
            ("Outcome", {"fields": outcome}),
            ("History", {"fields": ("activity",)}),
        ]
        if obj.status == ArticleStatus.PUBLISHED:
            # Its content changes are kept apart and go live now or at a time (publisher.revisions).
            fieldsets.insert(2, changes.fieldset_for(obj, can_publish=self.has_publish_permission(request)))
        if obj.published_at is not None:
            fieldsets.append(("Changes to the live article", {"fields": ("changes_display",)}))
        return fieldsets

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None and obj.status == ArticleStatus.PUBLISHED:
            kwargs.setdefault("form", changes.live_form(self.form))
        form = super().get_form(request, obj, change, **kwargs)
        form.can_record_published = self.has_publish_permission(request)
        form.can_publish_changes = self.has_publish_permission(request)  # the live article's form (changes)
        if "body" in form.base_fields:
            body = form.base_fields["body"]
            body.help_text = ("Markdown: **bold**, *italic*, [a link](https://example.com), # a heading, "
                              "- a list. The preview beside it is what readers will see.")
            body.widget.attrs["data-preview-url"] = reverse(
                f"{self.admin_site.name}:publisher_article_markdown_preview")
        if obj is not None and obj.status == ArticleStatus.PUBLISHED:
            # It went live: only the take-down time can change. (A declared field survives
            # `exclude`, so drop it from this request's form class, made fresh per call.)
            form.base_fields.pop("publish_at", None)
            form.base_fields.pop("when_passed", None)
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
            text = f"Goes live {local_time_text(obj.publish_at)}, in {duration_text(obj.publish_at - now)}."
            if obj.at_risk_reason:
                return format_html('{} <span class="at-risk">At risk</span> <span class="problem">{}</span>', text,
                                   f"The pre-flight check found what would fail: {obj.at_risk_reason}")
            return text
        if obj.status == ArticleStatus.PUBLISHING:
            return f"Being published now (due {local_time_text(obj.publish_at)})."
        if obj.status == ArticleStatus.PUBLISHED:
            until = f" until {local_time_text(obj.unpublish_at)}" if obj.unpublish_at else ""
            return f"Live since {local_time_text(obj.published_at)}{until}." + changes.pending_text(obj)
        if obj.status in (ArticleStatus.FAILED, ArticleStatus.MISSED):
            return render_to_string("publisher/admin/fragments/problem_summary.html",
                                    {"status": obj.status, "last_error": obj.last_error})
        if obj.status == ArticleStatus.IN_RELEASE:
            return format_html("Goes live {} with its release <a href=\"{}\">“{}”</a>, together with its other "
                               "articles. Reschedule or unschedule the release to change that.",
                               local_time_text(obj.publish_at), obj.release.get_absolute_url(), obj.release)
        if obj.status == ArticleStatus.EXPIRED:
            return "Taken down (or never put live: its unpublish time passed). Set new times to schedule it again."
        return "Draft: set a publish time and save to schedule it."

    @admin.display(description="Shareable preview link")
    def preview_link_display(self, obj):
        return preview.share_link_fragment(getattr(obj, "admin_request", None), obj)

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

    @admin.display(description="Subscriber e-mail")
    def delivery_display(self, obj):
        return delivery.summary(obj)

    @admin.display(description="Subscriber e-mail")
    def delivery_for_publishers(self, obj):
        return delivery.summary(obj, resend_url=delivery.resend_url(self, obj))

    @admin.display(description="Changes")
    def changes_display(self, obj):
        return changes.history(self, obj)

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
            elif event.action in (ArticleEventAction.FAILED, ArticleEventAction.AT_RISK):
                detail.append(event.note)
            elif event.action == ArticleEventAction.PREFLIGHT_PASSED:
                detail.append(f"ready to go live {local_time_text(event.publish_at)}")
            elif event.action.startswith("change_"):
                detail.append(event.note)
                if event.publish_at and event.action != ArticleEventAction.CHANGE_CANCELLED:
                    detail.append(f"for {local_time_text(event.publish_at)}")
            elif event.action in (ArticleEventAction.CREATED, ArticleEventAction.UNPUBLISHED_NOW):
                pass
            else:
                detail.append(f"for {local_time_text(event.publish_at)}")
            if event.previous_status and event.action != ArticleEventAction.CREATED:
                detail.append(f"was {ArticleStatus(event.previous_status).label.lower()}")
            rows.append({"when": local_time_text(event.created_at, with_seconds=True), "what": action,
                         "who": event.actor.get_username() if event.actor else "system",
                         "details": "; ".join(d for d in detail if d)})
        return render_to_string("publisher/admin/fragments/activity.html", {"rows": rows})

    def save_model(self, request, obj, form, change):
        """Content is saved as typed; times go through the schedule services (never a status
        write): a full save could write back a status the pipeline moved meanwhile."""
        if not change:
            obj.status = ArticleStatus.DRAFT
            obj.save()
            services.article_record_created(article_id=obj.pk, actor=request.user)
            current = {"publish_at": None, "unpublish_at": None}
        else:
            content = [name for name in ("title", "body", "image", "image_alt") if name in form.changed_data]
            if "slug" in form.changed_data and form.cleaned_data["slug"]:
                site_services.article_set_slug(article_id=obj.pk, slug=form.cleaned_data["slug"])
            if content and "change_when" in form.fields:
                # A live article: the change is kept apart and goes live now or at its time.
                changes.save_change(request, obj, form)
            elif content:
                obj.save(update_fields=content + ["updated_at"])
                webhooks.record(event="updated", article_ids=[obj.pk])  # only if it is live
            current = Article.objects.filter(pk=obj.pk).values("publish_at", "unpublish_at").first() or {}
        publish_at = form.cleaned_data["publish_at"] if "publish_at" in form.changed_data else current.get("publish_at")
        if "publish_at" not in form.fields:
            publish_at = current.get("publish_at")
        unpublish_at = (form.cleaned_data["unpublish_at"] if "unpublish_at" in form.changed_data
                        else current.get("unpublish_at"))
        if getattr(form, "records_published", False):
            try:
                services.article_record_published(article_id=obj.pk, published_at=publish_at,
                                                  unpublish_at=unpublish_at, actor=request.user)
            except (ValidationError, services.TransitionError) as exc:
                self.message_user(request, f"Saved “{obj}”, but it was not recorded as published: {error_text(exc)}",
                                  messages.ERROR)
                return
            request.publisher_save_message = (f"“{obj}” is recorded as published since {local_time_text(publish_at)}; "
                                              "nobody was e-mailed.")
            return
        try:
            event = services.article_update_schedule(article_id=obj.pk, publish_at=publish_at,
                                                     unpublish_at=unpublish_at, actor=request.user)
        except (ValidationError, services.TransitionError) as exc:
            self.message_user(request, f"Saved “{obj}”, but its schedule was not changed: {error_text(exc)}",
                              messages.ERROR)
            return
        if event is not None:
            self._report_event(request, obj, event)

    def _report_event(self, request, obj, event):
        """What the save did to the schedule: said once, in place of Django's "was changed
        successfully" (see message_user)."""
        text = None
        if event.action in (ArticleEventAction.SCHEDULED, ArticleEventAction.RESCHEDULED):
            text = f"“{obj}” is scheduled for {local_time_text(event.publish_at)}"
            if event.action == ArticleEventAction.RESCHEDULED and event.previous_publish_at:
                text += f" (was {local_time_text(event.previous_publish_at)})"
            text += "."
            note = publish_passed_note(event.publish_at)
            if note:
                self.message_user(request, note, messages.WARNING)
        elif event.action == ArticleEventAction.UNSCHEDULED:
            text = f"“{obj}” is back to draft and will not be published."
        elif event.action == ArticleEventAction.UNPUBLISH_CHANGED:
            text = (f"“{obj}” will be taken down {local_time_text(event.unpublish_at)}." if event.unpublish_at
                    else f"“{obj}” no longer has a take-down time.")
        if text:
            request.publisher_save_message = text

    def message_user(self, request, message, level=messages.INFO, extra_tags="", fail_silently=False):
        # One success message per save: what the save did to the schedule, when it did something,
        # replaces Django's own "The article ... was changed successfully".
        if level == messages.SUCCESS and getattr(request, "publisher_save_message", None):
            message = request.publisher_save_message
            request.publisher_save_message = None
        super().message_user(request, message, level, extra_tags, fail_silently)

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj.admin_request = request  # the shareable link is absolute: it needs the request's host
        return obj

    def change_view(self, request, object_id, form_url="", extra_context=None):
        article = self.get_object(request, object_id)
        extra_context = dict(extra_context or {})
        if article is not None:
            extra_context["preview_url"] = reverse(f"{self.admin_site.name}:publisher_article_preview",
                                                   args=[article.pk])
            extra_context["object_actions"] = actions.buttons(self, request, article)
            extra_context.update(mail.links(self, request, article))
            extra_context.update({f"can_{name}": actions.applies(self, request, name, article)
                                  for name in actions.BUTTONS})
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
                self.message_user(request, f"Scheduled {actions.count_text(result.done)}: {when}.", messages.SUCCESS)
                note = publish_passed_note(first)
                if note:
                    self.message_user(request, note, messages.WARNING)
            actions.report_skipped(self, request, result, "schedule")
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
        self._run_selected(request, queryset, "unschedule")

    @admin.action(description="Publish selected articles now", permissions=["publish"])
    def publish_now_selected(self, request, queryset):
        if not actions.confirmed(request):
            articles = list(queryset.only("id", "title", "status").order_by("pk")[:BULK_LIMIT + 1])
            if len(articles) <= BULK_LIMIT:
                return actions.confirmation(self, request, "publish_now", articles, bulk=True)
        return self._run_selected(request, queryset, "publish_now")

    @admin.action(description="Unpublish selected articles now (take them down)", permissions=["publish"])
    def unpublish_now_selected(self, request, queryset):
        self._run_selected(request, queryset, "unpublish_now")

    @admin.action(description="Retry selected failed articles", permissions=["publish"])
    def retry_selected(self, request, queryset):
        self._run_selected(request, queryset, "retry")

    def _run_selected(self, request, queryset, name: str) -> None:
        article_ids = self._selected_ids(request, queryset)
        if article_ids is not None:
            actions.run(self, request, name, article_ids)

    def _selected_ids(self, request, queryset) -> list[int] | None:
        article_ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:BULK_LIMIT + 1])
        if len(article_ids) > BULK_LIMIT:
            self.message_user(request, f"Select at most {BULK_LIMIT} articles at a time: nothing was changed. "
                                       "Narrow the list with the filters first.", messages.ERROR)
            return None
        return article_ids

    # --- extra pages ---------------------------------------------------------------------------

    def get_urls(self):
        view = self.admin_site.admin_view
        info = self.opts.app_label, self.opts.model_name
        return [
            path("upcoming/", view(self.upcoming_view), name="%s_%s_upcoming" % info),
            path("calendar/", view(self.calendar_view), name="%s_%s_calendar" % info),
            path("time-zone/", view(self.time_zone_view), name="%s_%s_time_zone" % info),
        ] + actions.urls(self) + preview.urls(self) + delivery.urls(self) + mail.urls(self) + changes.urls(self) + (
            super().get_urls())

    def upcoming_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        zone = timezone.get_current_timezone()
        agenda = selectors.articles_agenda(zone=zone, days=7)
        # Changes to live articles due these days (publisher.revisions), among the articles.
        pending = changes.calendar_changes(zone=zone, first=agenda.days[0].day, last=agenda.days[-1].day)
        context = {
            **self.admin_site.each_context(request),
            "title": "Upcoming: the next 7 days",
            "opts": self.model._meta,
            "agenda": agenda,
            "days": [(day.day, [row for _, row in sorted(
                [(a.publish_at, (a, zoned_time(a.publish_at), status_badge(a.status), lateness_text(a)))
                 for a in day.articles]
                + [(when, (item, zoned_time(when), badge, "")) for when, item, badge in pending.get(day.day, [])],
                key=lambda pair: pair[0])]) for day in agenda.days],
            "overdue": [(a, zoned_time(a.publish_at), status_badge(a.status), lateness_text(a))
                        for a in agenda.overdue],
            "zone_label": zone_label(),
            "today": timezone.localtime(timezone.now(), zone).date(),
            "releases": [(r, zoned_time(r.publish_at), release_badge(r.status))
                         for r in selectors.releases_agenda(zone=zone, days=7)],
        }
        return TemplateResponse(request, "publisher/admin/upcoming.html", context)

    def calendar_view(self, request):
        """A month of articles and releases by day in the editor's zone (?month=2027-01), with warnings."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        zone = timezone.get_current_timezone()
        today = timezone.localtime(timezone.now(), zone).date()
        try:
            year, month = (int(part) for part in request.GET.get("month", "").split("-"))
            first = date(year, month, 1)
            if not 1900 <= year <= 2200:
                raise ValueError(year)
        except ValueError:
            first = today.replace(day=1)
        calendar = selectors.articles_month(zone=zone, first=first)
        last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        pending = changes.calendar_changes(zone=zone, first=first, last=last)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Calendar: {first:%B %Y}",
            "opts": self.model._meta,
            "calendar": calendar,
            "weeks": [[(cell[0], sorted(
                [(a, timezone.localtime(a.publish_at, zone), status_badge(a.status)) for a in cell[1]]
                + [(item, timezone.localtime(when, zone), badge) for when, item, badge in pending.get(cell[0], [])],
                key=lambda row: row[1])) if cell else None for cell in week]
                      for week in calendar.weeks],
            "previous": (first - timedelta(days=1)).strftime("%Y-%m"),
            "next": (first + timedelta(days=32)).strftime("%Y-%m"),
            "zone_label": zone_label(),
            "today": today,
        }
        # Releases inside their day (their articles with them), warnings with links (publisher.conflicts).
        context["weeks"] = month_calendar.with_releases(context["weeks"], calendar, zone)
        context["conflicts"] = [month_calendar.conflict_html(c) for c in calendar.conflicts]
        return TemplateResponse(request, "publisher/admin/calendar.html", context)

    def history_view(self, request, object_id, extra_context=None):
        return super().history_view(request, object_id, {**(extra_context or {}), "zone_label": zone_label()})

    def time_zone_view(self, request):
        profile = EditorProfile.objects.filter(user=request.user).first() or EditorProfile(user=request.user)
        form = TimeZoneForm(request.POST or None, instance=profile)
        if request.method == "POST" and form.is_valid():
            form.save()
            name = form.cleaned_data["time_zone"] or "the site's time zone"
            self.message_user(request, f"Your time zone is now {name}.", messages.SUCCESS)
            following = request.GET.get("next")
            if not following or not url_has_allowed_host_and_scheme(following, allowed_hosts={request.get_host()},
                                                                     require_https=request.is_secure()):
                # Only back to a page of this site: a link elsewhere must not become a redirect.
                following = reverse(f"{self.admin_site.name}:publisher_article_changelist")
            return HttpResponseRedirect(following)
        context = {**self.admin_site.each_context(request), "title": "Your time zone", "form": form,
                   "opts": self.model._meta, "zone_label": zone_label()}
        return TemplateResponse(request, "publisher/admin/time_zone.html", context)


