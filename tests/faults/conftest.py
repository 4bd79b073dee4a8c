"""The fault suite: real `celery worker` / `celery beat` subprocesses (the `processes` fixture),
a short lease so recovery takes seconds (`short_lease`), and private servers a fault can kill
(`private_redis`, `private_postgres`): tests/fixtures/servers.py, tests/support/servers.py.
Rows that need Redis itself (a private redis-server killed or restarted) are marked `redis_only`;
the rest also run on the PostgreSQL + RabbitMQ tier of ./scripts/test."""

from pathlib import Path

import pytest

from tests.support.brokers import flush_broker


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def empty_broker(broker):
    """Each row starts with an empty broker: a scan or chain an earlier test left queued must not
    claim this row's articles before its fault is injected."""
    flush_broker(broker)
