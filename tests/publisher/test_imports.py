"""Imports run twice: rows already imported are found again (by external_id, or by a hash of
title, publish time and body) and updated or left alone, never duplicated; rows due now are
claimed and dispatched in chunks like the scan; a dry run writes nothing."""

import json
import math
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, transaction
from django.utils import timezone

from publisher import dispatch, imports
from publisher.models import Article, ArticleStatus
from tests.factories import make_article

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("utc_without_lateness_policy")]

NEXT_YEAR = timezone.now().year + 1



def run(*args, fails=False) -> str:
    out = StringIO()
    if fails:
        with pytest.raises(CommandError) as exc_info:
            call_command(*args, stdout=out, stderr=StringIO())
        return out.getvalue() + str(exc_info.value)
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


def write_csv(tmp_path, text: str, name="articles.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_file_imported_twice_leaves_one_article_per_row(tmp_path, dispatched):
    path = write_csv(tmp_path, (
        "title,body,publish_at\n"
        f"One,Body one,{NEXT_YEAR}-03-01T09:00Z\n"
        "Two,Body two,\n"
        f"Three,Body three,{NEXT_YEAR}-03-02T09:00Z\n"
    ))
    first = run("import_articles", str(path))
    assert "imported 3 of 3 rows (2 scheduled, 1 drafts): 3 created, 0 updated, 0 skipped as existing, 0 rejected" \
        in first
    second = run("import_articles", str(path))
    assert "imported 0 of 3 rows (0 scheduled, 0 drafts): 0 created, 0 updated, 3 skipped as existing, 0 rejected" \
        in second
    assert sorted(Article.objects.values_list("title", "status")) == [
        ("One", ArticleStatus.SCHEDULED), ("Three", ArticleStatus.SCHEDULED), ("Two", ArticleStatus.DRAFT)]
    assert Article.objects.filter(import_key__isnull=False).count() == 3
    assert dispatched == []


def test_a_file_rerun_after_a_partial_failure_imports_only_what_was_missing(tmp_path):
    good = f"One,Body one,{NEXT_YEAR}-03-01T09:00Z\nTwo,Body two,{NEXT_YEAR}-03-01T10:00Z\n"
    path = write_csv(tmp_path, f"title,body,publish_at\n{good}Three,,{NEXT_YEAR}-03-01T11:00Z\n")
    out = run("import_articles", str(path), fails=True)
    assert "2 created, 0 updated, 0 skipped as existing, 1 rejected" in out
    path = write_csv(tmp_path, f"title,body,publish_at\n{good}Three,Body three,{NEXT_YEAR}-03-01T11:00Z\n")
    out = run("import_articles", str(path))
    assert "1 created, 0 updated, 2 skipped as existing, 0 rejected" in out
    assert sorted(Article.objects.values_list("title", flat=True)) == ["One", "Three", "Two"]


def test_external_id_updates_a_row_still_ahead_and_skips_one_already_live(tmp_path):
    path = tmp_path / "articles.json"
    path.write_text(json.dumps([
        {"external_id": "cms-1", "title": "First", "body": "Body", "publish_at": f"{NEXT_YEAR}-03-01T09:00Z"},
        {"external_id": "cms-2", "title": "Second", "body": "Body", "publish_at": f"{NEXT_YEAR}-03-01T09:00Z"},
    ]))
    assert "2 created" in run("import_articles", str(path))
    second = Article.objects.get(external_id="cms-2")
    Article.objects.filter(pk=second.pk).update(status=ArticleStatus.PUBLISHED, published_at=timezone.now(),
                                                publish_at=timezone.now())
    path.write_text(json.dumps([
        {"external_id": "cms-1", "title": "First, edited", "body": "New body", "publish_at": f"{NEXT_YEAR}-04-01T09:00Z"},
        {"external_id": "cms-2", "title": "Second, edited", "body": "New body", "publish_at": f"{NEXT_YEAR}-04-01T09:00Z"},
    ]))
    out = run("import_articles", str(path))
    assert "imported 1 of 2 rows (1 scheduled, 0 drafts): 0 created, 1 updated, 1 skipped as existing, 0 rejected" \
        in out
    first = Article.objects.get(external_id="cms-1")
    assert (first.title, first.body, first.publish_at.month, first.status) == (
        "First, edited", "New body", 4, ArticleStatus.SCHEDULED)
    assert list(first.events.values_list("action", flat=True)) == ["rescheduled", "scheduled"]
    assert Article.objects.get(external_id="cms-2").title == "Second"  # live: left alone
    assert Article.objects.count() == 2


def test_a_row_whose_publish_time_passed_is_skipped_not_rejected_on_a_rerun(tmp_path, settings):
    settings.PUBLISHER_MAX_LATENESS = 60
    article = make_article(title="Old", body="Body", status=ArticleStatus.PUBLISHED, external_id="x-1",
                           publish_at=timezone.now() - timedelta(days=3), published_at=timezone.now())
    path = write_csv(tmp_path, "external_id,title,body,publish_at\nx-1,Old,Body,2001-01-01T00:00Z\n")
    assert "0 created, 0 updated, 1 skipped as existing, 0 rejected" in run("import_articles", str(path))
    assert list(Article.objects.values_list("pk", flat=True)) == [article.pk]


@pytest.mark.parametrize("n, chunk", [(7, 3), (6, 3), (1, 50)])
def test_due_rows_are_claimed_and_dispatched_in_chunks(tmp_path, settings, dispatched, n, chunk, monkeypatch,
                                                       django_capture_on_commit_callbacks):
    settings.PUBLISHER_CHUNK_SIZE = chunk
    # Claims by count only: on a loaded machine the import of 6 rows can outlast the 1 s after
    # which a partial chunk is claimed anyway (3 chains instead of 2).
    monkeypatch.setattr(imports, "CLAIM_DELAY", 3600)
    when = (timezone.now() + timedelta(seconds=2)).isoformat()
    path = write_csv(tmp_path, "title,body,publish_at\n" + "".join(f"Due {i},Body,{when}\n" for i in range(n)))
    with django_capture_on_commit_callbacks(execute=True):
        out = run("import_articles", str(path))
    assert f"{n} created" in out and f"{n} due now, claimed and dispatched in chunks" in out
    chains = [part for call in dispatched
              for part in dispatch.chunks(call["due"], size=call["chunk_size"] or chunk,
                                          window=settings.PUBLISHER_CHUNK_WINDOW)]
    assert len(chains) == math.ceil(n / chunk)
    assert sorted(pk for chain in chains for pk, _ in chain) == sorted(Article.objects.values_list("pk", flat=True))
    assert set(Article.objects.values_list("status", flat=True)) == {ArticleStatus.PUBLISHING}


def test_a_dry_run_reports_the_counts_and_writes_nothing(tmp_path, dispatched, django_capture_on_commit_callbacks):
    path = write_csv(tmp_path, (
        "title,body,publish_at\n"
        f"Now,Body,{(timezone.now() + timedelta(seconds=2)).isoformat()}\n"
        f"Later,Body,{NEXT_YEAR}-03-01T09:00Z\n"
        "Bad,Body,x\n"
    ))
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        out = run("import_articles", str(path), "--dry-run", fails=True)
    assert callbacks == []
    assert ("(dry run) would import 2 of 3 rows (2 scheduled, 0 drafts): 2 created, 0 updated, "
            "0 skipped as existing, 1 rejected") in out
    assert Article.objects.count() == 0 and dispatched == []


def test_a_dry_run_of_a_rerun_says_what_a_real_rerun_would_do(tmp_path):
    path = tmp_path / "articles.json"
    rows = [{"external_id": "a", "title": "A", "body": "Body", "publish_at": f"{NEXT_YEAR}-03-01T09:00Z"},
            {"external_id": "b", "title": "B", "body": "Body", "publish_at": f"{NEXT_YEAR}-03-01T09:00Z"}]
    path.write_text(json.dumps(rows))
    run("import_articles", str(path))
    rows[1]["title"] = "B, edited"
    rows.append({"external_id": "c", "title": "C", "body": "", "publish_at": f"{NEXT_YEAR}-03-01T09:00Z"})
    path.write_text(json.dumps(rows))
    dry = run("import_articles", str(path), "--dry-run", fails=True)
    assert "(dry run) would import 1 of 3 rows (1 scheduled, 0 drafts): 0 created, 1 updated, " \
           "1 skipped as existing, 1 rejected" in dry
    assert "rejected row 3: body: An article needs a body before it can be scheduled." in dry
    assert Article.objects.get(external_id="b").title == "B"
    real = run("import_articles", str(path), fails=True)
    assert real.replace("(dry run) would import", "imported").split("\n")[0] == dry.split("\n")[0].replace(
        "(dry run) would import", "imported")
    assert Article.objects.get(external_id="b").title == "B, edited"


def test_the_database_refuses_a_second_article_with_the_same_external_id():
    make_article(title="One", external_id="same")
    make_article(title="No id")
    make_article(title="No id either")  # NULL is not a duplicate
    with pytest.raises(IntegrityError), transaction.atomic():
        make_article(title="Two", external_id="same")


def test_a_row_found_by_content_key_keeps_the_editors_changes(tmp_path):
    path = write_csv(tmp_path, f"title,body,publish_at,unpublish_at\nOne,Body,{NEXT_YEAR}-03-01T09:00Z,\n")
    run("import_articles", str(path))
    Article.objects.update(title="One, as the editor put it")
    path = write_csv(tmp_path, f"title,body,publish_at,unpublish_at\nOne,Body,{NEXT_YEAR}-03-01T09:00Z,"
                               f"{NEXT_YEAR}-04-01T09:00Z\n")
    assert "0 created, 0 updated, 1 skipped as existing, 0 rejected" in run("import_articles", str(path))
    assert Article.objects.get().title == "One, as the editor put it"
    assert Article.objects.get().unpublish_at is None
