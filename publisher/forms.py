"""Forms for the editors' admin: every time is entered in the editor's own zone (activated by
publisher.middleware), says which zone it is in, and a local time that does not exist (DST gap)
or exists twice (DST fold) is refused with a message that says what happened and what to pick."""

import zoneinfo
from datetime import datetime, timedelta, tzinfo

from django import forms
from django.conf import settings
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import schedule_rules
from .models import Article, ArticleStatus, EditorProfile
from .zones import (current_time_zones, exists_locally, local_time_resolve, utc_offset,
                    zone_alias_target, zone_label)
from .site.services import validate_slug

FOLD_CHOICES = [("", "—"), ("0", "first"), ("1", "second")]


class ZonedDateTimeWidget(forms.MultiWidget):
    """The admin's date and time inputs (calendar and clock pickers included), the zone they are
    in, and a first/second choice that appears only for a time the clocks show twice."""

    template_name = "publisher/admin/widgets/zoned_datetime.html"

    def __init__(self, attrs=None):
        super().__init__([admin_widgets.AdminDateWidget(), admin_widgets.AdminTimeWidget(),
                          forms.Select(choices=FOLD_CHOICES)], attrs)
        self.fold_needed = False

    def offer_fold(self, naive: datetime, zone: tzinfo) -> None:
        """Show the first/second choice, labelled with the two offsets of this very time."""
        self.fold_needed = True
        first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
        self.widgets[2].choices = [
            ("", "— which one? —"),
            ("0", f"the first {naive:%H:%M} ({first.tzname()}, {utc_offset(first.utcoffset())})"),
            ("1", f"the second {naive:%H:%M} ({second.tzname()}, {utc_offset(second.utcoffset())})"),
        ]

    def decompress(self, value):
        if not value:
            return [None, None, ""]
        local = timezone.localtime(value)
        naive = local.replace(tzinfo=None, microsecond=0)
        other = naive.replace(fold=1 - local.fold).replace(tzinfo=local.tzinfo)
        ambiguous = other.utcoffset() != local.utcoffset() and exists_locally(naive, other, local.tzinfo)
        if ambiguous:
            self.offer_fold(naive, local.tzinfo)
        return [naive.date(), naive.time().replace(fold=0), str(local.fold) if ambiguous else ""]

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)  # decompresses (and may offer the choice)
        # The offset that applies to the time shown (CEST in July, CET in January), else today's.
        context["widget"]["zone_label"] = zone_label(at=value) if isinstance(value, datetime) else zone_label()
        context["widget"]["fold_needed"] = self.fold_needed
        return context


class ZonedDateTimeField(forms.MultiValueField):
    """A date and a time typed in the editor's zone, read as that zone's wall clock."""

    widget = ZonedDateTimeWidget

    def __init__(self, **kwargs):
        # Optional parts: compress() says which one is missing, in words.
        fields = (forms.DateField(required=False), forms.TimeField(required=False),
                  forms.ChoiceField(choices=FOLD_CHOICES, required=False))
        super().__init__(fields=fields, require_all_fields=False, **kwargs)

    def compress(self, data_list):
        if not data_list or (data_list[0] in self.empty_values and data_list[1] in self.empty_values):
            return None
        day, clock = data_list[0], data_list[1]
        if day in self.empty_values:
            raise ValidationError("Enter a date too.", code="invalid_date")
        if clock in self.empty_values:
            raise ValidationError("Enter a time too (for example 09:30).", code="invalid_time")
        fold = int(data_list[2]) if len(data_list) > 2 and data_list[2] in ("0", "1") else None
        naive = datetime.combine(day, clock.replace(tzinfo=None))
        zone = timezone.get_current_timezone()
        try:
            return local_time_resolve(naive=naive, zone=zone, fold=fold)
        except ValidationError as exc:
            if exc.code == "ambiguous":
                self.widget.offer_fold(naive, zone)
            raise

    def has_changed(self, initial, data):
        if self.disabled:
            return False
        try:
            value = self.clean(data)
        except ValidationError:
            return True
        if initial is None or value is None:
            return initial != value
        # Compared as instants, to the second the form can express.
        return abs((value - initial).total_seconds()) >= 1


