"""The Celery app: `celery -A settings worker` / `celery -A settings beat`.

Configuration comes from Django settings (CELERY_* names); tasks are found in each app's tasks.py.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = Celery("publisher")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
