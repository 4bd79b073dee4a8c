"""Subscribers, notifications, and users (with each editor's time zone), on the publisher site."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group

from ..forms import TimeZoneForm
from ..models import EditorProfile, Notification, Subscriber
from .display import ZonedTimesAdmin, zoned_field, zoned_time
from .site import site


@admin.register(Subscriber, site=site)
class SubscriberAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("email", "is_active", "created_column")
    readonly_fields = ("created_column",)
    list_filter = ("is_active",)
    search_fields = ("email",)

    @admin.display(description="Subscribed", ordering="created_at")
    def created_column(self, obj):
        return zoned_time(obj.created_at, short=True)


@admin.register(Notification, site=site)
class NotificationAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("article", "subscriber", "status", "expires_column", "sent_column")
    list_filter = ("status",)
    list_select_related = ("article", "subscriber")
    raw_id_fields = ("article", "subscriber")
    fields = ("article", "subscriber", "status", "expires_at", "sent_column", "last_error", "created_column",
              "updated_column")
    readonly_fields = ("status", "sent_column", "last_error", "created_column", "updated_column")
    created_column = zoned_field("created_at", "Created")
    updated_column = zoned_field("updated_at", "Last changed")

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
class UserAdmin(ZonedTimesAdmin, BaseUserAdmin):
    """Django's user admin, plus each editor's time zone; last login and joining dates are
    shown and entered in the editor's zone, which they name."""

    inlines = [EditorProfileInline]
    list_display = BaseUserAdmin.list_display + ("last_login_column",)
    last_login_column = zoned_field("last_login", "Last login", short=True)


class ZonedGroupAdmin(ZonedTimesAdmin, GroupAdmin):
    pass


site.register(Group, ZonedGroupAdmin)
