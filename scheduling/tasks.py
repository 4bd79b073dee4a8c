from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


@shared_task(name="scheduling.tasks.scan", bind=True, ignore_result=True,
             autoretry_for=(OperationalError, InterfaceError), max_retries=2, retry_backoff=1, retry_jitter=True)
def scan(self) -> dict:
    summary = services.scan_run()
    if summary["more"]:
        # Bounded batches: more is due than one scan claims; go again now instead of waiting.
        self.apply_async(queue="scan")
    return summary
