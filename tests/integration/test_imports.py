"""import_articles with real processes: a file re-run (after a partial failure, or just twice)
publishes and mails each article once; a dry run of a large file never holds the database's
write lock for long (on SQLite one lock covers the whole file, and publishing needs it)."""

import time
from collections import Counter
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus
from tests.factories import make_article, make_subscriber
from tests.support.mail import read_mailbox
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

DRY_RUN_ROWS = 3000


def import_file(path, *args) -> str:
    out = StringIO()
    try:
        call_command("import_articles", str(path), *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        out.write(str(exc))
    return out.getvalue()


def test_a_file_rerun_after_a_partial_failure_and_again_mails_each_subscriber_once(processes, tmp_path, mailbox,
                                                                                     settings):
    settings.PUBLISHER_MAX_LATENESS = None
    subscribers = [make_subscriber(f"reader{i}@example.com") for i in range(3)]
    processes.worker()
    when = (timezone.now() + timedelta(seconds=3)).isoformat()
    good = "".join(f"Story {i},Body {i},{when}\n" for i in range(4))
    path = tmp_path / "articles.csv"
    path.write_text(f"title,body,publish_at\n{good}Story 4,,{when}\n", encoding="utf-8")
    assert "4 created, 0 updated, 0 skipped as existing, 1 rejected" in import_file(path)

    path.write_text(f"title,body,publish_at\n{good}Story 4,Body 4,{when}\n", encoding="utf-8")
    assert "1 created, 0 updated, 4 skipped as existing, 0 rejected" in import_file(path)
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() == 5,
             timeout=60, message="all five articles published")
    assert "0 created, 0 updated, 5 skipped as existing, 0 rejected" in import_file(path)
    wait_for(lambda: Notification.objects.filter(status=NotificationStatus.SENT).count() == 15,
             timeout=30, message="15 notifications sent")

    time.sleep(2)  # anything sent twice would have arrived by now
    assert Article.objects.count() == 5
    mail = read_mailbox(mailbox)
    assert len(mail) == 15
    assert set(Counter(mail).values()) == {1}, "someone got the same article twice"
    assert {to for to, _ in mail} == {s.email for s in subscribers}


def test_a_dry_run_of_a_large_file_lets_other_writers_through(processes, tmp_path):
    when = f"{timezone.now().year + 1}-03-01T09:00Z"
    path = tmp_path / "large.csv"
    path.write_text("title,body,publish_at\n" + "".join(f"Story {i},Body {i},{when}\n" for i in range(DRY_RUN_ROWS)),
                    encoding="utf-8")
    log = tmp_path / "import.log"
    proc = processes.shell("import", f"python manage.py import_articles {path} --dry-run", ready="checking")
    wait_for(lambda: f"/{DRY_RUN_ROWS}" in log.read_text(errors="replace")
             and not log.read_text(errors="replace").rstrip().endswith(f" 0/{DRY_RUN_ROWS}"),
             timeout=60, message="the dry run to be under way")

    slowest = 0.0
    for i in range(10):
        started = time.monotonic()
        make_article(title=f"Written meanwhile {i}", body="Body")
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.1)
    assert proc.poll() is None, "the dry run ended before the writes: make the file larger"
    assert slowest < 1.0, f"a write waited {slowest:.2f} s for the dry run"

    proc.wait(timeout=300)
    output = log.read_text(errors="replace")
    assert proc.returncode == 0, output[-3000:]
    assert (f"(dry run) would import {DRY_RUN_ROWS} of {DRY_RUN_ROWS} rows ({DRY_RUN_ROWS} scheduled, 0 drafts): "
            f"{DRY_RUN_ROWS} created, 0 updated, 0 skipped as existing, 0 rejected") in output
    assert Article.objects.count() == 10