class LimitedImageField(forms.ImageField):
    """Django's ImageField, with the pixel limit checked first, from the file's header (Django's
    own check decodes nothing either, but Pillow past twice its limit reports a bomb as "not an
    image", which would tell the editor the wrong thing)."""

    def to_python(self, data):
        if data is not None and hasattr(data, "read"):
            errors = schedule_rules.image_errors(image=data)
            if errors:
                raise errors[0]
        return super().to_python(data)


# --- The article form ---------------------------------------------------------------------------

class ArticleAdminForm(forms.ModelForm):
    """Title, body, image and the two times. `status` is not a field: it moves only through the
    services (schedule, unschedule, publish now, retry) and the pipeline."""

    publish_at = ZonedDateTimeField(
        required=False, label="Publish at",
        help_text="When it goes live. Set it to schedule the article; clear it to take it back to draft.")
    unpublish_at = ZonedDateTimeField(
        required=False, label="Unpublish at", help_text="Optional: when it is taken down again.")
    when_passed = forms.ChoiceField(
        required=False, label="If the publish time has passed", widget=forms.RadioSelect,
        choices=[(schedule_rules.PAST_PUBLISH_NOW, "Publish it now: subscribers are e-mailed"),
                 (schedule_rules.PAST_PUBLISH_RECORD, "Record it as published at that time: nobody is e-mailed "
                                                      "(importing older articles)")],
        help_text="Asked only when the publish time you enter is already in the past.")
    # Set by the admin per request: whether this editor may make an article live without the scan.
    can_record_published = False

    class Meta:
        model = Article
        fields = ("title", "slug", "body", "image", "image_alt", "publish_at", "unpublish_at")
        field_classes = {"image": LimitedImageField}

    def clean_slug(self):
        slug = self.cleaned_data.get("slug")
        if not slug:
            if self.instance.pk and self.instance.slug:
                raise ValidationError("The article has an address already: change it, or keep it.")
            return None  # made from the title when the article is scheduled
        return validate_slug(slug=slug, article_id=self.instance.pk)

    def clean(self):
        data = super().clean()
        image = data.get("image", self.instance.image if self.instance.pk else None)
        if image and not (data.get("image_alt") or "").strip():
            self.add_error("image_alt", "Describe the image for readers who cannot see it (alt text).")
        status = self.instance.status if self.instance.pk else ArticleStatus.DRAFT
        if "publish_at" in self.fields:
            publish_at = data.get("publish_at")
        else:
            publish_at = self.instance.publish_at
        unpublish_at = data.get("unpublish_at")
        title, body = data.get("title", self.instance.title), data.get("body", self.instance.body)
        if self.has_error("publish_at") or self.has_error("unpublish_at"):
            self._add_rule_errors(schedule_rules.content_errors(title=title, body=body, scheduling=False))
        elif status == ArticleStatus.PUBLISHED or publish_at is None:
            # Live (only its take-down time can change) or a draft: no schedule to check.
            self._add_rule_errors(schedule_rules.content_errors(title=title, body=body, scheduling=False)
                                  + schedule_rules.window_errors(publish_at=publish_at, unpublish_at=unpublish_at))
        else:
            errors = schedule_rules.schedule_errors(title=title, body=body, publish_at=publish_at,
                                                    unpublish_at=unpublish_at)
            entered = publish_at if "publish_at" in self.changed_data else None
            if not errors:
                errors = schedule_rules.past_publish_errors(publish_at=entered, choice=data.get("when_passed") or "",
                                                            can_record=self.can_record_published)
            if not errors:
                recording = entered is not None and self.records_published
                errors = schedule_rules.entered_time_errors(
                    publish_at=None if recording else entered,
                    unpublish_at=unpublish_at if "unpublish_at" in self.changed_data else None)
            self._add_rule_errors(errors)
        return data

    @property
    def records_published(self) -> bool:
        """The editor chose to record a past publish time as when it went live (no mail)."""
        publish_at = self.cleaned_data.get("publish_at")
        return (self.cleaned_data.get("when_passed") == schedule_rules.PAST_PUBLISH_RECORD
                and "publish_at" in self.changed_data and publish_at is not None and publish_at <= timezone.now())

    def _add_rule_errors(self, errors: list[schedule_rules.ScheduleError]) -> None:
        for error in errors:
            self.add_error(error.field if error.field in self.fields else None, error)


