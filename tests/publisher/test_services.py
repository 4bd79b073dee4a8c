"""publisher.services: validation at the boundary, the editor's transitions, and the claims the
scan and the sweeper make (compare-and-set, by the database clock, dispatched after commit)."""

import uuid
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleStatus
from publisher.services import TransitionError, validate_schedule
from publisher.zones import local_time_text
from publisher.site.cache import bump_generation
from tests.factories import make_article

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc
LEASE = 300


@pytest.fixture(autouse=True)
def pipeline_settings(settings):
    """Fixed values, whatever the environment says."""
    settings.PUBLISHER_LOOKAHEAD = 20
    settings.PUBLISHER_LEASE_SECONDS = LEASE
    settings.PUBLISHER_MAX_ATTEMPTS = 3
    settings.PUBLISHER_MAX_LATENESS = None
    settings.PUBLISHER_SCAN_BATCH = 1000
    return settings


def make(offset: float | None = None, *, status=ArticleStatus.SCHEDULED, unpublish: float | None = None, **fields):
    """An article whose publish time is `offset` seconds from now (None: no publish time)."""
    now = timezone.now()
    fields.setdefault("title", "A title")
    fields.setdefault("body", "Some body.")
    return make_article(
        status=status,
        publish_at=None if offset is None else now + timedelta(seconds=offset),
        unpublish_at=None if unpublish is None else now + timedelta(seconds=unpublish),
        **fields,
    )


def held(offset: float = -5, *, lease: float = 60, attempts: int = 1, token: str | None = None, **fields) -> Article:
    """An article `publishing` under a claim whose lease ends `lease` seconds from now."""
    return make(offset, status=ArticleStatus.PUBLISHING, claim_token=uuid.UUID(token) if token else uuid.uuid4(),
                claimed_at=timezone.now(), lease_expires_at=timezone.now() + timedelta(seconds=lease),
                attempts=attempts, **fields)


def fresh(article: Article) -> Article:
    return Article.objects.get(pk=article.pk)


# The rules' own messages (tests/publisher/test_schedule_rules.py pins each one).
TITLE_MISSING = "An article needs a title before it can be scheduled. To keep it as a draft, clear the publish time."
BODY_MISSING = "An article needs a body before it can be scheduled. To keep it as a draft, clear the publish time."


def unpublish_before(publish_at) -> str:
    return f"The unpublish time must be after the publish time ({local_time_text(publish_at)})."


def messages(excinfo) -> dict[str, list[str]]:
    return excinfo.value.message_dict


# --- validate_schedule ------------------------------------------------------------------------------

def in_an_hour():
    return timezone.now() + timedelta(hours=1)


def test_validate_schedule_accepts_a_complete_schedule():
    publish_at = in_an_hour()
    validate_schedule(title="T", body="B", publish_at=publish_at, unpublish_at=None)
    validate_schedule(title="T", body="B", publish_at=publish_at, unpublish_at=publish_at + timedelta(seconds=1))
    # Any zone is fine, as long as it is one.
    validate_schedule(title="T", body="B", publish_at=publish_at.astimezone(ZoneInfo("Pacific/Kiritimati")),
                      unpublish_at=None)


@pytest.mark.parametrize("field", ["publish_at", "unpublish_at"])
def test_validate_schedule_rejects_a_naive_datetime(field):
    values = {"publish_at": in_an_hour(), "unpublish_at": None}
    values[field] = datetime.now() + timedelta(hours=2)  # naive
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="T", body="B", **values)
    assert messages(excinfo) == {field: ["The time must include its time zone (got a naive datetime)."]}


@pytest.mark.parametrize("year", [1, 9999])
@pytest.mark.parametrize("field", ["publish_at", "unpublish_at"])
def test_validate_schedule_rejects_a_year_out_of_range(field, year):
    values = {"publish_at": in_an_hour(), "unpublish_at": None}
    values[field] = datetime(year, 6, 1, 12, 0, tzinfo=UTC)
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="T", body="B", **values)
    assert messages(excinfo) == {field: [f"The year {year} is out of range (within 100 years of now)."]}


def test_validate_schedule_rejects_something_that_is_not_a_datetime():
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="T", body="B", publish_at=date(2030, 1, 1), unpublish_at=None)
    assert messages(excinfo) == {"publish_at": ["Expected a date and time, got datetime.date(2030, 1, 1)."]}


