"""The production settings run as a deployment would, in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROD_ENV = {
    "DJANGO_SETTINGS_MODULE": "settings.prod",
    "DJANGO_SECRET_KEY": "k" * 20 + "-production-like-secret-key-0123456789-abcdefghij",
    "DJANGO_ALLOWED_HOSTS": "publisher.example.com",
    # Nothing answers on port 1: a request that needs them fails at once instead of hanging.
    "DATABASE_URL": "postgres://publisher:secret@127.0.0.1:1/publisher",
    "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
    "PUBLISHER_SITE_URL": "https://publisher.example.com",
}


def run_prod(argv: list[str], **overrides) -> subprocess.CompletedProcess:
    """`python <argv>` with the production settings and PROD_ENV (`None` unsets a variable)."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in PROD_ENV and not k.startswith(("CELERY_", "DJANGO_", "PUBLISHER_", "EMAIL_"))}
    environment.update({k: v for k, v in {**PROD_ENV, **overrides}.items() if v is not None})
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=120)
