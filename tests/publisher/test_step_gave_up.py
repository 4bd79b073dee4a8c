"""Broker outages are delays: the chain's errback tells a spent transient retry (broker or
database unreachable) from a real failure (the first leaves the articles to the lease and the
sweeper, the second fails them), and claims whose ETA messages a worker dropped when its broker
connection broke are handed to the sweeper at once (publisher/worker.py)."""

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


def test_dropped_claims_are_released_to_the_sweeper_at_once():
    dropped, other = held(uuid.uuid4()), held(uuid.uuid4())
    live = held(dropped.claim_token)
    Article.objects.filter(pk=live.pk).update(status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    before = timezone.now()
    assert services.articles_release_dropped_claims(tokens=[str(dropped.claim_token), "not-a-token"]) == 1
    dropped.refresh_from_db()
    assert dropped.status == ArticleStatus.PUBLISHING and dropped.attempts == 1
    assert dropped.lease_expires_at <= timezone.now() and dropped.lease_expires_at >= before - timedelta(seconds=1)
    assert Article.objects.get(pk=other.pk).lease_expires_at > timezone.now() + timedelta(seconds=30)
    assert services.articles_release_dropped_claims(tokens=[]) == 0

    # The next scan's sweeper re-dispatches it under a new claim.
    old_token = dropped.claim_token
    services.articles_reclaim_expired_leases()
    dropped.refresh_from_db()
    assert (dropped.status, dropped.attempts) == (ArticleStatus.PUBLISHING, 2) and dropped.claim_token != old_token