class BulkScheduleForm(forms.Form):
    """The intermediate page of the "Schedule…" bulk action."""

    publish_at = ZonedDateTimeField(label="Publish at", help_text="When the first of them goes live.")
    spacing_minutes = forms.IntegerField(
        label="Then one every", min_value=0, max_value=7 * 24 * 60, initial=0, required=False,
        help_text="minutes (0: all at the same time). Spread a batch out instead of publishing it at once.")
    unpublish_at = ZonedDateTimeField(label="Unpublish at", required=False,
                                      help_text="Optional: when all of them are taken down.")

    def clean(self):
        data = super().clean()
        publish_at, unpublish_at = data.get("publish_at"), data.get("unpublish_at")
        if publish_at:
            for error in schedule_rules.bulk_time_errors(publish_at=publish_at, unpublish_at=unpublish_at):
                self.add_error(error.field, error)
        return data

    @property
    def spacing(self) -> timedelta | None:
        minutes = self.cleaned_data.get("spacing_minutes") or 0
        return timedelta(minutes=minutes) if minutes else None


def time_zone_choices() -> list[tuple[str, str]]:
    """Every current zone (no deprecated alias), labelled for searching: 'Europe/Paris — Paris
    (UTC+01:00)'."""
    now = timezone.now()
    choices = []
    for name in sorted(current_time_zones()):
        city = name.rsplit("/", 1)[-1].replace("_", " ")
        offset = utc_offset(timezone.localtime(now, zoneinfo.ZoneInfo(name)).utcoffset())
        choices.append((name, f"{city} ({offset})" if city != name else f"{name} ({offset})"))
    return choices


class SearchableZoneWidget(forms.TextInput):
    """A text box that suggests zones as the editor types (any part of the name: "york",
    "paris", "UTC+09"), from the browser's own list (a datalist), without JavaScript."""

    template_name = "publisher/admin/widgets/zone_search.html"

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, {**(attrs or {}), "list": f"{attrs.get('id', name)}-zones",
                                                    "autocomplete": "off", "spellcheck": "false",
                                                    "placeholder": "Type a city or region, e.g. Paris"})
        context["widget"]["zones"] = time_zone_choices()
        context["widget"]["list_id"] = f"{attrs.get('id', name)}-zones"
        return context


class TimeZoneField(forms.CharField):
    """A current IANA zone name, or blank for the site's zone. A deprecated alias is refused
    with the name to use instead."""

    widget = SearchableZoneWidget

    def clean(self, value):
        value = (super().clean(value) or "").strip()
        if not value:
            return ""
        if value in current_time_zones():
            return value
        target = zone_alias_target(value)
        if target:
            raise ValidationError(f"“{value}” is an old name for {target}: choose {target}.", code="alias")
        raise ValidationError(f"“{value}” is not a known time zone: type a city or region and pick one of "
                              "the suggestions (for example Europe/Paris).", code="unknown")


class TimeZoneForm(forms.ModelForm):
    time_zone = TimeZoneField(required=False, label="Your time zone", max_length=64,
                              help_text=f"Every time in the admin is shown and entered in this zone. Leave it "
                                        f"empty for the site's time zone ({settings.TIME_ZONE}).")

    class Meta:
        model = EditorProfile
        fields = ("time_zone",)