@pytest.mark.parametrize("title, body, expected", [
    ("", "B", {"title": [TITLE_MISSING]}),
    ("   \n", "B", {"title": [TITLE_MISSING]}),
    (None, "B", {"title": [TITLE_MISSING]}),
    ("T", "", {"body": [BODY_MISSING]}),
    ("T", " \t ", {"body": [BODY_MISSING]}),
    ("", "", {"title": [TITLE_MISSING],
              "body": [BODY_MISSING]}),
])
def test_validate_schedule_rejects_a_missing_title_or_body(title, body, expected):
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title=title, body=body, publish_at=in_an_hour(), unpublish_at=None)
    assert messages(excinfo) == expected


@pytest.mark.parametrize("offset", [timedelta(seconds=-1), timedelta(0)], ids=["before", "equal"])
def test_validate_schedule_rejects_unpublish_not_after_publish(offset):
    publish_at = in_an_hour()
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="T", body="B", publish_at=publish_at, unpublish_at=publish_at + offset)
    assert messages(excinfo) == {"unpublish_at": [unpublish_before(publish_at)]}


def test_validate_schedule_compares_instants_not_wall_clocks():
    publish_at = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    # 12:30 in Berlin is 11:30 UTC: before the publish time although the wall clock reads later.
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="T", body="B", publish_at=publish_at,
                          unpublish_at=datetime(2030, 1, 1, 12, 30, tzinfo=ZoneInfo("Europe/Berlin")))
    assert list(messages(excinfo)) == ["unpublish_at"]


def test_validate_schedule_requires_a_publish_time():
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="T", body="B", publish_at=None, unpublish_at=in_an_hour())
    assert messages(excinfo) == {"publish_at": ["A publish time is required to schedule an article."]}


def test_validate_schedule_reports_every_problem_at_once():
    with pytest.raises(ValidationError) as excinfo:
        validate_schedule(title="", body="", publish_at=datetime(2030, 1, 1),
                          unpublish_at=datetime(9999, 1, 1, tzinfo=UTC))
    assert messages(excinfo) == {
        "title": [TITLE_MISSING],
        "body": [BODY_MISSING],
        "publish_at": ["The time must include its time zone (got a naive datetime)."],
        "unpublish_at": ["The year 9999 is out of range (within 100 years of now)."],
    }


# --- article_schedule ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [ArticleStatus.DRAFT, ArticleStatus.FAILED, ArticleStatus.MISSED,
                                    ArticleStatus.EXPIRED])
def test_schedule_from_a_schedulable_state(status, dispatched, django_capture_on_commit_callbacks):
    article = make(-600 if status != ArticleStatus.DRAFT else None, status=status, attempts=2, last_error="boom")
    publish_at, unpublish_at = in_an_hour(), in_an_hour() + timedelta(days=1)

    with django_capture_on_commit_callbacks(execute=True):
        result = services.article_schedule(article_id=article.pk, publish_at=publish_at, unpublish_at=unpublish_at)

    row = fresh(article)
    assert (row.status, row.publish_at, row.unpublish_at) == (ArticleStatus.SCHEDULED, publish_at, unpublish_at)
    assert (row.attempts, row.last_error, row.claim_token) == (0, "", None)
    assert result.status == ArticleStatus.SCHEDULED
    assert dispatched == [], "an hour ahead is the scan's job, not claimed now"


def test_reschedule_a_scheduled_article(dispatched):
    article = make(3600)
    later = in_an_hour() + timedelta(hours=5)
    services.article_schedule(article_id=article.pk, publish_at=later)
    assert (fresh(article).status, fresh(article).publish_at) == (ArticleStatus.SCHEDULED, later)


def test_the_editor_wins_over_an_in_flight_claim(dispatched):
    article = held(-5, unfinished_runs=2)
    old_token = article.claim_token
    services.article_schedule(article_id=article.pk, publish_at=in_an_hour())
    row = fresh(article)
    assert row.status == ArticleStatus.SCHEDULED
    assert (row.claim_token, row.claimed_at, row.lease_expires_at, row.unfinished_runs) == (None, None, None, 0)
    assert not Article.objects.filter(claim_token=old_token).exists()
    assert dispatched == []


