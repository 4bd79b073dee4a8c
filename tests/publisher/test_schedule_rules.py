"""publisher.schedule_rules: one test per rule code (exact code, field and message), and the
same message for a hostile title wherever a title enters (admin form, importer, command)."""

import json
import os
import subprocess
import sys
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from publisher import imports, schedule_rules, services
from publisher.models import Article
from publisher.schedule_rules import ScheduleError, ScheduleErrors
from publisher.zones import UnknownZoneError, zone_from_name, zone_named

ROOT = Path(__file__).resolve().parents[2]
UTC = dt_timezone.utc
NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
HOSTILE_TITLE = "Breaking\nnews"
HOSTILE_MESSAGE = ("The title contains a line break or control character (U+000A, at position 9): a title is one "
                   "line of text. Remove it.")


@pytest.fixture(autouse=True)
def fixed(settings):
    settings.TIME_ZONE = "UTC"
    settings.PUBLISHER_MAX_LATENESS = None
    settings.PUBLISHER_MAX_BODY_CHARS = 200_000
    settings.PUBLISHER_SCAN_INTERVAL = 10
    with time_machine.travel(NOW, tick=False):
        yield settings


def found(errors: list[ScheduleError]) -> list[tuple[str, str | None, str]]:
    return [(error.code, error.field, error.message) for error in errors]


def schedule(**values) -> list[tuple[str, str | None, str]]:
    values = {"title": "T", "body": "B", "publish_at": NOW + timedelta(hours=1), "unpublish_at": None, **values}
    return found(schedule_rules.schedule_errors(**values))


# --- One test per code ----------------------------------------------------------------------------

def test_a_complete_schedule_breaks_no_rule():
    assert schedule() == []
    assert schedule(unpublish_at=NOW + timedelta(hours=2)) == []


@pytest.mark.parametrize("title", ["", "  ", None])
def test_missing_title(title):
    assert schedule(title=title) == [("missing_title", "title", "An article needs a title before it can be scheduled. "
                                      "To keep it as a draft, clear the publish time.")]


@pytest.mark.parametrize("title, char, position", [
    ("Breaking\nnews", "000A", 9), ("Line\r\nbreak", "000D", 5), ("Tab\there", "0009", 4), ("Bell\x07", "0007", 5),
    ("Esc \x1b[31mred", "001B", 5), ("Next\x85line", "0085", 5), ("Sep\u2028arated", "2028", 4),
    ("Para\u2029graph", "2029", 5), ("Vertical\x0btab", "000B", 9),
])
def test_title_control_characters(title, char, position):
    message = (f"The title contains a line break or control character (U+{char}, at position {position}): a title "
               "is one line of text. Remove it.")
    assert schedule(title=title) == [("title_control_characters", "title", message)]
    # Refused for drafts too, where the missing title is not.
    assert found(schedule_rules.content_errors(title=title, body="B", scheduling=False)) == [
        ("title_control_characters", "title", message)]
    assert found(schedule_rules.content_errors(title="", body="", scheduling=False)) == []


def test_ordinary_unicode_titles_are_fine():
    assert schedule(title="Grüße — 東京 👩‍💻 “quoted”") == []


@pytest.mark.parametrize("body", ["", " \t\n"])
def test_missing_body(body):
    assert schedule(body=body) == [("missing_body", "body", "An article needs a body before it can be scheduled. "
                                    "To keep it as a draft, clear the publish time.")]


def test_body_nul_character():
    assert schedule(body="abc\x00def") == [
        ("body_nul_character", "body", "The body contains a NUL character (U+0000, at position 4), which cannot be "
                                       "stored. Remove it.")]


def test_body_too_long(fixed):
    fixed.PUBLISHER_MAX_BODY_CHARS = 1000
    assert schedule(body="x" * 1000) == []
    assert schedule(body="x" * 1001) == [
        ("body_too_long", "body", "The body is 1,001 characters long; the limit is 1,000 (PUBLISHER_MAX_BODY_CHARS).")]


@pytest.mark.parametrize("field", ["publish_at", "unpublish_at"])
def test_not_a_time(field):
    assert schedule(**{field: date(2031, 1, 1)}) == [
        ("not_a_time", field, "Expected a date and time, got datetime.date(2031, 1, 1).")]


@pytest.mark.parametrize("field", ["publish_at", "unpublish_at"])
def test_naive_time(field):
    assert schedule(**{field: datetime(2031, 1, 1, 9, 0)}) == [
        ("naive_time", field, "The time must include its time zone (got a naive datetime).")]


