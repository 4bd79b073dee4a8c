"""Enqueueing the periodic jobs by task name, so services and beat can send them without
importing the tasks that call the services (no import circle)."""

from celery import signature

DAILY_REPORT = "scheduling.tasks.daily_report"


def daily_report(*, catch_up: bool = False) -> None:
    signature(DAILY_REPORT, kwargs={"catch_up": catch_up}, queue="scan").apply_async()
