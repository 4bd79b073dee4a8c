"""Production: every secret and address from the environment, no silent fallbacks."""

from .base import *  # noqa: F401,F403
from .env import (broker_url_from_env, caches_from_env, database_from_env, env_bool, env_int, env_list, env_str,
                  result_backend_from_env)

SECRET_KEY = env_str("DJANGO_SECRET_KEY", required=True)
if len(SECRET_KEY) < 50 or SECRET_KEY.startswith("django-insecure"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be a random string of at least 50 characters.")
DEBUG = False
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", [])

DATABASES = {"default": database_from_env("", required=True)}
CELERY_BROKER_URL = broker_url_from_env(None)
CELERY_RESULT_BACKEND = result_backend_from_env(CELERY_BROKER_URL)
# One cache shared by every web process (the public pages and their invalidation): CACHE_URL,
# else the broker's Redis when the broker is Redis.
CACHES = caches_from_env(CELERY_BROKER_URL if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else None)

# HTTPS. The proxy in front says the request came over TLS with X-Forwarded-Proto (it must set
# or strip that header: a client must not be able to forge it).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# The same proxy appends the client's address to X-Forwarded-For (the subscribe form's
# per-client limit counts readers, not the proxy).
PUBLISHER_PROXY_COUNT = env_int("PUBLISHER_PROXY_COUNT", 1, minimum=0)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Probes call /health/ on the pod over plain HTTP: a redirect (3xx) would count as healthy
# whatever the checks say, so health answers 200/503 itself.
SECURE_REDIRECT_EXEMPT = [r"^health/$"]
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Where the TLS proxy itself redirects to HTTPS or sends HSTS, turning ours off (=0) is a
# decision, not an oversight: `check --deploy` does not warn about it then.
SILENCED_SYSTEM_CHECKS = [check for check, ours_off in (("security.W008", not SECURE_SSL_REDIRECT),
                                                        ("security.W004", not SECURE_HSTS_SECONDS)) if ours_off]

# Mail leaves through the SMTP server given by EMAIL_HOST and friends (settings/base.py).
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")

# /metrics/ needs PUBLISHER_METRICS_TOKEN in production unless opened on purpose.
PUBLISHER_METRICS_OPEN = env_bool("PUBLISHER_METRICS_OPEN", False)

# Static files (the admin's CSS and JS) served by the web process itself: WhiteNoise, right after
# SecurityMiddleware, from STATIC_ROOT as filled by `manage.py collectstatic` (compressed, with
# hashed names cached forever). No separate file server needed; a CDN may sit in front.
MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]  # noqa: F405
STATIC_ROOT = env_str("STATIC_ROOT", str(STATIC_ROOT))  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
