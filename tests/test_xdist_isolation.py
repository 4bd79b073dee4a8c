"""pytest-xdist workers of one tier get a broker and files of their own (settings/test.py), once,
so the subprocesses they start inherit them unchanged."""

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from settings.test import xdist_worker_environment

VAR = Path("/srv/var/test")


def test_without_xdist_nothing_changes():
    environ = {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/15", "MEDIA_ROOT": "/m"}
    xdist_worker_environment(environ, VAR)
    assert environ == {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/15", "MEDIA_ROOT": "/m"}


def test_each_worker_takes_the_redis_db_below_the_urls_and_a_media_root_of_its_own():
    environ = {"PYTEST_XDIST_WORKER": "gw2", "CELERY_BROKER_URL": "redis://:pw@127.0.0.1:6379/15?x=1",
               "MEDIA_ROOT": "/m"}
    xdist_worker_environment(environ, VAR)
    assert environ == {"PYTEST_XDIST_WORKER": "gw2", "CELERY_BROKER_URL": "redis://:pw@127.0.0.1:6379/13?x=1",
                       "MEDIA_ROOT": "/m/gw2", "PUBLISHER_TEST_XDIST_WORKER": "gw2"}
    xdist_worker_environment(environ, VAR)  # a subprocess inherits it: not lowered twice
    assert environ["CELERY_BROKER_URL"] == "redis://:pw@127.0.0.1:6379/13?x=1"
    assert environ["MEDIA_ROOT"] == "/m/gw2"


def test_the_embedded_tier_gives_each_worker_its_own_redis_server():
    environ = {"PYTEST_XDIST_WORKER": "gw1"}
    xdist_worker_environment(environ, VAR)
    assert environ["CELERY_BROKER_URL"] == f"redis+socket://{VAR}/gw1/redis.sock?virtual_host=0"
    assert environ["MEDIA_ROOT"] == f"{VAR}/media/gw1"


def test_a_given_redis_socket_url_lowers_its_virtual_host():
    environ = {"PYTEST_XDIST_WORKER": "gw1", "CELERY_BROKER_URL": "redis+socket:///run/redis.sock?virtual_host=4"}
    xdist_worker_environment(environ, VAR)
    assert environ["CELERY_BROKER_URL"] == "redis+socket:///run/redis.sock?virtual_host=3"


@pytest.mark.parametrize("url, expected", [
    ("amqp://guest:guest@127.0.0.1:5672/ci", "amqp://guest:guest@127.0.0.1:5672/ci_gw1"),
    ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:guest@127.0.0.1:5672/publisher_gw1"),
    ("amqp://guest:guest@127.0.0.1:5672", "amqp://guest:guest@127.0.0.1:5672/publisher_gw1"),
])
def test_on_rabbitmq_each_worker_has_a_vhost_of_its_own(url, expected):
    environ = {"PYTEST_XDIST_WORKER": "gw1", "CELERY_BROKER_URL": url}
    xdist_worker_environment(environ, VAR)
    assert environ["CELERY_BROKER_URL"] == expected


@pytest.mark.parametrize("url, error", [
    ("redis://127.0.0.1:6379/1", "would need Redis DB -1"),
    ("memory://", "needs a Redis or RabbitMQ broker"),
])
def test_a_broker_that_cannot_be_split_is_refused(url, error):
    with pytest.raises(ImproperlyConfigured, match=error):
        xdist_worker_environment({"PYTEST_XDIST_WORKER": "gw2", "CELERY_BROKER_URL": url}, VAR)
