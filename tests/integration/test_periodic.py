"""The periodic operations with real `celery beat` and `celery worker` processes: admin edits
reach a running beat, two beats catch up missed reports once, health follows beat stopping and
starting, a late send message after expiry sends nothing, and the standby lock hands over."""

import signal
from collections import Counter
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from publisher import dispatch
from publisher.models import Article, ArticleStatus, Notification, NotificationStatus
from publisher.selectors import local_day_bounds
from scheduling import schedules
from scheduling.health import health_check
from scheduling.models import DailyReport, Heartbeat, ReportEmailStatus, ReportSubscription
from scheduling.selectors import site_zone
from tests.factories import make_article, make_subscriber
from tests.support.mail import read_mailbox
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration


class _Form(HTMLParser):
    """The fields of the first <form> on an admin page with the values a browser would submit."""

    def __init__(self):
        super().__init__()
        self.data: dict[str, str] = {}
        self._select = self._textarea = None
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id", "").endswith("_form"):
            self._in_form = True
        if not self._in_form:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in ("submit", "button"):
            if attrs.get("type") in ("checkbox", "radio"):
                if "checked" in attrs:
                    self.data[name] = attrs.get("value", "on")
            else:
                self.data[name] = attrs.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in attrs:
            self.data[self._select] = attrs.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data


def submit_change_form(client, url: str, **changes) -> None:
    form = _Form()
    form.feed(client.get(url).content.decode())
    response = client.post(url, {**form.data, **changes})
    assert response.status_code == 302, response.content.decode()[-3000:]


def test_admin_edits_reach_a_running_beat_without_a_restart(processes, admin_client, settings):
    call_command("sync_schedules")
    every_second = IntervalSchedule.objects.get(every=1, period=IntervalSchedule.SECONDS)  # the scan's
    expiry = PeriodicTask.objects.get(name=schedules.NOTIFICATION_EXPIRY)
    expiry.interval = every_second
    expiry.enabled = False
    expiry.save()
    processes.worker()
    beat = processes.beat()
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=60, message="the first scan")
    assert not Heartbeat.objects.filter(name__in=["cleanup", "notification-expiry"]).exists()

    # An operator changes the cleanup job from every 6 hours to every second, in the change form...
    cleanup = PeriodicTask.objects.get(name=schedules.CLEANUP)
    submit_change_form(admin_client, reverse("admin:django_celery_beat_periodictask_change", args=[cleanup.pk]),
                       interval=str(every_second.pk))
    # ...and switches the expiry job on with the list action.
    response = admin_client.post(reverse("admin:django_celery_beat_periodictask_changelist"),
                                 {"action": "enable_tasks", "_selected_action": [expiry.pk]})
    assert response.status_code == 302

    wait_for(lambda: Heartbeat.objects.filter(name="cleanup").exists(), timeout=60, message="the edited cleanup job")
    wait_for(lambda: Heartbeat.objects.filter(name="notification-expiry").exists(), timeout=60,
             message="the enabled expiry job")
    assert beat.poll() is None, "beat was restarted"
    assert "Schedule changed" in processes.log("beat")


def _published(title: str, at) -> Article:
    return make_article(title=title, body="b", status=ArticleStatus.PUBLISHED,
                        publish_at=at - timedelta(seconds=2), published_at=at)


def test_two_beats_catch_up_missed_reports_once_each(processes, mailbox, django_user_model, settings):
    settings.PUBLISHER_REPORT_AT = "00:00"  # yesterday is due whatever time the test runs
    call_command("sync_schedules")
    zone = site_zone()
    today = timezone.localdate()
    for days_ago in range(9, 21):  # reports up to 9 days ago: then everything stopped
        day = today - timedelta(days=days_ago)
        start, end = local_day_bounds(day=day, zone=zone)
        DailyReport.objects.create(date=day, time_zone=zone.key, window_start=start, window_end=end, built_at=end,
                                   email_status=ReportEmailStatus.SENT)
    missed = [today - timedelta(days=d) for d in range(8, 0, -1)]  # 8 days: more than one run's batch (7)
    for n, day in ((3, missed[-3]), (2, missed[-1])):
        start, _ = local_day_bounds(day=day, zone=zone)
        for i in range(n):
            _published(f"Story {day} {i}", start + timedelta(hours=10, minutes=i))
    recipients = []
    for name in ("ops", "lead"):
        user = django_user_model.objects.create_user(name, f"{name}@example.com", is_staff=True)
        ReportSubscription.objects.create(user=user)
        recipients.append(user.email)

    # Both beats start while no worker runs, so both catch-ups are surely in the queue together.
    processes.beat("beat-1")
    processes.beat("beat-2")
    for name in ("beat-1", "beat-2"):
        wait_for(lambda n=name: "sent the daily report catch-up" in processes.log(n), timeout=30,
                 message=f"{name}'s catch-up")
    processes.worker(concurrency=2)

    def done():
        rows = DailyReport.objects.filter(date__in=missed)
        return rows.count() == len(missed) and not rows.exclude(email_status=ReportEmailStatus.SENT).exists()

    wait_for(done, timeout=90, message="the missed days' reports built and mailed")
    # Let every report task the two catch-ups started (and re-enqueued) finish before counting mail.
    wait_for(lambda: _report_tasks_settled(processes.log("worker")), timeout=60, message="every report task to finish")

    assert DailyReport.objects.count() == 12 + len(missed)
    counts = dict(DailyReport.objects.filter(date__in=missed).values_list("date", "articles_published"))
    assert counts[missed[-3]] == 3 and counts[missed[-1]] == 2 and sum(counts.values()) == 5
    mail = read_mailbox(mailbox)
    assert len(mail) == len(missed) * len(recipients), Counter(mail)
    assert set(Counter(mail).values()) == {1}, "a report was mailed twice"
    assert {to for to, _ in mail} == set(recipients)


