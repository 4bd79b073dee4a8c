"""Webhook endpoints and their delivery log. The log is read-only; *Redeliver* goes through
the service, which never sends a delivered one again."""

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from ..admin.site import site
from . import services
from .models import Delivery, Endpoint, WebhookEvent


class EndpointForm(forms.ModelForm):
    url = forms.URLField(label="URL", max_length=2000, assume_scheme="https",
                         help_text="http(s) URL that receives a POST per event.")
    events = forms.MultipleChoiceField(choices=WebhookEvent.choices, widget=forms.CheckboxSelectMultiple,
                                       help_text="Events this endpoint receives.")

    class Meta:
        model = Endpoint
        fields = ("url", "description", "events", "enabled", "secret")

    def clean_url(self):
        url = self.cleaned_data["url"]
        if not url.lower().startswith(("http://", "https://")):
            raise forms.ValidationError("Webhook URLs must start with http:// or https://.")
        return url


@admin.register(Endpoint, site=site)
class EndpointAdmin(admin.ModelAdmin):
    form = EndpointForm
    list_display = ("__str__", "url", "events_display", "enabled", "deliveries_link")
    list_filter = ("enabled",)

    @admin.display(description="Events")
    def events_display(self, obj):
        return ", ".join(obj.events) or "—"

    @admin.display(description="Delivery log")
    def deliveries_link(self, obj):
        url = reverse("admin:webhooks_delivery_changelist") + f"?endpoint__id__exact={obj.pk}"
        return format_html('<a href="{}">Deliveries</a>', url)


@admin.register(Delivery, site=site)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "endpoint", "event", "article", "status", "last_status_code", "attempts",
                     "next_attempt_at", "last_error_short")
    list_filter = ("status", "event", "endpoint")
    search_fields = ("=id", "article__title")
    list_select_related = ("endpoint", "article")
    actions = ("redeliver",)
    readonly_fields = [field.name for field in Delivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Last error")
    def last_error_short(self, obj):
        return (obj.last_error[:120] + "…") if len(obj.last_error) > 120 else (obj.last_error or "—")

    @admin.action(description="Redeliver selected deliveries")
    def redeliver(self, request, queryset):
        result = services.deliveries_redeliver(delivery_ids=list(queryset.values_list("pk", flat=True)))
        if result.redelivered:
            self.message_user(request, f"{len(result.redelivered)} deliveries will be sent again now (same "
                                       "delivery ids).", messages.SUCCESS)
        for delivery, reason in result.skipped:
            self.message_user(request, f"Not redelivered {delivery.pk}: {reason}.", messages.WARNING)
