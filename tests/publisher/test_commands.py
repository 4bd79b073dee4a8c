"""The operator commands (import_articles, bulk_schedule, bulk_unschedule, replay_failed): they go
through the admin's services, refuse bad input with one clear error, report rejected rows with
their number and reason, write nothing on a dry run, and show a progress bar on stderr."""

import json
from datetime import datetime, timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus
from publisher.zones import local_time_text
from tests.factories import make_article

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("utc_without_lateness_policy")]

NEXT_YEAR = timezone.now().year + 1



def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def run_failing(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as exc_info:
        call_command(*args, stdout=out, stderr=err)
    return out.getvalue() + str(exc_info.value), err.getvalue()


def make(title="A title", *, status=ArticleStatus.DRAFT, days=None, **fields) -> Article:
    fields.setdefault("body", "Some body.")
    publish_at = None if days is None else timezone.now() + timedelta(days=days)
    return make_article(title=title, status=status, publish_at=publish_at, **fields)


# --- import_articles ------------------------------------------------------------------------------

def write_csv(tmp_path, text: str):
    path = tmp_path / "articles.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_import_csv_schedules_drafts_and_rejects_bad_rows_with_number_and_reason(tmp_path):
    path = write_csv(tmp_path, (
        "title,body,publish_at,unpublish_at\n"
        f"Scheduled,Body one,{NEXT_YEAR}-03-01T09:00+01:00,\n"
        "A draft,Body two,,\n"
        f"No body,,{NEXT_YEAR}-03-01T09:00Z,\n"
        f"Bad time,Body,{NEXT_YEAR}-13-40 25:00,\n"
        f"Backwards,Body,{NEXT_YEAR}-03-02T09:00Z,{NEXT_YEAR}-03-01T09:00Z\n"
    ))
    output, progress = run_failing("import_articles", str(path))
    assert "3 of 5 rows rejected (listed above); the other rows were imported." in output
    assert "imported 2 of 5 rows (1 scheduled, 1 drafts)" in output
    assert "rejected row 3: body: An article needs a body before it can be scheduled." in output
    assert "rejected row 4: publish_at '" in output and "is not a date and time" in output
    assert ("rejected row 5: unpublish_at: The unpublish time must be after the publish time "
            f"({local_time_text(datetime(NEXT_YEAR, 3, 2, 9, 0, tzinfo=ZoneInfo('UTC')))}).") in output
    assert "5/5" in progress  # the progress bar, on stderr
    assert sorted(Article.objects.values_list("title", "status")) == [
        ("A draft", ArticleStatus.DRAFT), ("Scheduled", ArticleStatus.SCHEDULED)]
    scheduled = Article.objects.get(title="Scheduled")
    assert scheduled.publish_at == datetime(NEXT_YEAR, 3, 1, 8, 0, tzinfo=ZoneInfo("UTC"))
    # The admin's path: the schedule is audited like an editor's.
    assert list(scheduled.events.values_list("action", flat=True)) == [ArticleEventAction.SCHEDULED]


def test_import_json_reads_local_times_in_the_zone_given_and_refuses_a_dst_gap(tmp_path):
    path = tmp_path / "articles.json"
    path.write_text(json.dumps([
        {"title": "Paris morning", "body": "x", "publish_at": f"{NEXT_YEAR}-07-01T09:00"},
        {"title": "In the gap", "body": "x", "publish_at": f"{NEXT_YEAR}-03-{last_sunday(NEXT_YEAR, 3):02d}T02:30"},
    ]))
    out, _ = run_failing("import_articles", str(path), "--time-zone", "Europe/Paris")
    assert "imported 1 of 2 rows" in out
    assert "rejected row 2: publish_at: 02:30" in out and "does not exist in Europe/Paris" in out
    article = Article.objects.get()
    assert article.publish_at == datetime(NEXT_YEAR, 7, 1, 7, 0, tzinfo=ZoneInfo("UTC"))  # CEST is UTC+2


def last_sunday(year: int, month: int) -> int:
    day = datetime(year, month + 1, 1) - timedelta(days=1)
    return (day - timedelta(days=(day.weekday() + 1) % 7)).day


def test_import_dry_run_reports_the_same_and_writes_nothing(tmp_path):
    path = write_csv(tmp_path, f"title,body,publish_at\nOne,Body,{NEXT_YEAR}-01-01T00:00Z\nTwo,,\nThree,Body,x\n")
    out, _ = run_failing("import_articles", str(path), "--dry-run")
    assert "(dry run) would import 2 of 3 rows (1 scheduled, 1 drafts)" in out
    assert "rejected row 3: publish_at 'x' is not a date and time" in out
    assert Article.objects.count() == 0 and ArticleEvent.objects.count() == 0


@pytest.mark.parametrize("content, message", [
    ("", "The CSV file is empty"),
    ("title,summary\nA,B\n", "unknown column(s) summary"),
    ("body\nA\n", "has no title column"),
    ("title,body\nA,B,C\n", "Row 1 (line 2) has more values than the header"),
])
def test_import_refuses_a_malformed_file_as_a_whole(tmp_path, content, message):
    out, _ = run_failing("import_articles", str(write_csv(tmp_path, content)))
    assert message in out and "Nothing was imported." in out
    assert Article.objects.count() == 0


def test_import_errors_for_a_missing_file_unknown_format_and_bad_json(tmp_path):
    assert "does not exist" in run_failing("import_articles", str(tmp_path / "none.csv"))[0]
    (tmp_path / "a.txt").write_text("title\nA\n")
    assert "Cannot tell the format of a.txt" in run_failing("import_articles", str(tmp_path / "a.txt"))[0]
    (tmp_path / "a.json").write_text('{"title": "A"}')
    assert "must hold a list of articles" in run_failing("import_articles", str(tmp_path / "a.json"))[0]
    assert "is not a known time zone" in run_failing("import_articles", str(tmp_path / "a.json"),
                                                     "--time-zone", "Mars/Olympus")[0]


def test_import_rejects_a_row_the_lateness_policy_would_miss(tmp_path, settings):
    settings.PUBLISHER_MAX_LATENESS = 60
    path = write_csv(tmp_path, "title,body,publish_at\nOld,Body,2001-01-01T00:00Z\n")
    out, _ = run_failing("import_articles", str(path))
    assert "rejected row 1: publish_at: This time is" in out and "lateness policy" in out
    assert Article.objects.count() == 0


# --- bulk_schedule / bulk_unschedule ------------------------------------------------------------

def test_bulk_schedule_by_title_spaces_them_out_and_skips_what_cannot_go(tmp_path):
    a, b = make("Launch A"), make("Launch B")
    live = make("Launch live", status=ArticleStatus.PUBLISHED, days=-1)
    empty = make("Launch empty", body="")
    other = make("Other")
    out, err = run("bulk_schedule", "--title-contains", "launch", "--at", f"{NEXT_YEAR}-05-01T10:00Z",
                   "--every", "30")
    assert "scheduled 2 articles, skipped 2" in out
    assert f"skipped #{live.pk} “Launch live”: it is already live" in out
    assert f"skipped #{empty.pk} “Launch empty”: An article needs a body" in out
    assert "4/4" in err
    a.refresh_from_db(), b.refresh_from_db(), other.refresh_from_db()
    assert a.status == b.status == ArticleStatus.SCHEDULED
    assert b.publish_at - a.publish_at == timedelta(minutes=30)
    assert other.status == ArticleStatus.DRAFT


def test_bulk_schedule_spacing_continues_across_chunks(monkeypatch):
    monkeypatch.setattr("publisher.cli.CHUNK", 2)
    articles = [make(f"Item {i}") for i in range(5)]
    run("bulk_schedule", "--status", "draft", "--at", f"{NEXT_YEAR}-05-01T10:00Z", "--every", "1")
    times = [Article.objects.get(pk=a.pk).publish_at for a in articles]
    assert [(t - times[0]).total_seconds() for t in times] == [0, 60, 120, 180, 240]


def test_bulk_schedule_dry_run_changes_nothing():
    article = make("Draft")
    out, _ = run("bulk_schedule", "--ids", str(article.pk), "--at", f"{NEXT_YEAR}-05-01T10:00Z", "--dry-run")
    assert "(dry run) would have scheduled 1 article, skipped 0" in out
    article.refresh_from_db()
    assert article.status == ArticleStatus.DRAFT and article.publish_at is None
    assert ArticleEvent.objects.count() == 0


@pytest.mark.parametrize("args, message", [
    (["--at", f"{NEXT_YEAR}-05-01T10:00Z"], "give at least one of --status"),
    (["--status", "draft", "--at", "tomorrow"], "--at 'tomorrow' is not a date and time"),
    (["--ids", "1,x", "--at", f"{NEXT_YEAR}-05-01T10:00Z"], "--ids '1,x': expected article ids"),
    (["--status", "draft", "--at", f"{NEXT_YEAR}-05-01T10:00Z", "--unpublish-at", f"{NEXT_YEAR}-04-01T10:00Z"],
     "--unpublish-at: The unpublish time must be after the publish time"),
    (["--status", "draft", "--at", f"{NEXT_YEAR}-05-01T10:00Z", "--from", "2026-02-01", "--to", "2026-01-01"],
     "--to must be after --from"),
    (["--ids", "999999", "--at", f"{NEXT_YEAR}-05-01T10:00Z"], "No article matches these filters"),
])
def test_bulk_schedule_refuses_bad_arguments(args, message):
    make("Draft")
    out, _ = run_failing("bulk_schedule", *args)
    assert message in out
    assert Article.objects.get().status == ArticleStatus.DRAFT


def test_bulk_unschedule_by_status_and_date_range():
    inside = make("Inside", status=ArticleStatus.SCHEDULED, days=10)
    outside = make("Outside", status=ArticleStatus.SCHEDULED, days=40)
    start = (timezone.now() + timedelta(days=5)).date().isoformat()
    end = (timezone.now() + timedelta(days=20)).date().isoformat()
    out, err = run("bulk_unschedule", "--status", "scheduled", "--from", start, "--to", end)
    assert "unscheduled 1 article, skipped 0" in out and "1/1" in err
    inside.refresh_from_db(), outside.refresh_from_db()
    assert (inside.status, inside.publish_at) == (ArticleStatus.DRAFT, None)
    assert outside.status == ArticleStatus.SCHEDULED
    assert list(inside.events.values_list("action", flat=True)) == [ArticleEventAction.UNSCHEDULED]


def test_bulk_unschedule_dry_run_changes_nothing():
    article = make("Scheduled", status=ArticleStatus.SCHEDULED, days=3)
    out, _ = run("bulk_unschedule", "--ids", str(article.pk), "--dry-run")
    assert "(dry run) would have unscheduled 1 article" in out
    article.refresh_from_db()
    assert article.status == ArticleStatus.SCHEDULED


# --- replay_failed -------------------------------------------------------------------------------

def test_replay_failed_reschedules_failed_articles_through_the_retry_service():
    failed = make("Broke", status=ArticleStatus.FAILED, days=2, last_error="boom")
    missed = make("Late", status=ArticleStatus.MISSED, days=3)
    fine = make("Fine", status=ArticleStatus.SCHEDULED, days=2)
    out, err = run("replay_failed")
    assert "retried 2 articles, skipped 0" in out and "2/2" in err
    failed.refresh_from_db(), missed.refresh_from_db(), fine.refresh_from_db()
    assert failed.status == missed.status == ArticleStatus.SCHEDULED and failed.last_error == ""
    assert list(failed.events.values_list("action", flat=True)) == [ArticleEventAction.RETRIED]
    assert fine.events.count() == 0


def test_replay_failed_dry_run_and_filters():
    failed = make("Broke", status=ArticleStatus.FAILED, days=2, last_error="boom")
    make("Other", status=ArticleStatus.FAILED, days=2)
    out, _ = run("replay_failed", "--title-contains", "broke", "--dry-run")
    assert "(dry run) would have retried 1 article" in out
    failed.refresh_from_db()
    assert failed.status == ArticleStatus.FAILED and failed.last_error == "boom"
    assert "No failed or missed article matches" in run_failing("replay_failed", "--ids", "999999")[0]