def test_schedule_within_the_lookahead_claims_at_once_and_dispatches_after_commit(
        dispatched, django_capture_on_commit_callbacks):
    article = make(None, status=ArticleStatus.DRAFT)
    publish_at = timezone.now() + timedelta(seconds=5)

    with django_capture_on_commit_callbacks() as callbacks:
        result = services.article_schedule(article_id=article.pk, publish_at=publish_at)
        row = fresh(article)
        assert row.status == ArticleStatus.PUBLISHING and row.attempts == 1
        assert result.status == ArticleStatus.PUBLISHING  # the returned article is refreshed
    callbacks = [c for c in callbacks if c is not bump_generation]  # leave out the site cache's invalidation
    assert dispatched == [], "nothing is sent before the claim commits"
    assert len(callbacks) == 1

    callbacks[0]()
    assert dispatched == [{"token": str(row.claim_token), "due": [(article.pk, publish_at)], "chunk_size": None}]


@pytest.mark.parametrize("status", [ArticleStatus.PUBLISHED])
def test_schedule_from_a_wrong_state_is_refused_clearly(status, dispatched):
    article = make(-60, status=status, published_at=timezone.now())
    with pytest.raises(TransitionError, match=rf"^Cannot schedule article #{article.pk}: it is published\.$"):
        services.article_schedule(article_id=article.pk, publish_at=in_an_hour())
    assert fresh(article).status == ArticleStatus.PUBLISHED
    assert fresh(article).publish_at == article.publish_at


def test_schedule_a_deleted_article(dispatched):
    article = make(None, status=ArticleStatus.DRAFT)
    pk = article.pk
    article.delete()
    with pytest.raises(TransitionError, match=rf"^Article #{pk} no longer exists\.$"):
        services.article_schedule(article_id=pk, publish_at=in_an_hour())


def test_schedule_with_invalid_values_changes_nothing(dispatched):
    article = make(None, status=ArticleStatus.DRAFT, title="")
    with pytest.raises(ValidationError) as excinfo:
        services.article_schedule(article_id=article.pk, publish_at=datetime(2030, 1, 1))
    assert set(messages(excinfo)) == {"title", "publish_at"}
    row = fresh(article)
    assert (row.status, row.publish_at) == (ArticleStatus.DRAFT, None)


# --- article_unschedule -----------------------------------------------------------------------------

@pytest.mark.parametrize("status", [ArticleStatus.SCHEDULED, ArticleStatus.FAILED, ArticleStatus.MISSED])
def test_unschedule_goes_back_to_draft_keeping_the_times(status):
    article = make(600, status=status, unpublish=7200)
    services.article_unschedule(article_id=article.pk)
    row = fresh(article)
    assert row.status == ArticleStatus.DRAFT
    assert (row.publish_at, row.unpublish_at) == (article.publish_at, article.unpublish_at)


def test_unschedule_an_in_flight_article_releases_its_claim_and_can_clear_the_times():
    article = held(-5, unpublish=600)
    services.article_unschedule(article_id=article.pk, clear_times=True)
    row = fresh(article)
    assert (row.status, row.publish_at, row.unpublish_at) == (ArticleStatus.DRAFT, None, None)
    assert (row.claim_token, row.claimed_at, row.lease_expires_at) == (None, None, None)


@pytest.mark.parametrize("status", [ArticleStatus.DRAFT, ArticleStatus.PUBLISHED, ArticleStatus.EXPIRED])
def test_unschedule_from_a_wrong_state_is_refused_clearly(status):
    article = make(-60 if status != ArticleStatus.DRAFT else None, status=status)
    with pytest.raises(TransitionError, match=rf"^Cannot unschedule article #{article.pk}: it is {status.value}\.$"):
        services.article_unschedule(article_id=article.pk)
    assert fresh(article).status == status


def test_unschedule_a_deleted_article():
    article = make(600)
    pk = article.pk
    article.delete()
    with pytest.raises(TransitionError, match=rf"^Article #{pk} no longer exists\.$"):
        services.article_unschedule(article_id=pk)


# --- article_retry ------------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [ArticleStatus.FAILED, ArticleStatus.MISSED])
def test_retry_puts_a_failed_or_missed_article_back_on_schedule(status, dispatched):
    article = make(-60, status=status, attempts=3, last_error="it broke", claim_token=uuid.uuid4())
    services.article_retry(article_id=article.pk)
    row = fresh(article)
    assert (row.status, row.attempts, row.last_error, row.claim_token) == (ArticleStatus.SCHEDULED, 0, "", None)
    assert row.publish_at == article.publish_at
    assert dispatched == [], "the next scan claims it"


@pytest.mark.parametrize("status", [ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHED,
                                    ArticleStatus.EXPIRED])
def test_retry_from_a_wrong_state_is_refused_clearly(status):
    article = make(None if status == ArticleStatus.DRAFT else -60, status=status)
    with pytest.raises(TransitionError, match=rf"^Cannot retry article #{article.pk}: it is {status.value}\.$"):
        services.article_retry(article_id=article.pk)
    assert fresh(article).status == status


