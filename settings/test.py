"""Tests: a SQLite file (or DATABASE_URL) and the broker given by the environment, else the
embedded Redis under var/test/, which the test suite starts itself."""

from .base import *  # noqa: F401,F403
from .env import (VAR_DIR, broker_url_from_env, database_from_env, embedded_redis_url, env_str,
                  result_backend_from_env)

TEST_VAR_DIR = VAR_DIR / "test"

DATABASES = {"default": database_from_env(f"sqlite:///{TEST_VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Worker subprocesses must see the test's data, so the test database is a file too.
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_VAR_DIR / "test-db.sqlite3")}
elif env_str("PUBLISHER_TEST_DB_NAME"):
    # Lets two test runs share one PostgreSQL server without dropping each other's database.
    DATABASES["default"]["TEST"] = {"NAME": env_str("PUBLISHER_TEST_DB_NAME")}

CELERY_BROKER_URL = broker_url_from_env(embedded_redis_url(TEST_VAR_DIR))
CELERY_RESULT_BACKEND = result_backend_from_env(CELERY_BROKER_URL)

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
MEDIA_ROOT = env_str("MEDIA_ROOT", str(TEST_VAR_DIR / "media"))

# Lets the real-process tests inject faults into workers (publisher/faults.py).
PUBLISHER_FAULTS_ENABLED = True
