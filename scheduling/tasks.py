"""Thin Celery entry points for the periodic jobs: each calls one service. A job that hit its
batch cap re-enqueues itself instead of holding a worker. Retries only on database connection
trouble (bounded); everything else a job meets is a bug to see in the logs, not to loop on."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import reports, services

RETRY_POLICY = {
    "bind": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "max_retries": 2,
    "retry_backoff": 1,
    "retry_jitter": True,
}


@shared_task(name="scheduling.tasks.scan", **RETRY_POLICY)
def scan(self) -> dict:
    summary = services.scan_run()
    if summary["more"]:
        # Bounded batches: more is due than one scan claims; go again now instead of waiting.
        self.apply_async(queue="scan")
    return summary


@shared_task(name="scheduling.tasks.expire_notifications", **RETRY_POLICY)
def expire_notifications(self) -> dict:
    return services.notifications_expiry_run()


@shared_task(name="scheduling.tasks.cleanup", **RETRY_POLICY)
def cleanup(self) -> dict:
    result = services.cleanup_run()
    if result.more:
        self.apply_async(queue="scan")
    return result.as_dict()


@shared_task(name="scheduling.tasks.daily_report", **RETRY_POLICY)
def daily_report(self, catch_up: bool = False) -> dict:
    summary = reports.daily_reports_run(catch_up=catch_up)
    if summary["more"]:
        self.apply_async(kwargs={"catch_up": catch_up}, queue="scan")
    return summary
