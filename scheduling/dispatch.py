"""Enqueueing the periodic jobs by task name, so services and beat can send them without
importing the tasks that call the services (no import circle)."""

from celery import signature

DAILY_REPORT = "scheduling.tasks.daily_report"


def daily_report(*, catch_up: bool = False) -> None:
    # ignore_result: see publisher/dispatch.py (no result subscription from a sending process).
    signature(DAILY_REPORT, kwargs={"catch_up": catch_up}, queue="scan", ignore_result=True).apply_async()
