"""A real worker mailing through a real SMTP server (tests/support/smtp_server.py) that drops
the connection mid-batch: the send task retries by itself, and the counts are exact."""

from django.core.management import call_command

from publisher import services
from publisher.models import Notification, NotificationStatus
from tests.factories import make_article, make_subscriber
from tests.support.invariants import task_logged
from tests.support.smtp_server import SmtpServer
from tests.support.waiting import wait_for


def test_a_dropped_connection_mid_batch_the_task_retries_and_no_one_is_mailed_twice(processes, tmp_path):
    server = SmtpServer(tmp_path / "smtp", drop_after=2).start()
    try:
        addresses = [f"{name}@example.com" for name in "abcde"]
        for address in addresses:
            make_subscriber(address)
        call_command("sync_schedules")
        processes.worker(**server.env())
        article = make_article(title="Over SMTP", body="Body.")
        services.article_publish_now(article_id=article.pk)

        wait_for(lambda: not Notification.objects.filter(
            status__in=[NotificationStatus.PENDING, NotificationStatus.SENDING]).exists()
            and Notification.objects.count() == 5, timeout=60, message="every notification sent or failed")
        rows = dict(Notification.objects.values_list("subscriber__email", "status"))
        # a, b accepted; c on the wire when the server dropped the connection (in doubt: failed,
        # never sent again); d, e sent by the task's own retry.
        assert rows == {"a@example.com": "sent", "b@example.com": "sent", "c@example.com": "failed",
                        "d@example.com": "sent", "e@example.com": "sent"}
        assert server.recipients() == ["a@example.com", "b@example.com", "d@example.com", "e@example.com"]
        assert task_logged(processes, "publisher.tasks.send_notifications", "retry") == 1
        assert Notification.objects.get(subscriber__email="c@example.com").last_error.startswith("In doubt")
    finally:
        server.stop()
