"""The rules an article's content and schedule must meet, in one place. Every entry point (the
admin's article and bulk-schedule forms, the importer, the commands, the services and the model's
own clean()) asks this module and shows its messages as they are.

Each broken rule is a ScheduleError with a stable `code` (what tests and callers match on), the
`field` it concerns and the editor-facing `message`; the checks return lists of them, and
`raise_errors` raises them together as one ScheduleErrors (a ValidationError keyed by field).
docs/schedule-rules.md lists every code, its message and where it applies.
"""

import unicodedata
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone

from .rendering import ContentError, ImageTooLarge, check_image_pixels
from .text import duration_text
from .zones import local_time_text

MAX_YEARS_AHEAD = 100


class ScheduleError(ValidationError):
    """One broken rule: `code`, `field` (None: the article as a whole) and `message`."""

    def __init__(self, code: str, field: str | None, message: str):
        super().__init__(message, code=code)
        self.field = field

    def __repr__(self):
        return f"ScheduleError({self.code!r}, {self.field!r}, {self.message!r})"


class ScheduleErrors(ValidationError):
    """Several broken rules at once, keyed by field like a form's errors (`message_dict`);
    `errors` keeps them in the order they were found."""

    def __init__(self, errors: list[ScheduleError]):
        grouped: dict[str, list[ScheduleError]] = {}
        for error in errors:
            grouped.setdefault(error.field or NON_FIELD_ERRORS, []).append(error)
        super().__init__(grouped)
        self.errors = list(errors)

    @property
    def codes(self) -> list[str]:
        return [error.code for error in self.errors]


def raise_errors(errors: list[ScheduleError]) -> None:
    if errors:
        raise ScheduleErrors(errors)


# --- Content ------------------------------------------------------------------------------------

def _control_character(text: str) -> str | None:
    """The first character that has no place in a one-line title: a control character (line
    feed, carriage return, tab, escape, NUL, ...) or a Unicode line or paragraph separator."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def content_errors(*, title: str | None, body: str | None, scheduling: bool) -> list[ScheduleError]:
    """Title and body. A title with a line break or a control character, a body with a NUL or
    longer than PUBLISHER_MAX_BODY_CHARS are refused for any article, draft or not; an empty
    title or body only when the article is being scheduled."""
    errors = []
    title, body = title or "", body or ""
    if not title.strip():
        if scheduling:
            errors.append(ScheduleError("missing_title", "title", "An article needs a title before it can be "
                                        "scheduled. To keep it as a draft, clear the publish time."))
    elif (char := _control_character(title)) is not None:
        errors.append(ScheduleError(
            "title_control_characters", "title",
            f"The title contains a line break or control character (U+{ord(char):04X}, at position "
            f"{title.index(char) + 1}): a title is one line of text. Remove it."))
    if not body.strip():
        if scheduling:
            errors.append(ScheduleError("missing_body", "body", "An article needs a body before it can be "
                                        "scheduled. To keep it as a draft, clear the publish time."))
    elif "\x00" in body:
        errors.append(ScheduleError("body_nul_character", "body",
                                    f"The body contains a NUL character (U+0000, at position {body.index(chr(0)) + 1}),"
                                    " which cannot be stored. Remove it."))
    elif len(body) > settings.PUBLISHER_MAX_BODY_CHARS:
        errors.append(ScheduleError("body_too_long", "body",
                                    f"The body is {len(body):,} characters long; the limit is "
                                    f"{settings.PUBLISHER_MAX_BODY_CHARS:,} (PUBLISHER_MAX_BODY_CHARS)."))
    return errors


def image_errors(*, image) -> list[ScheduleError]:
    """An uploaded image (an open binary file) with more than PUBLISHER_MAX_IMAGE_PIXELS pixels is
    refused, judged from its header alone: a 144-megapixel PNG is 450 KB to upload and 1.2 GB to
    decode. A file that is not an image is left to Django's ImageField to report."""
    limit = settings.PUBLISHER_MAX_IMAGE_PIXELS
    try:
        check_image_pixels(image, limit)
    except ImageTooLarge as exc:
        return [ScheduleError("image_too_large", "image",
                              f"The image is too large: {exc} (PUBLISHER_MAX_IMAGE_PIXELS). "
                              "Upload a smaller version.")]
    except ContentError:
        return []
    return []


# --- Times --------------------------------------------------------------------------------------

def _time_error(field: str, value) -> ScheduleError | None:
    if not isinstance(value, datetime):
        return ScheduleError("not_a_time", field, f"Expected a date and time, got {value!r}.")
    if timezone.is_naive(value):
        return ScheduleError("naive_time", field, "The time must include its time zone (got a naive datetime).")
    if abs(value.year - timezone.now().year) > MAX_YEARS_AHEAD:
        return ScheduleError("year_out_of_range", field,
                             f"The year {value.year} is out of range (within {MAX_YEARS_AHEAD} years of now).")
    return None


def window_errors(*, publish_at: datetime | None, unpublish_at: datetime | None) -> list[ScheduleError]:
    """The two times together: an unpublish time needs a publish time, and comes after it (as
    instants, whatever zones they are in). The one place this is checked."""
    if unpublish_at is None:
        return []
    if publish_at is None:
        return [ScheduleError("unpublish_without_publish", "unpublish_at", "An unpublish time needs a publish time: "
                              "set when the article goes out first, or clear the unpublish time.")]
    if unpublish_at <= publish_at:
        return [ScheduleError("unpublish_before_publish", "unpublish_at", "The unpublish time must be after the "
                              f"publish time ({local_time_text(publish_at)}).")]
    return []


