"""Probes of the broker (Redis or RabbitMQ alike): does it answer, and what waits in each queue."""

from celery import current_app
from django.conf import settings


def broker_probe(*, timeout: float) -> tuple[bool, str]:
    """(whether the broker answers within `timeout` seconds, what it said). The text of a
    failure names hosts and ports: the public endpoint hides it."""
    try:
        with current_app.connection_for_write(connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:  # kombu raises many types for an unreachable broker
        return False, f"{type(exc).__name__}: {exc}".strip()
    return True, f"{transport} answers"


def queue_depths(*, timeout: float | None = None) -> dict[str, int | None]:
    """Messages waiting (ready, not yet taken by a worker) in each of the product's queues, on
    Redis or RabbitMQ alike (a passive declare). Messages a worker already holds, such as ETA
    tasks, are not counted. Every value is None when the broker does not answer."""
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    timeout = timeout or settings.PUBLISHER_HEALTH_BROKER_TIMEOUT
    depths: dict[str, int | None] = {}
    try:
        with current_app.connection_for_read(connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
            for name in names:
                channel = conn.channel()  # one per queue: RabbitMQ closes a channel on NOT_FOUND
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except conn.channel_errors:
                    depths[name] = 0  # not declared yet (RabbitMQ), or empty (Redis keeps no empty list)
                finally:
                    try:
                        channel.close()
                    except conn.connection_errors + conn.channel_errors:
                        pass
    except Exception:  # kombu raises many types for an unreachable broker
        return {name: None for name in names}
    return depths
