"""Tests: a SQLite file (or DATABASE_URL) and the broker given by the environment, else the
embedded Redis under var/test/, which the test suite starts itself."""

import os
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured

from .env import VAR_DIR, embedded_redis_url, env_str

TEST_VAR_DIR = VAR_DIR / "test"


def xdist_worker_environment(environ=os.environ, var_dir=TEST_VAR_DIR) -> None:
    """pytest-xdist (`-n N`) runs one tier's tests in N processes, gw0 ... gw<N-1>
    (PYTEST_XDIST_WORKER), each starting real worker and beat subprocesses, so each needs a broker
    and files of its own. Worker gw<i> gets:
    - the broker: CELERY_BROKER_URL's Redis DB number minus i (redis://h:6379/15: gw0 15, gw1 14 ...),
      or, with no CELERY_BROKER_URL, an embedded Redis of its own on var/test/gw<i>/redis.sock,
      or on RabbitMQ the vhost of amqp_worker_vhost (which must exist);
    - MEDIA_ROOT + /gw<i> (default var/test/gw<i>/media);
    - its test database: pytest-django appends _gw<i> to its name (PostgreSQL and SQLite alike).
    The values are written to the environment once (PUBLISHER_TEST_XDIST_WORKER marks it done), so
    the subprocesses the tests start inherit them as they are. Without xdist nothing changes."""
    worker = environ.get("PYTEST_XDIST_WORKER", "")
    if not worker or environ.get("PUBLISHER_TEST_XDIST_WORKER") == worker:
        return
    index = int(worker.removeprefix("gw"))
    url = environ.get("CELERY_BROKER_URL") or embedded_redis_url(var_dir / worker)
    parts = urlsplit(url)
    if parts.scheme in ("redis", "rediss"):
        base = int(parts.path.strip("/") or 0)
        url = urlunsplit(parts._replace(path=f"/{_worker_db(base, index, url)}"))
    elif parts.scheme == "redis+socket" and environ.get("CELERY_BROKER_URL"):
        query = dict(parse_qsl(parts.query))
        query["virtual_host"] = str(_worker_db(int(query.get("virtual_host", 0)), index, url))
        url = f"{url.split('?', 1)[0]}?{urlencode(query)}"  # urlunsplit would drop the empty host's //
    elif parts.scheme in ("amqp", "amqps", "pyamqp"):
        url = urlunsplit(parts._replace(path="/" + quote(amqp_worker_vhost(url, worker), safe="")))
    elif parts.scheme != "redis+socket":
        raise ImproperlyConfigured(f"pytest -n (xdist) needs a Redis or RabbitMQ broker; got {url!r}")
    environ["CELERY_BROKER_URL"] = url
    environ["MEDIA_ROOT"] = f"{environ.get('MEDIA_ROOT') or var_dir / 'media'}/{worker}"
    environ["PUBLISHER_TEST_XDIST_WORKER"] = worker


def amqp_worker_vhost(url: str, worker: str) -> str:
    """The RabbitMQ vhost of one xdist worker: the URL's vhost + _gw<i> (`publisher_gw<i>` for
    the default vhost /). It must exist: ./scripts/test creates it (scripts/rabbitmq_vhosts.py)."""
    vhost = unquote(urlsplit(url).path[1:])
    return f"{vhost if vhost not in ('', '/') else 'publisher'}_{worker}"


def _worker_db(base: int, index: int, url: str) -> int:
    if base - index < 0:
        raise ImproperlyConfigured(f"pytest -n: worker {index} would need Redis DB {base - index} below {url!r}'s "
                                   "DB number: give the broker a higher DB number or run fewer workers")
    return base - index


xdist_worker_environment()

from .base import *  # noqa: E402,F401,F403
from .env import broker_url_from_env, database_from_env, env_float, result_backend_from_env  # noqa: E402

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
# The pre-flight (docs/preflight.md) is off unless a test turns it on (its own tests, through
# `settings` or the worker's environment): the other tests count each article's events and tasks.
PUBLISHER_PREFLIGHT_MINUTES = env_float("PUBLISHER_PREFLIGHT_MINUTES", 0.0, minimum=0.0)
