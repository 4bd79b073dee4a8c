"""PUBLISHER_SITE_URL and CACHE_URL, parsed strictly; production needs the site URL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from settings.env import caches_from_env, env_site_url

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("raw, expected", [
    ("", ""), ("https://news.example.com", "https://news.example.com"),
    ("https://news.example.com/", "https://news.example.com"),
    ("http://127.0.0.1:8000/site/", "http://127.0.0.1:8000/site"),
])
def test_site_url_is_normalised(monkeypatch, raw, expected):
    monkeypatch.setenv("PUBLISHER_SITE_URL", raw)
    assert env_site_url("PUBLISHER_SITE_URL") == expected


@pytest.mark.parametrize("raw, message", [
    ("news.example.com", "absolute http:// or https:// URL"),
    ("ftp://news.example.com", "absolute http:// or https:// URL"),
    ("https://", "absolute http:// or https:// URL"),
    ("https://news.example.com/?a=1", "no query, fragment or credentials"),
    ("https://user:pw@news.example.com", "no query, fragment or credentials"),
    ("https://news.example.com:99999", "not a valid URL"),
])
def test_a_bad_site_url_is_refused_with_the_reason(monkeypatch, raw, message):
    monkeypatch.setenv("PUBLISHER_SITE_URL", raw)
    with pytest.raises(ImproperlyConfigured, match=message):
        env_site_url("PUBLISHER_SITE_URL")


def test_cache_url_chooses_the_backend(monkeypatch):
    monkeypatch.delenv("CACHE_URL", raising=False)
    assert caches_from_env(None)["default"]["BACKEND"].endswith("LocMemCache")
    redis = caches_from_env("redis://127.0.0.1:6379/0")["default"]
    assert (redis["BACKEND"], redis["LOCATION"]) == ("django.core.cache.backends.redis.RedisCache",
                                                     "redis://127.0.0.1:6379/0")
    socket = caches_from_env("redis+socket:///tmp/r.sock?virtual_host=3")["default"]
    assert socket["LOCATION"] == "unix:///tmp/r.sock?db=3"
    monkeypatch.setenv("CACHE_URL", "rediss://cache.example.com:6380/1")
    assert caches_from_env("redis://127.0.0.1:6379/0")["default"]["LOCATION"] == "rediss://cache.example.com:6380/1"
    monkeypatch.setenv("CACHE_URL", "memcached://127.0.0.1:11211")
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'memcached'"):
        caches_from_env(None)


@pytest.mark.one_tier
def test_check_deploy_requires_the_site_url_with_a_clear_message():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "PUBLISHER_", "DATABASE_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "settings.prod", "DJANGO_ALLOWED_HOSTS": "news.example.com",
                "DJANGO_SECRET_KEY": "s" * 20 + "-production-like-secret-key-0123456789-abcdefghij",
                "DATABASE_URL": "postgres://publisher@127.0.0.1:1/publisher",
                "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"})
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "publisher.E010" in result.stderr and "PUBLISHER_SITE_URL is not set" in result.stderr