@pytest.mark.parametrize("year", [1, 9999])
def test_year_out_of_range(year):
    assert schedule(publish_at=datetime(year, 1, 1, tzinfo=UTC)) == [
        ("year_out_of_range", "publish_at", f"The year {year} is out of range (within 100 years of now).")]


def test_missing_publish_at():
    assert schedule(publish_at=None) == [
        ("missing_publish_at", "publish_at", "A publish time is required to schedule an article.")]


def test_unpublish_without_publish():
    assert found(schedule_rules.window_errors(publish_at=None, unpublish_at=NOW)) == [
        ("unpublish_without_publish", "unpublish_at", "An unpublish time needs a publish time: set when the article "
                                                      "goes out first, or clear the unpublish time.")]


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(seconds=-1)], ids=["equal", "before"])
def test_unpublish_before_publish(offset):
    publish_at = datetime(2030, 7, 1, 9, 30, tzinfo=UTC)
    assert schedule(publish_at=publish_at, unpublish_at=publish_at + offset) == [
        ("unpublish_before_publish", "unpublish_at",
         "The unpublish time must be after the publish time (Mon 1 Jul 2030, 09:30 UTC).")]


def test_unpublish_before_publish_compares_instants_and_speaks_in_the_current_zone():
    publish_at = datetime(2030, 7, 1, 9, 30, tzinfo=UTC)
    with timezone.override("Europe/Paris"):
        # 11:00 in Paris is 09:00 UTC: before, although the wall clock reads later.
        assert found(schedule_rules.window_errors(
            publish_at=publish_at, unpublish_at=datetime(2030, 7, 1, 11, 0, tzinfo=zone_named("Europe/Paris")))) == [
            ("unpublish_before_publish", "unpublish_at",
             "The unpublish time must be after the publish time (Mon 1 Jul 2030, 11:30 CEST).")]


def test_publish_passed_policy(fixed):
    fixed.PUBLISHER_MAX_LATENESS = 600
    assert found(schedule_rules.entered_time_errors(publish_at=NOW - timedelta(minutes=10), unpublish_at=None)) == []
    assert found(schedule_rules.entered_time_errors(publish_at=NOW - timedelta(hours=2), unpublish_at=None)) == [
        ("publish_passed_policy", "publish_at",
         "This time is 2 h in the past. The site's lateness policy does not publish articles more than 10 min late "
         "(they are marked missed), so it would not go out. Choose a time from now on, or use “Publish now” in the "
         "admin.")]


def test_without_a_lateness_policy_a_past_publish_time_is_only_a_note():
    assert found(schedule_rules.entered_time_errors(publish_at=NOW - timedelta(days=30), unpublish_at=None)) == []
    assert schedule_rules.publish_passed_note(NOW - timedelta(minutes=5)) == (
        "The publish time Sat 1 Jun 2030, 11:55 UTC has already passed, so it is published straight away, at the "
        "next scan at the latest (every 10 s).")
    assert schedule_rules.publish_passed_note(NOW + timedelta(seconds=1)) is None


def test_unpublish_passed():
    assert found(schedule_rules.entered_time_errors(publish_at=None, unpublish_at=NOW)) == [
        ("unpublish_passed", "unpublish_at", "The unpublish time Sat 1 Jun 2030, 12:00 UTC has already passed: the "
                                             "article would never go live. Choose a later time, or clear it.")]


def test_bulk_times_report_unpublish_before_publish_rather_than_passed_too():
    assert [e.code for e in schedule_rules.bulk_time_errors(publish_at=NOW + timedelta(hours=1),
                                                            unpublish_at=NOW - timedelta(hours=1))] == [
        "unpublish_before_publish"]


def test_errors_are_raised_together_keyed_by_field_with_their_codes():
    with pytest.raises(ScheduleErrors) as caught:
        services.validate_schedule(title="", body="x\x00", publish_at=datetime(2031, 1, 1), unpublish_at=None)
    assert caught.value.codes == ["missing_title", "body_nul_character", "naive_time"]
    assert isinstance(caught.value, ValidationError)
    assert list(caught.value.message_dict) == ["title", "body", "publish_at"]
    assert [e.code for e in caught.value.error_dict["publish_at"]] == ["naive_time"]
    schedule_rules.raise_errors([])  # nothing broken: nothing raised


def test_zone_names():
    assert zone_named("Europe/Paris").key == "Europe/Paris"
    with pytest.raises(UnknownZoneError, match="'Mars/Olympus' is not a known time zone"):
        zone_named("Mars/Olympus")
    assert zone_from_name("Mars/Olympus") == timezone.get_default_timezone()