def schedule_errors(*, title: str | None, body: str | None, publish_at: datetime | None,
                    unpublish_at: datetime | None) -> list[ScheduleError]:
    """Everything an article needs to be scheduled: its content, a publish time that is an
    aware datetime in range, an unpublish time (if any) likewise and after it."""
    errors = content_errors(title=title, body=body, scheduling=True)
    bad_times = False
    for field, value in (("publish_at", publish_at), ("unpublish_at", unpublish_at)):
        if value is None:
            continue
        error = _time_error(field, value)
        if error is not None:
            errors.append(error)
            bad_times = True
    if publish_at is None:
        errors.append(ScheduleError("missing_publish_at", "publish_at",
                                    "A publish time is required to schedule an article."))
    elif not bad_times:
        errors += window_errors(publish_at=publish_at, unpublish_at=unpublish_at)
    return errors


def entered_time_errors(*, publish_at: datetime | None, unpublish_at: datetime | None,
                        now: datetime | None = None) -> list[ScheduleError]:
    """Rules for times an editor (or a file, or a command line) has just entered, on top of
    schedule_errors: with a lateness policy (PUBLISHER_MAX_LATENESS) a publish time further in the
    past than it allows would only be marked missed; an unpublish time already passed would mean
    the article never goes live. Pass only the times that were entered (None for the others)."""
    now = now or timezone.now()
    errors = []
    max_lateness = settings.PUBLISHER_MAX_LATENESS
    if publish_at is not None and max_lateness and publish_at < now - timedelta(seconds=max_lateness):
        errors.append(ScheduleError(
            "publish_passed_policy", "publish_at",
            f"This time is {duration_text(now - publish_at)} in the past. The site's lateness policy does not "
            f"publish articles more than {duration_text(timedelta(seconds=max_lateness))} late (they are marked "
            "missed), so it would not go out. Choose a time from now on, or use “Publish now” in the admin."))
    if unpublish_at is not None and unpublish_at <= now:
        errors.append(ScheduleError(
            "unpublish_passed", "unpublish_at",
            f"The unpublish time {local_time_text(unpublish_at)} has already passed: the article would never go "
            "live. Choose a later time, or clear it."))
    return errors


PAST_PUBLISH_NOW = "now"
PAST_PUBLISH_RECORD = "record"


def past_publish_errors(*, publish_at: datetime | None, choice: str, can_record: bool,
                        now: datetime | None = None) -> list[ScheduleError]:
    """A publish time just entered that has already passed asks what the editor means: publish
    it now, subscribers mailed (PAST_PUBLISH_NOW, then the usual rules apply), or record it as
    published at that time, nobody mailed (PAST_PUBLISH_RECORD: importing the back catalogue;
    it makes the article live, so it needs the publish permission)."""
    now = now or timezone.now()
    if publish_at is None or publish_at > now:
        return []
    if not choice:
        return [ScheduleError(
            "publish_passed_choose", "publish_at",
            f"The publish time {local_time_text(publish_at)} has already passed. Choose below whether to publish "
            "it now (subscribers are e-mailed) or to record it as published at that time (nobody is e-mailed).")]
    if choice == PAST_PUBLISH_RECORD and not can_record:
        return [ScheduleError("record_needs_publish_permission", "publish_at",
                              "Recording an article as published puts it live: ask a publisher to do it, or "
                              "choose to publish it now.")]
    return []


def change_time_errors(*, publish_at: datetime, unpublish_at: datetime | None,
                       now: datetime | None = None) -> list[ScheduleError]:
    """The time a change to a live article (a revision) is scheduled for: an aware time in
    range, still ahead (for now, "Publish the change now"), and before the article's own
    take-down time, if it has one (a change after it would never be seen)."""
    now = now or timezone.now()
    error = _time_error("change_publish_at", publish_at)
    if error is not None:
        return [error]
    if publish_at <= now:
        return [ScheduleError("change_time_passed", "change_publish_at",
                              f"The time {local_time_text(publish_at)} has already passed: a change is scheduled for a "
                              "time ahead. Choose a later time, or publish the change now.")]
    if unpublish_at is not None and publish_at >= unpublish_at:
        return [ScheduleError("change_after_unpublish", "change_publish_at",
                              f"The article is taken down {local_time_text(unpublish_at)}: a change after that would "
                              "never be seen. Choose an earlier time.")]
    return []


def bulk_time_errors(*, publish_at: datetime, unpublish_at: datetime | None) -> list[ScheduleError]:
    """The times given to schedule many articles at once (the bulk form and command), checked
    before any article is: the two times together, then as newly entered times. Each article's
    own content is checked when it is scheduled (schedule_errors)."""
    errors = window_errors(publish_at=publish_at, unpublish_at=unpublish_at)
    return errors + entered_time_errors(publish_at=publish_at, unpublish_at=None if errors else unpublish_at)


def publish_passed_note(publish_at: datetime, *, now: datetime | None = None) -> str | None:
    """Not an error: what happens to a publish time that has already passed (None if it is in
    the future). Rule code `publish_passed` in docs/schedule-rules.md."""
    now = now or timezone.now()
    if publish_at > now:
        return None
    return (f"The publish time {local_time_text(publish_at)} has already passed, so it is published straight "
            f"away, at the next scan at the latest (every {settings.PUBLISHER_SCAN_INTERVAL:g} s).")
