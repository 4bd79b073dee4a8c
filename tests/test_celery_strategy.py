"""The malformed-message guard (settings/celery.py: `rejecting_malformed_messages`): a message
whose body is not a task call ((args, kwargs, embed)) is rejected as invalid — which the worker's
consumer logs and drops — instead of an error escaping the consumer and stopping the worker.

The real strategy, built by Celery from the task's `Strategy`, on real kombu messages sent
through kombu's in-memory transport with the headers a Celery producer writes (protocol 2).
The fault suite's row 15 (tests/faults/test_broker.py) sends the same bodies to a real worker."""

import uuid
from types import SimpleNamespace

import pytest
from celery.concurrency.solo import TaskPool
from celery.exceptions import InvalidTaskError
from celery.worker import state as worker_state
from kombu import Connection, Message
from kombu.asynchronous.timer import Timer

import publisher.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)
import scheduling.tasks  # noqa: F401
from settings.celery import GuardedTask, app, rejecting_malformed_messages

TASK = "publisher.tasks.make_live"


def headers(task: str = TASK) -> dict:
    return {"lang": "py", "task": task, "id": str(uuid.uuid4()), "root_id": None, "parent_id": None,
            "group": None, "retries": 0, "eta": None, "expires": None, "argsrepr": "", "kwargsrepr": ""}


class Handled(list):
    """What the strategy handed on to the worker (the consumer's on_task_request)."""


def consumer(handled: Handled) -> SimpleNamespace:
    """The attributes of celery.worker.consumer.Consumer that the default strategy reads; a
    message it accepts is appended to `handled` instead of being run."""
    return SimpleNamespace(
        hostname="guard@test", connection_errors=(), event_dispatcher=None, timer=Timer(),
        apply_eta_task=None, disable_rate_limits=True, task_buckets={}, on_task_request=handled.append,
        _limit_task=None, _limit_post_eta=None, pool=TaskPool(), controller=SimpleNamespace(state=worker_state),
    )


def received(body, **publish) -> Message:
    """`body` sent and read back through kombu's in-memory transport: a real kombu Message."""
    with Connection("memory://") as conn:
        queue = conn.SimpleQueue(f"guard-{uuid.uuid4()}")
        publish.setdefault("serializer", "json")
        queue.put(body, headers=headers(), **publish)
        message = queue.get(timeout=1)
        queue.close()
    assert isinstance(message, Message)
    return message


def deliver(strategy, message: Message):
    """As celery's Consumer.on_task_received calls a strategy for a protocol 2 message."""
    return strategy(message, None, message.ack, message.reject, [])


@pytest.fixture
def handled() -> Handled:
    return Handled()


@pytest.fixture
def strategy(handled):
    return app.tasks[TASK].start_strategy(app, consumer(handled))


def test_every_task_of_the_app_is_guarded():
    assert app.Task is GuardedTask or issubclass(app.Task, GuardedTask)
    assert GuardedTask.Strategy == "settings.celery:rejecting_malformed_messages"
    publisher_tasks = [name for name in app.tasks if name.startswith(("publisher.", "scheduling."))]
    assert publisher_tasks
    for name in publisher_tasks:
        assert app.tasks[name].Strategy == GuardedTask.Strategy, name


def test_a_well_formed_task_call_is_handed_to_the_worker(strategy, handled):
    deliver(strategy, received([[[1, 2]], {"token": str(uuid.uuid4())}, {"callbacks": None}]))
    assert len(handled) == 1
    request = handled[0]
    assert request.name == TASK
    assert request.args == [[1, 2]]


@pytest.mark.parametrize("body", [
    "just a string",
    7,
    None,
    [],
    True,
    "",
    [[1, 2, 3, 4]],
    [[], {}],
    {"no": "args"},
], ids=["string", "number", "null", "bool", "empty-string", "empty-list", "one-element", "two-elements", "object"])
def test_a_body_that_is_not_a_task_call_is_rejected_as_invalid(strategy, handled, body):
    """Not three parts (args, kwargs, embed). Three parts of the wrong types are a task call with
    bad arguments: the task's own checks refuse those when it runs (fault row 15)."""
    message = received(body)
    with pytest.raises(InvalidTaskError, match=rf"^malformed {TASK} message: "):
        deliver(strategy, message)
    assert handled == []


def test_the_guard_wraps_the_default_strategy_and_keeps_its_cause(handled):
    handler = rejecting_malformed_messages(app.tasks[TASK], app, consumer(handled))
    with pytest.raises(InvalidTaskError) as caught:
        deliver(handler, received("just a string"))
    assert isinstance(caught.value.__cause__, (ValueError, TypeError, KeyError, AttributeError))
    assert handled == []
