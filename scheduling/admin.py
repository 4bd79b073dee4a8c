import json

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from publisher.admin import site

from . import charts, reports
from .models import DailyReport, Heartbeat, JobRun, ReportSubscription, SchedulerLock


@admin.register(Heartbeat, site=site)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ("name", "last_seen_at", "detail")
    readonly_fields = ("name", "last_seen_at", "detail")


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


class PeriodicTaskAdmin(SuperusersOnly, beat_admin.PeriodicTaskAdmin):
    pass


class IntervalScheduleAdmin(SuperusersOnly, beat_admin.IntervalScheduleAdmin):
    pass


class CrontabScheduleAdmin(SuperusersOnly, beat_admin.CrontabScheduleAdmin):
    pass


class SolarScheduleAdmin(SuperusersOnly, beat_admin.SolarScheduleAdmin):
    pass


class ClockedScheduleAdmin(SuperusersOnly, beat_admin.ClockedScheduleAdmin):
    pass


for _model, _model_admin in ((PeriodicTask, PeriodicTaskAdmin), (IntervalSchedule, IntervalScheduleAdmin),
                             (CrontabSchedule, CrontabScheduleAdmin), (SolarSchedule, SolarScheduleAdmin),
                             (ClockedSchedule, ClockedScheduleAdmin)):
    site.register(_model, _model_admin)


# --- Daily report -------------------------------------------------------------------------------

@admin.register(DailyReport, site=site)
class DailyReportAdmin(admin.ModelAdmin):
    """Read-only: reports are built by the daily job or `manage.py daily_report`."""

    list_display = ("date", "articles_published", "articles_failed", "articles_expired", "lateness_p95_display",
                    "notifications_sent", "notifications_failed", "notifications_expired", "email_status")
    list_filter = ("email_status",)
    date_hierarchy = "date"
    fieldsets = (
        (None, {"fields": ("date", "time_zone", "window_start", "window_end", "built_at")}),
        ("Publications per hour", {"fields": ("chart",)}),
        ("Articles", {"fields": ("articles_published", "articles_failed", "articles_expired", "articles_missed",
                                 "lateness_display")}),
        ("Notifications", {"fields": ("notifications_sent", "notifications_failed", "notifications_expired")}),
        ("Failures", {"fields": ("worst_failures_display", "notification_failures_display")}),
        ("E-mail", {"fields": ("email_status", "emailed_at", "email_recipients", "email_error")}),
    )
    readonly_fields = ("date", "time_zone", "window_start", "window_end", "built_at", "chart", "articles_published",
                       "articles_failed", "articles_expired", "articles_missed", "lateness_display",
                       "notifications_sent", "notifications_failed", "notifications_expired",
                       "worst_failures_display", "notification_failures_display", "email_status", "emailed_at",
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
class ReportSubscriptionAdmin(admin.ModelAdmin):
    list_display = ("user", "email", "daily_report", "created_at")
    list_filter = ("daily_report",)
    autocomplete_fields = ("user",)
    search_fields = ("user__username", "user__email")

    @admin.display(description="E-mail", ordering="user__email")
    def email(self, obj):
        return obj.user.email or "(no address: nothing is sent)"


@admin.register(JobRun, site=site)
class JobRunAdmin(admin.ModelAdmin):
    list_display = ("job", "started_at", "finished_at", "summary")
    list_filter = ("job",)
    readonly_fields = ("job", "started_at", "finished_at", "detail")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="What it did")
    def summary(self, obj):
        return json.dumps(obj.detail, sort_keys=True)[:200]


@admin.register(SchedulerLock, site=site)
class SchedulerLockAdmin(SuperusersOnly, admin.ModelAdmin):
    list_display = ("name", "owner", "expires_at")
    readonly_fields = ("name", "owner", "expires_at")

    def has_add_permission(self, request, *args):
        return False
