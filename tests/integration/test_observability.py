"""A burst published by a real worker shows up everywhere an operator looks: JSON log lines with
the task id, claim token and article ids; Celery events (what Flower reads); /metrics/."""

import json
import threading

import pytest
from celery import current_app
from prometheus_client.parser import text_string_to_metric_families

from publisher import services
from publisher.models import Article, ArticleStatus
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

BURST = 8


class EventCapture(threading.Thread):
    """Celery events from the broker, as Flower receives them."""

    def __init__(self):
        super().__init__(daemon=True)
        self.types: list[str] = []
        self.ready = threading.Event()
        self.receiver = None

    def run(self):
        with current_app.connection_for_read() as conn:
            self.receiver = current_app.events.Receiver(conn, handlers={"*": lambda e: self.types.append(e["type"])})
            self.ready.set()
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def stop(self):
        self.receiver.should_stop = True
        self.join(10)


def test_task_events_are_off_unless_asked_for():
    """Each event costs the worker's main process CPU on every task; Flower users opt in."""
    assert (current_app.conf.worker_send_task_events, current_app.conf.task_send_sent_event) == (False, False)


def test_a_burst_is_visible_in_json_logs_celery_events_and_metrics(processes, article_factory, client, settings,
                                                                   monkeypatch):
    settings.PUBLISHER_METRICS_TOKEN = ""
    settings.PUBLISHER_METRICS_OPEN = True
    # CELERY_TASK_EVENTS=1 (docs/operations.md, Flower): the worker's environment, and what this
    # process (the publisher of "publish now") read from it at start-up.
    monkeypatch.setitem(current_app.conf, "task_send_sent_event", True)
    events = EventCapture()
    events.start()
    assert events.ready.wait(10)
    processes.worker(LOG_FORMAT="json", CELERY_TASK_EVENTS="1")
    articles = [article_factory(title=f"Burst {i}") for i in range(BURST)]
    result = services.articles_publish_now(article_ids=[a.pk for a in articles], actor=None)
    assert len(result.done) == BURST
    wait_for(lambda: Article.objects.filter(status=ArticleStatus.PUBLISHED).count() == BURST, timeout=60,
             message="the burst published")
    wait_for(lambda: events.types.count("task-succeeded") >= 4 * BURST, timeout=20,
             message="task-succeeded events for every step")
    events.stop()
    assert "task-sent" in events.types and "task-received" in events.types

    lines = [json.loads(line) for line in processes.log("worker").splitlines() if line.startswith("{")]
    published = [line for line in lines if line["logger"] == "publisher.pipeline"
                 and line["message"].startswith("published")]
    assert sum(int(line["message"].split()[1]) for line in published) == BURST
    claims = {str(a.claim_token) for a in Article.objects.all()}
    for line in published:
        assert line["task_id"] and line["claim_token"] in claims
        assert line["article_ids"] and set(line["article_ids"]) <= {a.pk for a in articles}

    response = client.get("/metrics/")
    assert response.status_code == 200
    samples = {(s.name, tuple(s.labels.items())): s.value
               for family in text_string_to_metric_families(response.content.decode()) for s in family.samples}
    assert samples[("publisher_articles_published_total", ())] == BURST
    assert samples[("publisher_lateness_seconds_bucket", (("le", "+Inf"),))] == BURST
