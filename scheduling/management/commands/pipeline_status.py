import json

from django.core.management.base import BaseCommand

from publisher import selectors as publisher_selectors
from scheduling import broker, dashboard


class Command(BaseCommand):
    help = ("Show the publishing pipeline at a glance: articles and notifications by status, the last scan's "
            "age, messages waiting in each broker queue, and the latest failures with their reasons. Read-only.")

    def add_arguments(self, parser):
        parser.add_argument("--failures", type=int, default=5, metavar="N", help="Recent failures to list (5).")
        parser.add_argument("--json", action="store_true", dest="as_json", help="Print it as JSON.")

    def handle(self, *args, failures=5, as_json=False, **options):
        if failures < 0:
            failures = 0
        status = dashboard.pipeline_status(failures=failures)
        depths = broker.queue_depths()
        notifications = publisher_selectors.notification_status_counts()
        scan_age = status.scan.age_seconds
        if as_json:
            self.stdout.write(json.dumps({
                "articles": status.counts,
                "notifications": notifications,
                "scan": {"alive": status.scan.alive, "age_seconds": scan_age,
                         "message": status.scan.message},
                "queues": depths,
                "failures": [{"id": a.pk, "title": a.title, "status": a.status, "reason": a.last_error}
                             for a in status.failures],
                "warnings": status.warnings,
            }, indent=2))
            return
        self._table("articles", [(name, status.counts[name]) for name in dashboard.STATUS_ORDER]
                    + [("total", status.total)])
        self._table("notifications", list(notifications.items()))
        self._table("queue", [(name, "broker does not answer" if depth is None else depth)
                              for name, depth in depths.items()], column="messages waiting")
        age = "never" if scan_age is None else f"{scan_age:.1f} s ago"
        self.stdout.write(f"last scan: {age} ({'ok' if status.scan.alive else 'NOT OK'}) {status.scan.message}")
        for warning in status.warnings:
            self.stdout.write(f"warning: {warning}")
        self._table("recent failures", [(f"#{a.pk} {a.title[:40]}", f"{a.status}: {a.last_error[:100]}")
                                        for a in status.failures] or [("none", "")], column="reason")

    def _table(self, title: str, rows: list[tuple], column: str = "count") -> None:
        width = max([len(str(key)) for key, _ in rows] + [len(title)])
        self.stdout.write(f"{title:<{width}}  {column}")
        self.stdout.write(f"{'-' * width}  {'-' * len(column)}")
        for key, value in rows:
            self.stdout.write(f"{str(key):<{width}}  {value}")
        self.stdout.write("")
