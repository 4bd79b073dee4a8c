"""Forms for the editors' admin: every time is entered in the editor's own zone (activated by
publisher.middleware), says which zone it is in, and a local time that does not exist (DST gap)
or exists twice (DST fold) is refused with a message that says what happened and what to pick."""

import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from django import forms
from django.conf import settings
from django.contrib.admin import widgets as admin_widgets
from django.core.exceptions import ValidationError
from django.utils import timezone

from . import services
from .models import Article, ArticleStatus, EditorProfile, available_time_zones
from .site.services import validate_slug

FOLD_CHOICES = [("", "—"), ("0", "first"), ("1", "second")]


# --- Showing times ------------------------------------------------------------------------------

def utc_offset(value: timedelta | None) -> str:
    minutes = int((value or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_label(zone: tzinfo | None = None, *, at: datetime | None = None) -> str:
    """'Europe/Paris (CET, UTC+01:00)': the zone's name, and its abbreviation and offset now."""
    zone = zone or timezone.get_current_timezone()
    moment = timezone.localtime(at or timezone.now(), zone)
    name = getattr(zone, "key", None) or str(zone)
    abbreviation = moment.tzname()
    offset = utc_offset(moment.utcoffset())
    if abbreviation and abbreviation != name and not abbreviation.startswith(("+", "-")):
        return f"{name} ({abbreviation}, {offset})"
    return f"{name} ({offset})"


def local_time_text(value: datetime | None, *, zone: tzinfo | None = None, with_seconds: bool | None = None,
                    short: bool = False) -> str:
    """'Mon 23 Nov 2026, 14:05 CET' in the editor's zone (seconds only when not zero; `short`
    leaves out the year when it is this year's)."""
    if value is None:
        return "—"
    zone = zone or timezone.get_current_timezone()
    local = timezone.localtime(value, zone)
    clock = "%H:%M:%S" if (with_seconds or (with_seconds is None and local.second)) else "%H:%M"
    abbreviation = local.tzname() or ""
    if abbreviation.startswith(("+", "-")):
        abbreviation = utc_offset(local.utcoffset())
    year = "" if short and local.year == timezone.localtime(timezone.now(), zone).year else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year}, {local.strftime(clock)} {abbreviation}".strip()


def duration_text(value: timedelta) -> str:
    """'3 h 5 min', '42 s', '0.3 s'."""
    seconds = value.total_seconds()
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = int(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} d" if days else "", f"{hours} h" if hours else "", f"{minutes} min" if minutes else "",
             f"{secs} s" if secs and not days and not hours else ""]
    return " ".join(p for p in parts if p) or "0 s"


# --- Reading local times ------------------------------------------------------------------------

def _exists(naive: datetime, aware: datetime, zone: tzinfo) -> bool:
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None, fold=0) == naive.replace(fold=0)


def local_time_resolve(*, naive: datetime, zone: tzinfo, fold: int | None = None) -> datetime:
    """The aware datetime an editor meant by a wall-clock time in `zone`. Raises ValidationError
    (code `nonexistent` or `ambiguous`) for a time the clocks skip or show twice, unless `fold`
    (0: the first occurrence, 1: the second) says which of two is meant."""
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    name = getattr(zone, "key", str(zone))
    when = f"{naive:%H:%M} on {naive:%a} {naive.day} {naive:%b %Y}"
    jump = duration_text(abs(second.utcoffset() - first.utcoffset()))
    if _exists(naive, first, zone) and _exists(naive, second, zone):
        if fold in (0, 1):
            return naive.replace(tzinfo=zone, fold=fold)
        raise ValidationError(
            f"{when} happens twice in {name}: the clocks go back {jump} that night "
            f"({first.tzname()} → {second.tzname()}). Choose which {naive:%H:%M} you mean below: the first "
            f"({first.tzname()}, {utc_offset(first.utcoffset())}) or the second "
            f"({second.tzname()}, {utc_offset(second.utcoffset())}).",
            code="ambiguous")
    start = naive.replace(second=0, microsecond=0)
    for _ in range(24 * 60):  # walk back to the first skipped minute (gaps are at most hours)
        earlier = start - timedelta(minutes=1)
        if _exists(earlier, earlier.replace(tzinfo=zone), zone):
            break
        start = earlier
    end = start + abs(second.utcoffset() - first.utcoffset())
    raise ValidationError(
        f"{when} does not exist in {name}: the clocks go forward {jump} at {start:%H:%M} "
        f"({first.tzname()} → {second.tzname()}) and jump straight to {end:%H:%M}. "
        f"Choose a time before {start:%H:%M} or from {end:%H:%M} on.",
        code="nonexistent")


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
        ambiguous = other.utcoffset() != local.utcoffset() and _exists(naive, other, local.tzinfo)
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


# --- Shared checks ------------------------------------------------------------------------------