# --- A hostile title, wherever it enters ------------------------------------------------------------

def test_the_admin_form_refuses_a_hostile_title(admin_client):
    response = admin_client.post("/admin/publisher/article/add/", {
        "title": HOSTILE_TITLE, "body": "Body.", "_save": "Save",
        "publish_at_0": "", "publish_at_1": "", "publish_at_2": "",
        "unpublish_at_0": "", "unpublish_at_1": "", "unpublish_at_2": ""})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["title"] == [HOSTILE_MESSAGE]
    assert not Article.objects.exists()


@pytest.mark.django_db
def test_the_importer_refuses_a_hostile_title():
    rows = [imports.Row(1, {"title": HOSTILE_TITLE, "body": "Body."}),
            imports.Row(2, {"title": "Fine", "body": "Body.", "publish_at": "2030-07-01T09:00Z"})]
    result = imports.rows_import(rows, zone=zone_named("UTC"))
    assert result.rejected == [imports.Rejected(1, f"title: {HOSTILE_MESSAGE}")]
    assert list(Article.objects.values_list("title", flat=True)) == ["Fine"]


@pytest.mark.django_db
@pytest.mark.parametrize("file_format", ["csv", "json"])
def test_the_import_command_refuses_a_hostile_title(tmp_path, file_format):
    path = tmp_path / f"articles.{file_format}"
    if file_format == "csv":
        path.write_text(f'title,body\n"{HOSTILE_TITLE}",Body.\n', encoding="utf-8")
    else:
        path.write_text(json.dumps([{"title": HOSTILE_TITLE, "body": "Body."}]), encoding="utf-8")
    out = StringIO()
    with pytest.raises(CommandError, match="1 of 1 rows rejected"):
        call_command("import_articles", str(path), stdout=out, stderr=StringIO())
    assert f"rejected row 1: title: {HOSTILE_MESSAGE}" in out.getvalue()
    assert not Article.objects.exists()


@pytest.mark.django_db
def test_the_import_command_refuses_a_nul_in_the_body_and_an_overlong_body(tmp_path, fixed):
    fixed.PUBLISHER_MAX_BODY_CHARS = 5
    path = tmp_path / "articles.json"
    path.write_text(json.dumps([{"title": "NUL", "body": "a\x00b"}, {"title": "Long", "body": "abcdef"}]))
    out = StringIO()
    with pytest.raises(CommandError, match="2 of 2 rows rejected"):
        call_command("import_articles", str(path), stdout=out, stderr=StringIO())
    assert ("rejected row 1: body: The body contains a NUL character (U+0000, at position 2), which cannot be "
            "stored. Remove it.") in out.getvalue()
    assert ("rejected row 2: body: The body is 6 characters long; the limit is 5 (PUBLISHER_MAX_BODY_CHARS)."
            in out.getvalue())
    assert not Article.objects.exists()


@pytest.mark.django_db
def test_the_schedule_service_refuses_an_article_whose_title_is_hostile(article_factory):
    article = article_factory(title=HOSTILE_TITLE, body="Body.")  # written before the rule existed
    with pytest.raises(ScheduleErrors) as caught:
        services.article_schedule(article_id=article.pk, publish_at=NOW + timedelta(hours=1))
    assert found(caught.value.errors) == [("title_control_characters", "title", HOSTILE_MESSAGE)]


# --- PUBLISHER_MAX_BODY_CHARS -----------------------------------------------------------------------

def read_setting(**env) -> subprocess.CompletedProcess:
    """Start Django in a fresh interpreter with `env` and print the limit it read."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PUBLISHER_MAX_BODY")}
    code = "import django; django.setup(); from django.conf import settings; print(settings.PUBLISHER_MAX_BODY_CHARS)"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.one_tier
@pytest.mark.parametrize("value, expected", [
    (None, "200000"), ("5000", "5000"),
    ("abc", "PUBLISHER_MAX_BODY_CHARS must be a whole number, got 'abc'."),
    ("0", "PUBLISHER_MAX_BODY_CHARS must be at least 1, got 0."),
    ("1e6", "PUBLISHER_MAX_BODY_CHARS must be a whole number, got '1e6'."),
])
def test_the_body_limit_is_read_strictly_from_the_environment(value, expected):
    result = read_setting(**({} if value is None else {"PUBLISHER_MAX_BODY_CHARS": value}))
    if expected.isdigit():
        assert (result.returncode, result.stdout.strip()) == (0, expected), result.stderr
    else:
        assert result.returncode != 0 and f"ImproperlyConfigured: {expected}" in result.stderr
