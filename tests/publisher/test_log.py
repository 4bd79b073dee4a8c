"""publisher.log: the pipeline context on every line, plain or JSON."""

import json
import logging

from publisher.log import ContextFilter, JsonFormatter, log_context


def record(message="published 2 articles", **extra) -> logging.LogRecord:
    rec = logging.LogRecord("publisher.pipeline", logging.INFO, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


def test_context_is_copied_onto_records_and_rendered_for_the_plain_format():
    rec = record()
    with log_context(claim_token="tok-1", article_ids=[4, 5]):
        with log_context(article_id=5):
            ContextFilter().filter(rec)
    assert (rec.claim_token, rec.article_ids, rec.article_id, rec.task_id) == ("tok-1", [4, 5], 5, None)
    assert rec.context == " [claim=tok-1 articles=[4, 5] article=5]"
    outside = record()
    ContextFilter().filter(outside)
    assert outside.context == "" and outside.claim_token is None


def test_json_lines_carry_the_fields_and_the_traceback():
    try:
        raise ValueError("bad image")
    except ValueError:
        import sys
        rec = logging.LogRecord("publisher.pipeline", logging.ERROR, __file__, 1, "thumbnail failed", (),
                                sys.exc_info())
    with log_context(claim_token="tok-2", article_ids=[7]):
        ContextFilter().filter(rec)
    line = json.loads(JsonFormatter().format(rec))
    assert line["level"] == "ERROR" and line["logger"] == "publisher.pipeline"
    assert line["message"] == "thumbnail failed"
    assert line["claim_token"] == "tok-2" and line["article_ids"] == [7]
    assert "ValueError: bad image" in line["exception"]
    assert "task_id" not in line  # not inside a task
