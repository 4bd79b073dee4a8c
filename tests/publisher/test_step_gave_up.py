"""The chain's errback tells a spent transient retry (broker or database unreachable) from a real
failure: the first leaves the articles to the lease and the sweeper, the second fails them."""

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
import redis
from django.db import OperationalError as DatabaseOperationalError
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerOperationalError

from publisher import services
from publisher.models import Article, ArticleStatus
from publisher.tasks import record_chunk_failure

pytestmark = pytest.mark.django_db


def held(token: uuid.UUID) -> Article:
    now = timezone.now()
    return Article.objects.create(title="Held", body="Body.", status=ArticleStatus.PUBLISHING,
                                  publish_at=now - timedelta(seconds=5), claim_token=token, claimed_at=now,
                                  lease_expires_at=now + timedelta(seconds=60), attempts=1)


def errback(article: Article, exc: BaseException) -> int:
    request = SimpleNamespace(task="publisher.tasks.process_articles")
    return record_chunk_failure(request, exc, None, article_ids=[article.pk], token=str(article.claim_token))


@pytest.mark.parametrize("exc", [
    BrokerOperationalError("Error 111 connecting to 127.0.0.1:6399. Connection refused."),
    ConnectionRefusedError(111, "Connection refused"),
    DatabaseOperationalError("the database system is starting up"),
], ids=["kombu", "socket", "database"])
def test_a_spent_transient_retry_leaves_the_articles_to_the_lease(exc, caplog):
    article = held(uuid.uuid4())
    assert errback(article, exc) == 0
    article.refresh_from_db()
    assert (article.status, article.last_error, article.attempts) == (ArticleStatus.PUBLISHING, "", 1)
    assert article.lease_expires_at is not None  # the sweeper re-dispatches it when the lease runs out
    assert "1 articles left to the lease and the sweeper" in caplog.text
    assert type(exc).__name__ in caplog.text


@pytest.mark.parametrize("exc", [ValueError("bad chunk"), redis.ResponseError("WRONGTYPE")], ids=["value", "redis-reply"])
def test_any_other_error_fails_the_articles_with_the_reason(exc):
    article = held(uuid.uuid4())
    assert errback(article, exc) == 1
    article.refresh_from_db()
    assert article.status == ArticleStatus.FAILED
    assert article.last_error == f"publisher.tasks.process_articles failed: {type(exc).__name__}: {exc}"


def test_step_gave_up_is_idempotent_and_touches_only_its_claim():
    token = uuid.uuid4()
    mine, other = held(token), held(uuid.uuid4())
    ids = [mine.pk, other.pk]
    assert services.articles_step_gave_up(article_ids=ids, token=str(token), reason="r", transient=False) == 1
    assert services.articles_step_gave_up(article_ids=ids, token=str(token), reason="r", transient=False) == 0
    assert Article.objects.get(pk=other.pk).status == ArticleStatus.PUBLISHING