def test_retry_while_publishing_is_refused():
    article = held()
    with pytest.raises(TransitionError, match="it is publishing"):
        services.article_retry(article_id=article.pk)
    assert fresh(article).claim_token == article.claim_token


def test_retry_a_deleted_article():
    article = make(-60, status=ArticleStatus.FAILED)
    pk = article.pk
    article.delete()
    with pytest.raises(TransitionError, match=rf"^Article #{pk} no longer exists\.$"):
        services.article_retry(article_id=pk)


# --- article_publish_now ------------------------------------------------------------------------------

def test_publish_now_claims_a_draft_and_dispatches_it_alone_after_commit(
        dispatched, django_capture_on_commit_callbacks):
    article = make(None, status=ArticleStatus.DRAFT)
    before = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        result = services.article_publish_now(article_id=article.pk)
    assert dispatched == []
    row = fresh(article)
    assert row.status == ArticleStatus.PUBLISHING and result.status == ArticleStatus.PUBLISHING
    assert row.claim_token is not None and row.attempts == 1 and row.claimed_at is not None
    assert before <= row.publish_at <= timezone.now()
    assert row.lease_expires_at > timezone.now() + timedelta(seconds=LEASE - 30)

    for callback in callbacks:
        callback()
    assert dispatched == [{"token": str(row.claim_token), "due": [(article.pk, row.publish_at)], "chunk_size": 1}]


def test_publish_now_brings_a_future_schedule_forward(dispatched):
    article = make(3600, unpublish=7200)
    services.article_publish_now(article_id=article.pk)
    row = fresh(article)
    assert row.status == ArticleStatus.PUBLISHING
    assert row.publish_at <= timezone.now() < article.publish_at
    assert row.unpublish_at == article.unpublish_at


@pytest.mark.parametrize("status", [ArticleStatus.SCHEDULED, ArticleStatus.FAILED, ArticleStatus.MISSED])
def test_publish_now_keeps_a_publish_time_that_already_passed(status, dispatched):
    article = make(-120, status=status, attempts=3, last_error="late")
    services.article_publish_now(article_id=article.pk)
    row = fresh(article)
    assert (row.status, row.publish_at, row.attempts, row.last_error) == (
        ArticleStatus.PUBLISHING, article.publish_at, 1, "")


@pytest.mark.parametrize("status, offset", [(ArticleStatus.PUBLISHED, -60), (ArticleStatus.PUBLISHING, -5),
                                            (ArticleStatus.EXPIRED, -60)])
def test_publish_now_from_a_wrong_state_is_refused_clearly(status, offset, dispatched):
    fields = {"claim_token": uuid.uuid4()} if status == ArticleStatus.PUBLISHING else {}
    article = make(offset, status=status, **fields)
    with pytest.raises(TransitionError, match=rf"^Cannot publish article #{article.pk} now: it is {status.value}\.$"):
        services.article_publish_now(article_id=article.pk)
    assert fresh(article).status == status
    assert dispatched == []


def test_publish_now_refuses_an_article_whose_unpublish_time_passed(dispatched):
    article = make(-600, status=ArticleStatus.FAILED, unpublish=-60)
    with pytest.raises(TransitionError,
                       match=rf"^Cannot publish article #{article.pk} now: its unpublish time has passed\.$"):
        services.article_publish_now(article_id=article.pk)
    assert fresh(article).status == ArticleStatus.FAILED
    assert dispatched == []


def test_publish_now_refuses_an_article_without_a_body(dispatched, django_capture_on_commit_callbacks):
    article = make(None, status=ArticleStatus.DRAFT, body="  ")
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(ValidationError) as excinfo:
            services.article_publish_now(article_id=article.pk)
    assert messages(excinfo) == {"body": [BODY_MISSING]}
    assert fresh(article).status == ArticleStatus.DRAFT
    assert dispatched == []


def test_publish_now_a_deleted_article(dispatched):
    article = make(None, status=ArticleStatus.DRAFT)
    pk = article.pk
    article.delete()
    with pytest.raises(TransitionError, match=rf"^Article #{pk} no longer exists\.$"):
        services.article_publish_now(article_id=pk)


# --- article_set_unpublish_at ---------------------------------------------------------------------