def _report_tasks_settled(log: str) -> bool:
    lines = [line for line in log.splitlines() if "Task scheduling.tasks.daily_report[" in line]
    received = sum(line.endswith("] received") for line in lines)
    finished = sum("] succeeded in " in line or "] raised " in line for line in lines)
    return received >= 2 and received == finished


def test_health_fails_when_beat_stops_and_passes_when_it_restarts(processes, client, settings):
    settings.PUBLISHER_HEALTH_SCAN_MAX_AGE = 3  # this process judges; the scan runs every second
    call_command("sync_schedules")
    processes.worker()
    processes.beat("beat")

    wait_for(lambda: health_check().healthy, timeout=60, message="healthy with beat and a worker up")
    call_command("health")
    assert client.get("/health/").status_code == 200

    processes.stop("beat")
    wait_for(lambda: not health_check().healthy, timeout=30, message="unhealthy once beat stopped")
    with pytest.raises(CommandError, match="unhealthy: scan"):
        call_command("health")
    response = client.get("/health/")
    assert response.status_code == 503
    assert [c["name"] for c in response.json()["checks"] if c["required"] and not c["ok"]] == ["scan"]

    processes.beat("beat-again")
    wait_for(lambda: health_check().healthy, timeout=60, message="healthy again after beat restarted")
    call_command("health")
    assert client.get("/health/").status_code == 200


def test_a_send_message_delivered_after_expiry_sends_nothing(processes, mailbox, settings):
    settings.PUBLISHER_EXPIRY_INTERVAL = 1
    call_command("sync_schedules")
    article = _published("Old news", timezone.now() - timedelta(hours=25))
    other = _published("Other news", timezone.now() - timedelta(hours=25))
    subscribers = [make_subscriber(f"reader{i}@example.com") for i in range(3)]
    expired_at = timezone.now() - timedelta(minutes=1)
    for subscriber in subscribers:
        Notification.objects.create(article=article, subscriber=subscriber, expires_at=expired_at)
        Notification.objects.create(article=other, subscriber=subscriber, expires_at=expired_at)
    # The send message went to the broker while every worker was down.
    dispatch.send_notifications(article_id=article.pk, first_subscriber_id=subscribers[0].pk,
                                last_subscriber_id=subscribers[-1].pk)

    processes.worker()
    processes.beat()

    wait_for(lambda: not Notification.objects.filter(status=NotificationStatus.PENDING).exists(), timeout=60,
             message="every late notification expired")
    wait_for(lambda: "publisher.tasks.send_notifications" in processes.log("worker")
             and "succeeded" in processes.log("worker"), timeout=30, message="the late send message to run")
    wait_for(lambda: Heartbeat.objects.filter(name="notification-expiry").exists(), timeout=30,
             message="the expiry job")
    assert set(Notification.objects.values_list("status", flat=True)) == {NotificationStatus.EXPIRED}
    assert read_mailbox(mailbox) == []


def test_with_the_lock_a_standby_beat_sends_nothing_until_the_active_one_stops(processes):
    call_command("sync_schedules")
    lock = {"PUBLISHER_BEAT_LOCK": "1", "PUBLISHER_BEAT_LOCK_TTL": "5"}
    processes.worker()
    active = processes.beat("beat-active", **lock)
    wait_for(lambda: "holds the lock" in processes.log("beat-active"), timeout=30, message="the first beat to lead")
    standby = processes.beat("beat-standby", **lock)
    wait_for(lambda: f":{standby.pid}:" in getattr(Heartbeat.objects.filter(name="beat-standby").first(), "detail",
                                                    {}).get("owner", ""),
             timeout=30, message="the second beat standing by")
    wait_for(lambda: Heartbeat.objects.filter(name="scan").exists(), timeout=30, message="scans from the active beat")
    assert "Sending due task" in processes.log("beat-active")
    assert "Sending due task" not in processes.log("beat-standby")
    assert "holds the lock" not in processes.log("beat-standby")

    processes.stop("beat-active", signal.SIGTERM)
    assert active.returncode is not None
    wait_for(lambda: "holds the lock" in processes.log("beat-standby"), timeout=30, message="the standby to take over")
    last_scan = Heartbeat.objects.get(name="scan").last_seen_at
    wait_for(lambda: Heartbeat.objects.get(name="scan").last_seen_at > last_scan, timeout=30,
             message="scans from the beat that took over")
    assert "Sending due task" in processes.log("beat-standby")
