"""Thin Celery entry points for webhooks, on the `webhooks` queue (off the publishing path).

No Celery-level retries: the delivery row carries its own retry schedule (up to 24 h, far past
any broker visibility timeout), and the sweep re-enqueues what a lost message left behind."""

from celery import shared_task

from . import services


@shared_task(name="publisher.webhooks.tasks.deliver", ignore_result=True)
def deliver(delivery_id: str) -> str:
    return services.delivery_attempt(delivery_id=delivery_id).outcome


@shared_task(name="publisher.webhooks.tasks.sweep", ignore_result=True)
def sweep() -> int:
    return services.deliveries_sweep()


@shared_task(name="publisher.webhooks.tasks.enqueue", ignore_result=True)
def enqueue(delivery_ids: list[str]) -> int:
    return services.deliveries_enqueue(delivery_ids=delivery_ids)
