"""Structured logs: every line logged while a pipeline task runs carries the task id, the claim
token and the article ids it works on, in plain text or as one JSON object per line
(LOG_FORMAT=json, for log shippers).

The context lives in a contextvar set by the tasks (`with log_context(...)`), and a logging
filter on the handlers copies it onto each record, so the pipeline's own `logger.info(...)`
calls need no extra arguments. Kept free of Django models: settings' LOGGING names these classes.
"""

import contextlib
import contextvars
import json
import logging
from datetime import UTC, datetime

_context: contextvars.ContextVar[dict] = contextvars.ContextVar("publisher_log_context", default={})

FIELDS = ("task_id", "claim_token", "article_ids", "article_id")


@contextlib.contextmanager
def log_context(**values):
    """Add fields (claim_token=..., article_ids=[...], article_id=...) to every log line logged
    inside the block, on top of the ones already set."""
    merged = {**_context.get(), **{k: v for k, v in values.items() if v is not None}}
    reset = _context.set(merged)
    try:
        yield
    finally:
        _context.reset(reset)


def _current_task_id() -> str | None:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover - celery is a base requirement
        return None
    request = getattr(current_task, "request", None) if current_task else None
    return getattr(request, "id", None)


class ContextFilter(logging.Filter):
    """Copies the pipeline context and the running Celery task's id onto each record, and
    renders them for the plain format as `%(context)s` (' [task=… claim=… articles=…]')."""

    def filter(self, record: logging.LogRecord) -> bool:
        values = {"task_id": _current_task_id(), **_context.get()}
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, values.get(name))
        shown = [f"{label}={value}" for label, value in (
            ("task", record.task_id), ("claim", record.claim_token), ("articles", record.article_ids),
            ("article", record.article_id)) if value is not None]
        record.context = f" [{' '.join(shown)}]" if shown else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the pipeline
    fields when set, and the traceback as text."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
