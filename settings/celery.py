"""The Celery app: `celery -A settings worker` / `celery -A settings beat`.

Configuration comes from Django settings (CELERY_* names); tasks are found in each app's tasks.py.
"""

import os

from celery import Celery, Task
from celery.exceptions import InvalidTaskError
from celery.worker.strategy import default as default_strategy

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")


def rejecting_malformed_messages(task, app, consumer, **kwargs):
    """Celery's default strategy, except that a message whose body is not a task call
    ((args, kwargs, embed)) is rejected as invalid: logged and dropped. Celery lets the error
    escape the consumer, so the worker stops and gives the message back to the broker, and every
    worker that starts meets it again: one bad message would stop publishing everywhere."""
    handle = default_strategy(task, app, consumer, **kwargs)

    def task_message_handler(message, body, ack, reject, callbacks, **options):
        try:
            return handle(message, body, ack, reject, callbacks, **options)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InvalidTaskError(f"malformed {task.name} message: {exc!r}") from exc

    return task_message_handler


class GuardedTask(Task):
    Strategy = "settings.celery:rejecting_malformed_messages"


app = Celery("publisher", task_cls=GuardedTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