def test_set_and_clear_the_unpublish_time_of_a_live_article():
    article = make(-600, status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    take_down = in_an_hour()
    services.article_set_unpublish_at(article_id=article.pk, unpublish_at=take_down)
    assert fresh(article).unpublish_at == take_down
    services.article_set_unpublish_at(article_id=article.pk, unpublish_at=None)
    assert fresh(article).unpublish_at is None
    assert fresh(article).status == ArticleStatus.PUBLISHED


def test_set_unpublish_before_publish_is_refused_keyed_by_field():
    article = make(-600, status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    with pytest.raises(ValidationError) as excinfo:
        services.article_set_unpublish_at(article_id=article.pk, unpublish_at=article.publish_at - timedelta(seconds=1))
    assert messages(excinfo) == {"unpublish_at": [unpublish_before(article.publish_at)]}
    with pytest.raises(ValidationError) as excinfo:
        services.article_set_unpublish_at(article_id=article.pk, unpublish_at=datetime(2030, 1, 1))
    assert list(messages(excinfo)) == ["unpublish_at"]
    assert fresh(article).unpublish_at is None


@pytest.mark.parametrize("status", [ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.EXPIRED])
def test_set_unpublish_on_an_article_that_is_not_live_is_refused(status):
    article = make(-600 if status != ArticleStatus.SCHEDULED else 600, status=status)
    with pytest.raises(TransitionError, match=rf"^Cannot change the unpublish time of article #{article.pk}: "
                                              rf"it is {status.value}\.$"):
        services.article_set_unpublish_at(article_id=article.pk, unpublish_at=in_an_hour() + timedelta(days=1))
    assert fresh(article).unpublish_at is None


def test_set_unpublish_on_a_deleted_article():
    article = make(-600, status=ArticleStatus.PUBLISHED)
    pk = article.pk
    article.delete()
    with pytest.raises(TransitionError, match=rf"^Article #{pk} no longer exists\.$"):
        services.article_set_unpublish_at(article_id=pk, unpublish_at=in_an_hour())


# --- articles_claim_due -------------------------------------------------------------------------------

def test_claim_takes_only_due_scheduled_rows_and_dispatches_them_after_commit(
        dispatched, django_capture_on_commit_callbacks):
    due_late = make(-30)
    due = make(-5)
    future = make(300)
    draft = make(-5, status=ArticleStatus.DRAFT)
    failed = make(-5, status=ArticleStatus.FAILED)

    with django_capture_on_commit_callbacks() as callbacks:
        claim = services.articles_claim_due(lookahead=0)
        assert dispatched == []
    assert claim.article_ids == [due_late.pk, due.pk]  # earliest first
    assert claim.due == [(due_late.pk, due_late.publish_at), (due.pk, due.publish_at)]
    for article in (due_late, due):
        row = fresh(article)
        assert (row.status, str(row.claim_token), row.attempts) == (ArticleStatus.PUBLISHING, claim.token, 1)
        assert row.claimed_at is not None
        assert timezone.now() + timedelta(seconds=LEASE - 30) < row.lease_expires_at <= (
            timezone.now() + timedelta(seconds=LEASE + 1))
    assert fresh(future).status == ArticleStatus.SCHEDULED
    assert fresh(draft).status == ArticleStatus.DRAFT
    assert fresh(failed).status == ArticleStatus.FAILED

    assert len(callbacks) == 1
    callbacks[0]()
    assert dispatched == [{"token": claim.token, "due": claim.due, "chunk_size": None}]


def test_claim_with_nothing_due_returns_none_and_dispatches_nothing(dispatched, django_capture_on_commit_callbacks):
    make(300)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.articles_claim_due() is None
    assert callbacks == [] and dispatched == []


def test_claim_never_takes_a_row_early(dispatched):
    soon = make(2)
    assert services.articles_claim_due(lookahead=0) is None
    assert fresh(soon).status == ArticleStatus.SCHEDULED


def test_claim_goes_by_the_database_clock_not_this_hosts_clock(dispatched):
    not_yet = make(300)
    due = make(-5)
    # This host's clock runs an hour fast: the database still says `not_yet` is not due.
    with time_machine.travel(timezone.now() + timedelta(hours=1), tick=True):
        claim = services.articles_claim_due(lookahead=0)
    assert claim.article_ids == [due.pk]
    assert fresh(not_yet).status == ArticleStatus.SCHEDULED

    late = make(-5)
    # ... or an hour slow: what the database says is due is still claimed.
    with time_machine.travel(timezone.now() - timedelta(hours=1), tick=True):
        claim = services.articles_claim_due(lookahead=0)
    assert claim.article_ids == [late.pk]


def test_claim_respects_the_limit_earliest_first(dispatched, django_capture_on_commit_callbacks):
    articles = [make(-50 + i) for i in range(5)]  # -50 s, -49 s, ... earliest first
    with django_capture_on_commit_callbacks(execute=True):
        first = services.articles_claim_due(limit=2, lookahead=0)
        second = services.articles_claim_due(limit=2, lookahead=0)
        third = services.articles_claim_due(limit=2, lookahead=0)
        fourth = services.articles_claim_due(limit=2, lookahead=0)
    assert first.article_ids == [articles[0].pk, articles[1].pk]
    assert second.article_ids == [articles[2].pk, articles[3].pk]
    assert third.article_ids == [articles[4].pk]
    assert fourth is None
    assert len({first.token, second.token, third.token}) == 3
    assert [[pk for pk, _ in call["due"]] for call in dispatched] == [
        first.article_ids, second.article_ids, third.article_ids]


def test_claim_limit_defaults_to_the_scan_batch(settings, dispatched):
    settings.PUBLISHER_SCAN_BATCH = 3
    for i in range(4):
        make(-10 - i)
    assert len(services.articles_claim_due(lookahead=0).article_ids) == 3
    assert Article.objects.filter(status=ArticleStatus.SCHEDULED).count() == 1


def test_lookahead_claims_rows_due_within_it_and_leases_them_from_their_publish_time(
        dispatched, django_capture_on_commit_callbacks):
    due = make(-5)
    within = make(10)
    beyond = make(60)

    with django_capture_on_commit_callbacks(execute=True):
        claim = services.articles_claim_due(lookahead=30)

    assert claim.article_ids == [due.pk, within.pk]
    assert fresh(beyond).status == ArticleStatus.SCHEDULED
    row = fresh(within)
    assert row.status == ArticleStatus.PUBLISHING
    # The lease runs from the publish time (its work cannot finish before that), not from now.
    assert abs((row.lease_expires_at - (within.publish_at + timedelta(seconds=LEASE))).total_seconds()) < 1
    assert dispatched[0]["due"] == [(due.pk, due.publish_at), (within.pk, within.publish_at)]


def test_lookahead_defaults_to_the_setting(settings, dispatched):
    settings.PUBLISHER_LOOKAHEAD = 30
    within, beyond = make(10), make(60)
    assert services.articles_claim_due().article_ids == [within.pk]
    assert fresh(beyond).status == ArticleStatus.SCHEDULED


def test_a_second_claim_finds_nothing(dispatched, django_capture_on_commit_callbacks):
    article = make(-5)
    with django_capture_on_commit_callbacks(execute=True):
        first = services.articles_claim_due(lookahead=0)
        second = services.articles_claim_due(lookahead=0)
        third = services.articles_claim_due(article_ids=[article.pk], lookahead=0)
    assert first.article_ids == [article.pk]
    assert second is None and third is None
    assert len(dispatched) == 1
    row = fresh(article)
    assert (str(row.claim_token), row.attempts) == (first.token, 1)


def test_claim_restricted_to_given_ids(dispatched):
    one, other = make(-5), make(-5)
    claim = services.articles_claim_due(article_ids=[other.pk], lookahead=0)
    assert claim.article_ids == [other.pk]
    assert fresh(one).status == ArticleStatus.SCHEDULED


def test_a_claim_rolled_back_dispatches_nothing(dispatched, django_capture_on_commit_callbacks):
    article = make(-5)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            assert services.articles_claim_due(lookahead=0).article_ids == [article.pk]
            transaction.set_rollback(True)
    assert callbacks == [] and dispatched == []
    assert fresh(article).status == ArticleStatus.SCHEDULED


def test_a_window_that_passed_entirely_expires_without_going_live(dispatched, django_capture_on_commit_callbacks):
    gone = make(-3600, unpublish=-60)
    live = make(-3600, unpublish=3600)
    with django_capture_on_commit_callbacks(execute=True):
        claim = services.articles_claim_due(lookahead=0)
    row = fresh(gone)
    assert row.status == ArticleStatus.EXPIRED
    assert row.published_at is None and row.claim_token is None
    assert row.last_error == "Not published: its publish and unpublish times both passed while publishing was down."
    assert claim.article_ids == [live.pk]
    assert [pk for pk, _ in dispatched[0]["due"]] == [live.pk]


def test_only_expired_rows_means_nothing_dispatched(dispatched, django_capture_on_commit_callbacks):
    gone = make(-3600, unpublish=-60)
    with django_capture_on_commit_callbacks(execute=True):
        claim = services.articles_claim_due(lookahead=0)
    assert fresh(gone).status == ArticleStatus.EXPIRED
    assert not claim or claim.article_ids == []
    assert dispatched == []


def test_lateness_policy_marks_articles_found_too_late_missed(settings, dispatched, django_capture_on_commit_callbacks):
    settings.PUBLISHER_MAX_LATENESS = 60
    too_late = make(-600)
    on_time = make(-5)
    with django_capture_on_commit_callbacks(execute=True):
        claim = services.articles_claim_due(lookahead=0)
    row = fresh(too_late)
    assert row.status == ArticleStatus.MISSED
    assert row.published_at is None and row.claim_token is None
    assert "more than 60 s after its publish time" in row.last_error
    assert "PUBLISHER_MAX_LATENESS" in row.last_error
    assert claim.article_ids == [on_time.pk]
    assert [pk for pk, _ in dispatched[0]["due"]] == [on_time.pk]


def test_without_a_lateness_policy_late_articles_are_published_anyway(dispatched):
    very_late = make(-3 * 24 * 3600)  # a weekend of downtime
    claim = services.articles_claim_due(lookahead=0)
    assert claim.article_ids == [very_late.pk]
    assert fresh(very_late).status == ArticleStatus.PUBLISHING


def test_claim_counts_attempts_across_claims(dispatched):
    article = make(-5, attempts=1)
    services.articles_claim_due(lookahead=0)
    assert fresh(article).attempts == 2


# --- articles_reclaim_expired_leases (the sweeper) -------------------------------------------------

def test_sweeper_reclaims_an_expired_lease_with_a_new_token(dispatched, django_capture_on_commit_callbacks):
    stale = held(-600, lease=-5, attempts=1, unfinished_runs=2)
    alive = held(-600, lease=60, attempts=1)

    with django_capture_on_commit_callbacks() as callbacks:
        claim, given_up = services.articles_reclaim_expired_leases()
    assert dispatched == []

    assert given_up == 0
    assert claim.article_ids == [stale.pk]
    row = fresh(stale)
    assert row.status == ArticleStatus.PUBLISHING
    assert str(row.claim_token) == claim.token != str(stale.claim_token)
    assert (row.attempts, row.unfinished_runs) == (2, 0)
    assert row.lease_expires_at > timezone.now() + timedelta(seconds=LEASE - 30)
    untouched = fresh(alive)
    assert (untouched.claim_token, untouched.attempts) == (alive.claim_token, 1)

    for callback in callbacks:
        callback()
    # One article per chain: a poison article cannot take others down.
    assert dispatched == [{"token": claim.token, "due": [(stale.pk, stale.publish_at)], "chunk_size": 1}]


def test_sweeper_gives_up_after_max_attempts_with_a_reason(settings, dispatched, django_capture_on_commit_callbacks):
    last_try = held(-600, lease=-5, attempts=2)
    spent = held(-600, lease=-5, attempts=3)

    with django_capture_on_commit_callbacks(execute=True):
        claim, given_up = services.articles_reclaim_expired_leases()

    assert given_up == 1
    assert claim.article_ids == [last_try.pk]
    assert fresh(last_try).attempts == 3
    row = fresh(spent)
    assert row.status == ArticleStatus.FAILED
    assert row.last_error.startswith("Gave up after 3 attempts: each claim's lease (300 s) expired")
    assert (row.claim_token, row.lease_expires_at, row.published_at) == (None, None, None)
    assert [call["due"] for call in dispatched] == [[(last_try.pk, last_try.publish_at)]]


def test_sweeper_with_nothing_stale_does_nothing(dispatched, django_capture_on_commit_callbacks):
    alive = held(lease=60)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.articles_reclaim_expired_leases() == (None, 0)
    assert dispatched == []
    assert fresh(alive).claim_token == alive.claim_token


def test_sweeper_reclaims_once(dispatched, django_capture_on_commit_callbacks):
    stale = held(lease=-5)
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = services.articles_reclaim_expired_leases()
        second = services.articles_reclaim_expired_leases()
    assert first.article_ids == [stale.pk]
    assert second == (None, 0)
    assert len(dispatched) == 1


def test_sweeper_respects_its_limit(dispatched):
    for _ in range(3):
        held(lease=-5)
    claim, _ = services.articles_reclaim_expired_leases(limit=2)
    assert len(claim.article_ids) == 2
    assert Article.objects.filter(attempts=1).count() == 1


def test_after_max_attempts_claims_the_article_ends_failed(settings, dispatched, django_capture_on_commit_callbacks):
    """The whole lease cycle: claim, lose it, re-claim, ..., give up. Never stuck `publishing`."""
    settings.PUBLISHER_MAX_ATTEMPTS = 2
    article = make(-5)
    with django_capture_on_commit_callbacks(execute=True):
        services.articles_claim_due(lookahead=0)
        Article.objects.filter(pk=article.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
        claim, given_up = services.articles_reclaim_expired_leases()
        assert (claim.article_ids, given_up, fresh(article).attempts) == ([article.pk], 0, 2)
        Article.objects.filter(pk=article.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
        assert services.articles_reclaim_expired_leases() == (None, 1)
    assert fresh(article).status == ArticleStatus.FAILED
    assert "Gave up after 2 attempts" in fresh(article).last_error
    assert len(dispatched) == 2


# --- articles_take_down_expired ------------------------------------------------------------------------

def test_take_down_expires_only_live_articles_whose_unpublish_time_passed():
    now = timezone.now()
    passed = make(-3600, status=ArticleStatus.PUBLISHED, unpublish=-5, published_at=now)
    future = make(-3600, status=ArticleStatus.PUBLISHED, unpublish=3600, published_at=now)
    forever = make(-3600, status=ArticleStatus.PUBLISHED, published_at=now)
    scheduled = make(-3600, unpublish=-5)  # the claim handles these, not the take-down

    assert services.articles_take_down_expired() == 1
    assert fresh(passed).status == ArticleStatus.EXPIRED
    assert fresh(passed).published_at == now  # when it went live stays on record
    assert fresh(future).status == ArticleStatus.PUBLISHED
    assert fresh(forever).status == ArticleStatus.PUBLISHED
    assert fresh(scheduled).status == ArticleStatus.SCHEDULED
    assert services.articles_take_down_expired() == 0


# --- articles_fail_claimed -------------------------------------------------------------------------------

def test_fail_claimed_touches_only_rows_still_held_by_that_token():
    token = str(uuid.uuid4())
    mine = held(token=token)
    other_claim = held()
    already_live = make(-60, status=ArticleStatus.PUBLISHED, claim_token=token, published_at=timezone.now())
    taken_back = make(600, status=ArticleStatus.SCHEDULED)  # the editor released it

    ids = [mine.pk, other_claim.pk, already_live.pk, taken_back.pk]
    assert services.articles_fail_claimed(article_ids=ids, token=token, reason="make_live failed: boom") == 1

    row = fresh(mine)
    assert (row.status, row.last_error, row.lease_expires_at) == (ArticleStatus.FAILED, "make_live failed: boom", None)
    assert fresh(other_claim).status == ArticleStatus.PUBLISHING
    assert fresh(other_claim).last_error == ""
    assert fresh(already_live).status == ArticleStatus.PUBLISHED
    assert fresh(taken_back).status == ArticleStatus.SCHEDULED
    # Idempotent: the errback may run twice.
    assert services.articles_fail_claimed(article_ids=ids, token=token, reason="again") == 0
    assert fresh(mine).last_error == "make_live failed: boom"


def test_fail_claimed_truncates_a_huge_reason():
    article = held()
    services.articles_fail_claimed(article_ids=[article.pk], token=str(article.claim_token), reason="x" * 20_000)
    assert len(fresh(article).last_error) == 5000


# --- every status change stamps updated_at (the dashboard and the daily report date changes by it) ---


def test_the_sweeper_giving_up_stamps_updated_at(dispatched):
    spent = held(-600, lease=-5, attempts=3)
    Article.objects.filter(pk=spent.pk).update(updated_at=timezone.now() - timedelta(days=2))
    before = timezone.now()
    services.articles_reclaim_expired_leases()
    row = fresh(spent)
    assert row.status == ArticleStatus.FAILED
    assert row.updated_at >= before - timedelta(seconds=1)


def test_a_claim_marking_an_article_missed_stamps_updated_at(settings, dispatched):
    settings.PUBLISHER_MAX_LATENESS = 60
    missed = make(-2 * 24 * 3600)  # fell due during a weekend of downtime
    Article.objects.filter(pk=missed.pk).update(updated_at=timezone.now() - timedelta(days=3))
    before = timezone.now()
    services.articles_claim_due(lookahead=0)
    row = fresh(missed)
    assert row.status == ArticleStatus.MISSED
    assert row.updated_at >= before - timedelta(seconds=1)
