"""Rows 9-10: more than one of something that should be one: two beats, eight scans at once."""

from datetime import timedelta

from django.core.management import call_command
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from scheduling.services import scan_run
from tests.factories import make_subscribers, schedule_batch
from tests.support.concurrency import run_concurrently
from tests.support.waiting import wait_for
from tests.support.invariants import assert_invariants, notifications_done, settled

# --- 9 -------------------------------------------------------------------------------------

def test_two_beats_and_two_workers_publish_each_article_once(processes, mailbox):
    subscribers = make_subscribers(3, "pair")
    now = timezone.now()
    schedule_batch([f"Pair past {i}" for i in range(3)], now - timedelta(seconds=1))
    schedule_batch([f"Pair soon {i}" for i in range(3)], now + timedelta(seconds=3))  # within the look-ahead
    schedule_batch([f"Pair later {i}" for i in range(3)], now + timedelta(seconds=8))  # a later scan's
    call_command("sync_schedules")

    processes.worker("worker-a")
    processes.worker("worker-b")
    processes.beat("beat-a")
    processes.beat("beat-b")

    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() == 9,
             timeout=60, message="all 9 articles published")
    wait_for(notifications_done(9 * len(subscribers)), timeout=30, message="27 notifications")

    # Both beats really were sending scans (waited for: on a loaded machine the second beat may
    # start late and have sent only one scan by the time the first nine went out).
    for beat in ("beat-a", "beat-b"):
        wait_for(lambda: processes.log(beat).count("Sending due task publisher: scan for due articles") >= 2,
                 timeout=30, message=f"{beat} to send two scans")
    assert Article.objects.filter(attempts=1).count() == 9
    assert_invariants(processes, mailbox, subscribers=subscribers)


# --- 10 ------------------------------------------------------------------------------------

def test_eight_concurrent_scans_on_the_same_due_set(processes, mailbox):
    subscribers = make_subscribers(2, "scans")
    schedule_batch([f"Contended {i}" for i in range(12)], timezone.now() - timedelta(seconds=1))
    results = run_concurrently(scan_run, 8)  # no beat, no worker yet: only these scans claim
    assert sum(r["claimed"] for r in results) == 12, results  # each article claimed by exactly one scan
    processes.worker()

    wait_for(settled, timeout=60, message="the claimed articles to be published")
    wait_for(notifications_done(12 * len(subscribers)), timeout=30, message="notifications")
    assert set(Article.objects.values_list("attempts", flat=True)) == {1}
    assert_invariants(processes, mailbox, subscribers=subscribers)
