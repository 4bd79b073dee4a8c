"""Basic admin. Saving an article with a publish time schedules it through the same service the
rest of the product uses; the status itself is never edited directly."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from . import services
from .models import Article, ArticleStatus, Notification, Subscriber


class ArticleAdminForm(forms.ModelForm):
    class Meta:
        model = Article
        fields = ("title", "body", "image", "publish_at", "unpublish_at")

    def clean(self):
        data = super().clean()
        if data.get("publish_at") and self.instance.status != ArticleStatus.PUBLISHED:
            # The same rules the schedule service applies, shown on the fields they concern.
            try:
                services.validate_schedule(title=data.get("title", ""), body=data.get("body", ""),
                                           publish_at=data.get("publish_at"), unpublish_at=data.get("unpublish_at"))
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    if field in self.fields and field not in self.errors:
                        self.add_error(field, errors)
        return data


@admin.register(Article)
class ArticleAdmin(admin.ModelAdmin):
    form = ArticleAdminForm
    list_display = ("title", "status", "publish_at", "published_at", "unpublish_at", "last_error")
    list_filter = ("status",)
    search_fields = ("title",)
    date_hierarchy = "publish_at"
    readonly_fields = ("status", "published_at", "last_error", "attempts", "excerpt", "thumbnail", "updated_at")
    fields = ("title", "body", "image", "publish_at", "unpublish_at") + readonly_fields
    actions = ["publish_now", "unschedule", "retry"]

    def save_model(self, request, obj, form, change):
        # Save only what the editor edited: the pipeline may have moved the row meanwhile, and a
        # full save would write back a stale status. Times move only through the services.
        if not change:
            obj.status = ArticleStatus.DRAFT
            obj.save()
        else:
            content = [f for f in ("title", "body", "image") if f in form.changed_data]
            if content:
                obj.save(update_fields=content + ["updated_at"])
        timing_changed = not change or {"publish_at", "unpublish_at"} & set(form.changed_data)
        if not timing_changed:
            return
        try:
            if obj.status == ArticleStatus.PUBLISHED:
                services.article_set_unpublish_at(article_id=obj.pk, unpublish_at=obj.unpublish_at)
            elif obj.publish_at:
                services.article_schedule(article_id=obj.pk, publish_at=obj.publish_at, unpublish_at=obj.unpublish_at)
            elif change and obj.status in services.UNSCHEDULABLE:
                services.article_unschedule(article_id=obj.pk, clear_times=True)
        except (ValidationError, services.TransitionError) as exc:
            self.message_user(request, f"Saved, but not scheduled: {'; '.join(_messages(exc))}", messages.WARNING)

    def _each(self, request, queryset, action, verb):
        done, skipped = 0, []
        for article_id in queryset.values_list("pk", flat=True):
            try:
                action(article_id=article_id)
                done += 1
            except (ValidationError, services.TransitionError) as exc:
                skipped.append(f"#{article_id}: {'; '.join(_messages(exc))}")
        if done:
            self.message_user(request, f"{verb} {done} article(s).", messages.SUCCESS)
        if skipped:
            self.message_user(request, "Skipped " + " | ".join(skipped), messages.WARNING)

    @admin.action(description="Publish now", permissions=["publish"])
    def publish_now(self, request, queryset):
        self._each(request, queryset, services.article_publish_now, "Publishing")

    @admin.action(description="Unschedule (back to draft)")
    def unschedule(self, request, queryset):
        self._each(request, queryset, services.article_unschedule, "Unscheduled")

    @admin.action(description="Retry failed", permissions=["publish"])
    def retry(self, request, queryset):
        self._each(request, queryset, services.article_retry, "Rescheduled")

    def has_publish_permission(self, request):
        return request.user.has_perm("publisher.publish_article")


def _messages(exc) -> list[str]:
    if isinstance(exc, ValidationError):
        return exc.messages
    return [str(exc)]


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ("email", "is_active", "created_at")
    list_filter = ("is_active",)
    search_fields = ("email",)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("article", "subscriber", "status", "expires_at", "sent_at")
    list_filter = ("status",)
    list_select_related = ("article", "subscriber")
    raw_id_fields = ("article", "subscriber")
    readonly_fields = ("status", "sent_at", "last_error")