def publish_time_problem(publish_at: datetime, *, now: datetime | None = None) -> str | None:
    """Why a publish time in the past is refused (lateness policy), or None when it is fine."""
    now = now or timezone.now()
    max_lateness = settings.PUBLISHER_MAX_LATENESS
    if max_lateness and publish_at < now - timedelta(seconds=max_lateness):
        return (f"This time is {duration_text(now - publish_at)} in the past. The site's lateness policy does not "
                f"publish articles more than {duration_text(timedelta(seconds=max_lateness))} late (they are marked "
                "missed), so it would not go out. Choose a time from now on, or use “Publish now”.")
    return None


def past_publish_note(publish_at: datetime, *, now: datetime | None = None) -> str | None:
    """What happens to a publish time that has already passed (None if it is in the future)."""
    now = now or timezone.now()
    if publish_at > now:
        return None
    return (f"The publish time {local_time_text(publish_at)} has already passed, so it is published straight "
            f"away, at the next scan at the latest (every {settings.PUBLISHER_SCAN_INTERVAL:g} s).")


# --- The article form ---------------------------------------------------------------------------

class ArticleAdminForm(forms.ModelForm):
    """Title, body, image and the two times. `status` is not a field: it moves only through the
    services (schedule, unschedule, publish now, retry) and the pipeline."""

    publish_at = ZonedDateTimeField(
        required=False, label="Publish at",
        help_text="When it goes live. Set it to schedule the article; clear it to take it back to draft.")
    unpublish_at = ZonedDateTimeField(
        required=False, label="Unpublish at", help_text="Optional: when it is taken down again.")

    class Meta:
        model = Article
        fields = ("title", "slug", "body", "image", "image_alt", "publish_at", "unpublish_at")

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
        if self.has_error("publish_at") or self.has_error("unpublish_at"):
            return data
        if status == ArticleStatus.PUBLISHED:
            if unpublish_at and publish_at and unpublish_at <= publish_at:
                self.add_error("unpublish_at", "The unpublish time must be after the publish time "
                                               f"({local_time_text(publish_at)}).")
            return data
        if publish_at is None:
            if unpublish_at is not None:
                self.add_error("unpublish_at", "An unpublish time needs a publish time: set when the article "
                                               "goes out first, or clear this.")
            return data
        try:
            services.validate_schedule(title=data.get("title", self.instance.title),
                                       body=data.get("body", self.instance.body),
                                       publish_at=publish_at, unpublish_at=unpublish_at)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                if field in ("title", "body"):
                    messages = [m + " To keep it as a draft, clear the publish time." for m in messages]
                if field == "unpublish_at":  # say which publish time, in the editor's zone
                    messages = [f"The unpublish time must be after the publish time ({local_time_text(publish_at)})."
                                if "must be after" in m else m for m in messages]
                self.add_error(field if field in self.fields else None, messages)
            return data
        if "publish_at" in self.changed_data:
            problem = publish_time_problem(publish_at)
            if problem:
                self.add_error("publish_at", problem)
        if unpublish_at and "unpublish_at" in self.changed_data and unpublish_at <= timezone.now():
            self.add_error("unpublish_at", f"{local_time_text(unpublish_at)} has already passed: the article "
                                           "would never go live. Choose a later time, or clear it.")
        return data


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
            problem = publish_time_problem(publish_at)
            if problem:
                self.add_error("publish_at", problem)
        if publish_at and unpublish_at and unpublish_at <= publish_at:
            self.add_error("unpublish_at", "The unpublish time must be after the publish time "
                                           f"({local_time_text(publish_at)}).")
        elif unpublish_at and unpublish_at <= timezone.now():
            self.add_error("unpublish_at", f"{local_time_text(unpublish_at)} has already passed: the articles "
                                           "would never go live.")
        return data

    @property
    def spacing(self) -> timedelta | None:
        minutes = self.cleaned_data.get("spacing_minutes") or 0
        return timedelta(minutes=minutes) if minutes else None


def time_zone_choices() -> list:
    """Grouped by region for the select: ('Europe', [('Europe/Paris', 'Paris'), ...])."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in sorted(available_time_zones()):
        region, _, city = name.partition("/")
        if not city or region in ("Etc", "SystemV", "US", "Canada", "Brazil", "Mexico", "Chile"):
            region, city = "Other", name
        groups.setdefault(region, []).append((name, city.replace("_", " ")))
    default = f"The site's time zone ({settings.TIME_ZONE})"
    return [("", default)] + sorted(groups.items(), key=lambda item: (item[0] == "Other", item[0]))


class TimeZoneForm(forms.ModelForm):
    time_zone = forms.ChoiceField(choices=time_zone_choices, required=False, label="Your time zone",
                                  help_text="Every time in the admin is shown and entered in this zone.")

    class Meta:
        model = EditorProfile
        fields = ("time_zone",)


def zone_from_name(name: str) -> tzinfo:
    try:
        return zoneinfo.ZoneInfo(name) if name else timezone.get_default_timezone()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return timezone.get_default_timezone()

