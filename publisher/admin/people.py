"""Subscribers, notifications, and users (with each editor's time zone), on the publisher site."""

import csv

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpResponse

from ..forms import TimeZoneForm
from ..models import PENDING_CONFIRMATION, RECEIVING, SWITCHED_OFF, UNSUBSCRIBED, EditorProfile, Notification, Subscriber
from .display import ZonedTimesAdmin, zoned_field
from .site import site


class SubscriberStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"
    LOOKUPS = {
        "confirmed": ("Confirmed", RECEIVING),
        "pending": ("Pending confirmation", PENDING_CONFIRMATION),
        "unsubscribed": ("Unsubscribed", UNSUBSCRIBED),
        "off": ("Switched off", SWITCHED_OFF),
    }

    def lookups(self, request, model_admin):
        return [(key, label) for key, (label, _) in self.LOOKUPS.items()]

    def queryset(self, request, queryset):
        found = self.LOOKUPS.get(self.value())
        return queryset.filter(found[1]) if found else queryset


@admin.register(Subscriber, site=site)
class SubscriberAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    """Editors (view permission, from migration 0003) see the list and the counts; adding,
    changing, deleting and exporting addresses need their own permissions."""

    list_display = ("email", "state_column", "source", "created_column", "confirmed_column")
    list_filter = (SubscriberStateFilter, "source")
    search_fields = ("email",)
    fields = ("email", "is_active", "source", "created_column", "confirmed_column", "unsubscribed_column")
    readonly_fields = ("source", "created_column", "confirmed_column", "unsubscribed_column")
    actions = ["export_csv"]

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}),
                                                 "subscriber_counts": Subscriber.objects.counts()})

    def has_export_permission(self, request):
        return request.user.has_perm("publisher.export_subscriber")

    @admin.action(description="Export selected addresses (CSV)", permissions=["export"])
    def export_csv(self, request, queryset):
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="subscribers.csv"'
        writer = csv.writer(response)
        writer.writerow(["email", "state", "source", "created_at", "confirmed_at", "unsubscribed_at"])
        for row in queryset.order_by("pk").iterator(chunk_size=2000):
            writer.writerow([_cell(row.email), row.state, row.source] + [
                value.isoformat() if value else "" for value in (row.created_at, row.confirmed_at, row.unsubscribed_at)])
        return response

    @admin.display(description="State")
    def state_column(self, obj):
        return obj.state

    created_column = zoned_field("created_at", "Subscribed", short=True)
    confirmed_column = zoned_field("confirmed_at", "Confirmed", short=True)
    unsubscribed_column = zoned_field("unsubscribed_at", "Unsubscribed", short=True)


def _cell(text: str) -> str:
    """A spreadsheet must not take an address for a formula (a local part may begin with = + - @)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


@admin.register(Notification, site=site)
class NotificationAdmin(ZonedTimesAdmin, admin.ModelAdmin):
    list_display = ("article", "mail_column", "subscriber", "status", "expires_column", "sent_column")
    list_filter = ("status",)
    list_select_related = ("article", "subscriber")
    raw_id_fields = ("article", "subscriber")
    fields = ("article", "mail_column", "subscriber", "status", "expires_at", "sent_column", "last_error",
              "created_column", "updated_column")
    readonly_fields = ("mail_column", "status", "sent_column", "last_error", "created_column", "updated_column")
    created_column = zoned_field("created_at", "Created")
    updated_column = zoned_field("updated_at", "Last changed")

    @admin.display(description="Mail")
    def mail_column(self, obj):
        # The article's own mail, or the update mail of a change (docs/revisions.md).
        return "Article" if obj.revision_id is None else f"Update (change #{obj.revision_id})"

    expires_column = zoned_field("expires_at", "Expires", short=True)
    sent_column = zoned_field("sent_at", "Sent", short=True)


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
