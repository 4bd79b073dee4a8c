"""Settings read from the environment: the result backend on RabbitMQ, production start-up
(WhiteNoise, `check --deploy`), optional Sentry, and the RabbitMQ timing check."""

import importlib.util
import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from publisher.checks import pipeline_settings
from settings.env import result_backend_from_env
from tests.support import production

# The production environment of tests/support/production.py, on RabbitMQ (its checks differ).
PROD_ENV = {**production.PROD_ENV, "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//"}


def manage(*args, **env) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "SENTRY_", "DATABASE_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=production.ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("broker, backend, expected", [
    ("redis://127.0.0.1:6379/0", None, "redis://127.0.0.1:6379/0"),
    ("amqp://guest:guest@127.0.0.1:5672//", None, None),
    ("amqp://guest:guest@127.0.0.1:5672//", "redis://cache:6379/1", "redis://cache:6379/1"),
])
def test_result_backend_defaults_to_redis_brokers_only(monkeypatch, broker, backend, expected):
    if backend:
        monkeypatch.setenv("CELERY_RESULT_BACKEND", backend)
    else:
        monkeypatch.delenv("CELERY_RESULT_BACKEND", raising=False)
    assert result_backend_from_env(broker) == expected


@pytest.mark.parametrize("backend", ["amqp://guest@mq//", "rpc://"])
def test_a_broker_as_result_backend_is_refused_with_the_reason(monkeypatch, backend):
    monkeypatch.setenv("CELERY_RESULT_BACKEND", backend)
    with pytest.raises(ImproperlyConfigured, match="is a message broker, not a result store"):
        result_backend_from_env("amqp://guest:guest@127.0.0.1:5672//")


@pytest.mark.one_tier
def test_production_settings_pass_check_deploy_and_collect_static_for_whitenoise(tmp_path):
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PROD_ENV, STATIC_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    result = manage("collectstatic", "--no-input", **PROD_ENV, STATIC_ROOT=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "staticfiles.json").exists()  # the manifest WhiteNoise serves hashed names from
    assert list(tmp_path.glob("admin/css/base.*.css.gz"))  # compressed copies


@pytest.mark.one_tier
def test_sentry_dsn_without_the_package_fails_at_start_with_the_fix():
    if importlib.util.find_spec("sentry_sdk"):
        pytest.skip("sentry-sdk is installed here")
    result = manage("check", **PROD_ENV, SENTRY_DSN="https://key@sentry.example.com/1")
    assert result.returncode != 0
    assert "SENTRY_DSN is set but sentry-sdk is not installed: pip install sentry-sdk==" in result.stderr


def test_eta_longer_than_rabbitmqs_consumer_timeout_is_an_error(settings):
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
    assert "publisher.E004" not in [p.id for p in pipeline_settings(None)]
    settings.PUBLISHER_RABBITMQ_CONSUMER_TIMEOUT = 15
    settings.PUBLISHER_LOOKAHEAD = 20
    assert "publisher.E004" in [p.id for p in pipeline_settings(None)]
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    assert "publisher.E004" not in [p.id for p in pipeline_settings(None)]
