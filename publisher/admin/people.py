"""Subscribers, notifications, and users (with each editor's time zone), on the publisher site."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group

from ..forms import TimeZoneForm
from ..models import EditorProfile, Notification, Subscriber
from .display import zoned_time
from .site import site


@admin.register(Subscriber, site=site)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ("email", "is_active", "created_column")
    list_filter = ("is_active",)
    search_fields = ("email",)

    @admin.display(description="Subscribed", ordering="created_at")
    def created_column(self, obj):
        return zoned_time(obj.created_at, short=True)


@admin.register(Notification, site=site)
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


@admin.register(User, site=site)
class UserAdmin(BaseUserAdmin):
    """Django's user admin, plus each editor's time zone."""

    inlines = [EditorProfileInline]


site.register(Group, GroupAdmin)
