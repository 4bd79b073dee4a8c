"""The data contract the database enforces, whatever path writes the row (save, update, bulk)."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from publisher.models import Article, ArticleStatus, Notification, NotificationStatus, Subscriber
from publisher.zones import local_time_text

pytestmark = pytest.mark.django_db


def _integrity_error(make):
    """Run `make` in a savepoint and return the IntegrityError it must raise (the test goes on)."""
    with pytest.raises(IntegrityError) as excinfo:
        with transaction.atomic():
            make()
    return excinfo.value


# --- Notification: at most one per (article, subscriber) ------------------------------------------

def test_a_second_notification_for_the_same_article_and_subscriber_is_refused_by_the_database(article_factory):
    article = article_factory(status=ArticleStatus.PUBLISHED, publish_at=timezone.now())
    subscriber = Subscriber.objects.create(email="reader@example.com")
    expires_at = timezone.now() + timedelta(hours=1)
    Notification.objects.create(article=article, subscriber=subscriber, expires_at=expires_at)

    error = _integrity_error(lambda: Notification.objects.create(
        article=article, subscriber=subscriber, expires_at=expires_at, status=NotificationStatus.SENT))
    # SQLite names the columns, PostgreSQL the constraint.
    assert "notification_once_per_article" in str(error) or "publisher_notification.article_id" in str(error)
    # bulk_create (the fan-out's path) is refused too unless it asks to ignore conflicts.
    _integrity_error(lambda: Notification.objects.bulk_create(
        [Notification(article=article, subscriber=subscriber, expires_at=expires_at)]))

    assert Notification.objects.filter(article=article, subscriber=subscriber).count() == 1


def test_the_same_subscriber_may_be_notified_about_different_articles_and_vice_versa(article_factory):
    first, second = article_factory(title="One"), article_factory(title="Two")
    alice = Subscriber.objects.create(email="alice@example.com")
    bob = Subscriber.objects.create(email="bob@example.com")
    expires_at = timezone.now() + timedelta(hours=1)
    for article in (first, second):
        for subscriber in (alice, bob):
            Notification.objects.create(article=article, subscriber=subscriber, expires_at=expires_at)
    assert Notification.objects.count() == 4
    assert Notification.objects.get(article=first, subscriber=alice).status == NotificationStatus.PENDING


def test_subscriber_email_is_unique(db):
    Subscriber.objects.create(email="reader@example.com")
    _integrity_error(lambda: Subscriber.objects.create(email="reader@example.com"))
    assert Subscriber.objects.get().is_active is True  # active by default


# --- Article check constraints -----------------------------------------------------------------------

@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(0)], ids=["before", "equal"])
def test_unpublish_at_must_be_after_publish_at(article_factory, offset):
    publish_at = timezone.now() + timedelta(hours=1)
    error = _integrity_error(lambda: article_factory(publish_at=publish_at, unpublish_at=publish_at + offset))
    assert "article_unpublish_after_publish" in str(error)
    assert not Article.objects.exists()


def test_unpublish_constraint_also_holds_for_queryset_updates(article_factory):
    publish_at = timezone.now() + timedelta(hours=1)
    article = article_factory(publish_at=publish_at, unpublish_at=publish_at + timedelta(hours=1))
    error = _integrity_error(lambda: Article.objects.filter(pk=article.pk).update(
        unpublish_at=publish_at - timedelta(minutes=1)))
    assert "article_unpublish_after_publish" in str(error)
    article.refresh_from_db()
    assert article.unpublish_at == publish_at + timedelta(hours=1)


def test_unpublish_at_alone_or_after_publish_at_is_accepted(article_factory):
    now = timezone.now()
    only_unpublish = article_factory(unpublish_at=now)
    both = article_factory(publish_at=now, unpublish_at=now + timedelta(microseconds=1))
    assert Article.objects.filter(pk__in=[only_unpublish.pk, both.pk]).count() == 2


@pytest.mark.parametrize("status", [ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING])
def test_a_scheduled_or_publishing_article_needs_a_publish_time(article_factory, status):
    error = _integrity_error(lambda: article_factory(status=status, publish_at=None, claim_token=uuid.uuid4()))
    assert "article_scheduled_has_publish_at" in str(error)
    assert not Article.objects.exists()


def test_clearing_publish_at_of_a_scheduled_article_is_refused(article_factory):
    article = article_factory(status=ArticleStatus.SCHEDULED, publish_at=timezone.now() + timedelta(hours=1))
    error = _integrity_error(lambda: Article.objects.filter(pk=article.pk).update(publish_at=None))
    assert "article_scheduled_has_publish_at" in str(error)
    article.refresh_from_db()
    assert article.publish_at is not None


@pytest.mark.parametrize("status", [ArticleStatus.DRAFT, ArticleStatus.FAILED, ArticleStatus.EXPIRED])
def test_other_statuses_may_have_no_publish_time(article_factory, status):
    article = article_factory(status=status, publish_at=None)
    assert Article.objects.get(pk=article.pk).status == status


def test_a_publishing_article_needs_a_claim_token(article_factory):
    error = _integrity_error(lambda: article_factory(status=ArticleStatus.PUBLISHING, publish_at=timezone.now(),
                                                     claim_token=None))
    assert "article_publishing_has_claim" in str(error)
    held = article_factory(status=ArticleStatus.PUBLISHING, publish_at=timezone.now(), claim_token=uuid.uuid4())
    assert Article.objects.get(pk=held.pk).status == ArticleStatus.PUBLISHING


def test_defaults_of_a_new_article(article_factory):
    article = Article.objects.get(pk=article_factory().pk)
    assert article.status == ArticleStatus.DRAFT
    assert (article.attempts, article.unfinished_runs, article.claim_token, article.published_at) == (0, 0, None, None)
    assert str(article) == "A title"
    assert str(article_factory(title="")) == f"Article #{Article.objects.latest('id').pk}"


# --- Article.clean ----------------------------------------------------------------------------------

@pytest.mark.parametrize("offset", [timedelta(minutes=-5), timedelta(0)], ids=["before", "equal"])
def test_clean_rejects_unpublish_not_after_publish_keyed_by_field(offset):
    publish_at = timezone.now() + timedelta(hours=1)
    article = Article(title="T", body="B", publish_at=publish_at, unpublish_at=publish_at + offset)
    with pytest.raises(ValidationError) as excinfo:
        article.clean()
    assert excinfo.value.message_dict == {"unpublish_at": [
        f"The unpublish time must be after the publish time ({local_time_text(publish_at)})."]}


@pytest.mark.parametrize("publish, unpublish", [(None, None), (True, None), (None, True), (True, "later")])
def test_clean_accepts_consistent_times(publish, unpublish):
    now = timezone.now()
    publish_at = now if publish else None
    unpublish_at = {None: None, True: now, "later": now + timedelta(minutes=1)}[unpublish]
    Article(title="T", body="B", publish_at=publish_at, unpublish_at=unpublish_at).clean()  # does not raise


def test_full_clean_reports_the_same_error():
    publish_at = timezone.now()
    article = Article(title="T", body="B", publish_at=publish_at, unpublish_at=publish_at - timedelta(seconds=1))
    with pytest.raises(ValidationError) as excinfo:
        article.full_clean()
    assert excinfo.value.message_dict["unpublish_at"] == [
        f"The unpublish time must be after the publish time ({local_time_text(publish_at)})."]


# --- lateness -----------------------------------------------------------------------------------------

def test_lateness_is_published_at_minus_publish_at():
    publish_at = timezone.now()
    article = Article(publish_at=publish_at, published_at=publish_at + timedelta(seconds=2, milliseconds=250))
    assert article.lateness == timedelta(seconds=2, milliseconds=250)


def test_lateness_is_none_until_published_or_without_a_publish_time():
    now = timezone.now()
    assert Article(publish_at=now).lateness is None
    assert Article(published_at=now).lateness is None
    assert Article().lateness is None


def test_lateness_survives_a_round_trip_through_the_database(article_factory):
    publish_at = timezone.now() - timedelta(minutes=10)
    article = article_factory(status=ArticleStatus.PUBLISHED, publish_at=publish_at,
                              published_at=publish_at + timedelta(minutes=3))
    assert Article.objects.get(pk=article.pk).lateness == timedelta(minutes=3)
