from celery.signals import task_prerun
from django.apps import AppConfig
from django.db import close_old_connections


def _close_old_connections_before_task(sender=None, **kwargs):
    """A task starts as a request does: database connections past CONN_MAX_AGE, or broken by an
    error, are closed, and the others are health-checked (CONN_HEALTH_CHECKS) before their
    first query, so a connection the database dropped while the worker idled is replaced, never
    used (Celery's own per-task close is off: CELERY_DB_REUSE_MAX in settings). Not for an
    eager call (a unit test inside a transaction)."""
    if sender is not None and getattr(sender.request, "is_eager", False):
        return
    close_old_connections()


class PublisherConfig(AppConfig):
    name = "publisher"
    verbose_name = "Publishing"

    def ready(self):
        from django.conf import settings
        from PIL import Image

        from . import checks  # noqa: F401  (registers the system checks)

        task_prerun.connect(_close_old_connections_before_task, weak=False,
                            dispatch_uid="publisher.close_old_connections_before_task")

        # Pillow warns past this many pixels and refuses twice as many, wherever it opens an
        # image (Django's ImageField included); the pipeline turns the warning into an error.
        Image.MAX_IMAGE_PIXELS = settings.PUBLISHER_MAX_IMAGE_PIXELS
