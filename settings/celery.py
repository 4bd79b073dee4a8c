"""The Celery app: `celery -A settings worker` / `celery -A settings beat`.

Configuration comes from Django settings (CELERY_* names); tasks are found in each app's tasks.py.
"""

import os

from celery import Celery, Task
from celery.app.amqp import AMQP
from celery.exceptions import InvalidTaskError
from celery.worker.strategy import default as default_strategy
from kombu import Connection

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


class BrokerConnection(Connection):
    """kombu's Connection, except that collect() also forgets the default channel.

    When the broker drops, the worker's consumer calls collect() and then close() on the old
    connection. With kombu 5.7.0's Redis transport, collect() fails to close a channel that still
    holds unacknowledged messages (ETA messages of look-ahead dispatch: Redis is gone, so they
    cannot be restored), then detaches the transport from the connection; close() meets the same
    half-closed channel again, its restore reads the detached transport's broker URL, and the
    AttributeError ('NoneType' object has no attribute 'hostname') stops the worker for good
    ("Unrecoverable error", exit 1). After collect() the channel is garbage: the messages it held
    stay in Redis's unacked set (restored after the visibility timeout) or, if Redis lost them,
    the lease and the sweeper re-dispatch their articles."""

    def collect(self, socket_timeout=None):
        super().collect(socket_timeout=socket_timeout)
        self._default_channel = None


class PublisherAMQP(AMQP):
    Connection = BrokerConnection


app = Celery("publisher", task_cls=GuardedTask, amqp=PublisherAMQP)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
