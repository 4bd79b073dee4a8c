import json

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from publisher.admin import site
from publisher.admin.display import ZonedTimesAdmin, zoned_field

from . import charts, reports
from .models import DailyReport, Heartbeat, JobRun, ReportSubscription, SchedulerLock


@admin.register(Heartbeat, site=site)
class HeartbeatAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("name", "last_seen", "detail")
    fields = ("name", "last_seen", "detail")
    readonly_fields = ("name", "last_seen", "detail")
    last_seen = zoned_field("last_seen_at", "Last seen")


# --- django-celery-beat: superusers only ------------------------------------------------------
# A periodic task can run any registered task with any arguments, and its schedules drive
# every unattended job: only superusers see or change them (staff without the flag do not
# even see the section, whatever model permissions they were given).

class SuperusersOnly:
    def _superuser(self, request) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_add_permission(self, request, *args):
        return self._superuser(request)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request)


class PeriodicTaskAdmin(SuperusersOnly, ZonedTimesAdmin, beat_admin.PeriodicTaskAdmin):
    list_display = tuple({"start_time": "start_time_column", "last_run_at": "last_run_column"}.get(name, name)
                         for name in beat_admin.PeriodicTaskAdmin.list_display)
    start_time_column = zoned_field("start_time", "Start time", short=True)
    last_run_column = zoned_field("last_run_at", "Last run", short=True)


class IntervalScheduleAdmin(SuperusersOnly, ZonedTimesAdmin, beat_admin.IntervalScheduleAdmin):
    pass


class CrontabScheduleAdmin(SuperusersOnly, ZonedTimesAdmin, beat_admin.CrontabScheduleAdmin):
    pass


class SolarScheduleAdmin(SuperusersOnly, ZonedTimesAdmin, beat_admin.SolarScheduleAdmin):
    pass


class ClockedScheduleAdmin(SuperusersOnly, ZonedTimesAdmin, beat_admin.ClockedScheduleAdmin):
    list_display = ("clocked_column",)
    clocked_column = zoned_field("clocked_time", "Clocked time")


for _model, _model_admin in ((PeriodicTask, PeriodicTaskAdmin), (IntervalSchedule, IntervalScheduleAdmin),
                             (CrontabSchedule, CrontabScheduleAdmin), (SolarSchedule, SolarScheduleAdmin),
                             (ClockedSchedule, ClockedScheduleAdmin)):
    site.register(_model, _model_admin)


# --- Daily report -------------------------------------------------------------------------------

@admin.register(DailyReport, site=site)
class DailyReportAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    """Read-only: reports are built by the daily job or `manage.py daily_report`."""

    list_display = ("date", "articles_published", "articles_failed", "articles_expired", "lateness_p95_display",
                    "notifications_sent", "notifications_failed", "notifications_expired", "email_status")
    list_filter = ("email_status",)
    date_hierarchy = "date"
    fieldsets = (
        (None, {"fields": ("date", "time_zone", "window_start_display", "window_end_display", "built_display")}),
        ("Publications per hour", {"fields": ("chart",)}),
        ("Articles", {"fields": ("articles_published", "articles_failed", "articles_expired", "articles_missed",
                                 "lateness_display")}),
        ("Notifications", {"fields": ("notifications_sent", "notifications_failed", "notifications_interrupted",
                                      "notifications_expired")}),
        ("Failures", {"fields": ("worst_failures_display", "notification_failures_display")}),
        ("E-mail", {"fields": ("email_status", "emailed_display", "email_recipients", "email_error")}),
    )
    window_start_display = zoned_field("window_start", "Window start")
    window_end_display = zoned_field("window_end", "Window end")
    built_display = zoned_field("built_at", "Built at")
    emailed_display = zoned_field("emailed_at", "E-mailed at")
    readonly_fields = ("date", "time_zone", "window_start_display", "window_end_display", "built_display", "chart",
                       "articles_published",
                       "articles_failed", "articles_expired", "articles_missed", "lateness_display",
                       "notifications_sent", "notifications_failed", "notifications_interrupted",
                       "notifications_expired", "worst_failures_display", "notification_failures_display", "email_status", "emailed_display",
                       "email_recipients", "email_error")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Chart")
    def chart(self, obj):
        # charts.hourly_svg escapes every label it writes; the rest is numbers.
        return mark_safe(charts.hourly_svg(obj.publications_per_hour,
                                           title=f"Publications per hour on {obj.date:%Y-%m-%d} ({obj.time_zone})"))

    @admin.display(description="Lateness p95", ordering="lateness_p95")
    def lateness_p95_display(self, obj):
        return reports.report_context(obj)["lateness"]["p95"]

    @admin.display(description="Lateness (published − scheduled)")
    def lateness_display(self, obj):
        late = reports.report_context(obj)["lateness"]
        return f"p50 {late['p50']}, p95 {late['p95']}, max {late['max']}"

    @admin.display(description="Worst failures")
    def worst_failures_display(self, obj):
        if not obj.worst_failures:
            return "None"
        return render_to_string("scheduling/admin/worst_failures.html", {"failures": obj.worst_failures})

    @admin.display(description="Why notifications failed")
    def notification_failures_display(self, obj):
        if not obj.notification_failures:
            return "None"
        return render_to_string("scheduling/admin/notification_failures.html",
                                {"failures": obj.notification_failures})


@admin.register(ReportSubscription, site=site)
class ReportSubscriptionAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("user", "email", "daily_report", "created_column")
    created_column = zoned_field("created_at", "Created", short=True)
    list_filter = ("daily_report",)
    autocomplete_fields = ("user",)
    search_fields = ("user__username", "user__email")

    @admin.display(description="E-mail", ordering="user__email")
    def email(self, obj):
        return obj.user.email or "(no address: nothing is sent)"


@admin.register(JobRun, site=site)
class JobRunAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("job", "started_column", "finished_column", "summary")
    list_filter = ("job",)
    fields = ("job", "started_column", "finished_column", "detail")
    readonly_fields = ("job", "started_column", "finished_column", "detail")
    started_column = zoned_field("started_at", "Started", short=True)
    finished_column = zoned_field("finished_at", "Finished", short=True)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="What it did")
    def summary(self, obj):
        return json.dumps(obj.detail, sort_keys=True)[:200]


@admin.register(SchedulerLock, site=site)
class SchedulerLockAdmin(SuperusersOnly, ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("name", "owner", "expires_column")
    fields = ("name", "owner", "expires_column")
    readonly_fields = ("name", "owner", "expires_column")
    expires_column = zoned_field("expires_at", "Expires")

    def has_add_permission(self, request, *args):
        return False
