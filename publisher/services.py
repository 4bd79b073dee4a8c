"""Article lifecycle: the one path every mutation takes (admin, scan, commands, "publish now").

Every transition is a compare-and-set UPDATE on the article row, conditioned on the status it
expects (and, while publishing, on the claim token), so two scans, two beats, a redelivered
message or an editor acting mid-flight can never make a row move twice. Work is enqueued only
after the transaction that claimed it commits.
"""

import dataclasses
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Q, Value, When, sql
from django.db.models.expressions import RawSQL
from django.db.models.functions import Greatest, Now
from django.utils import timezone

from . import dispatch
from .webhooks import services as webhooks
from .models import Article, ArticleEvent, ArticleEventAction, ArticleStatus

logger = logging.getLogger(__name__)

# States from which an editor may (re)schedule or unschedule. `publishing` is included on
# purpose: the editor wins over an in-flight claim, whose remaining steps then do nothing.
SCHEDULABLE = (ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING,
               ArticleStatus.FAILED, ArticleStatus.MISSED, ArticleStatus.EXPIRED)
UNSCHEDULABLE = (ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING, ArticleStatus.FAILED, ArticleStatus.MISSED)
RETRYABLE = (ArticleStatus.FAILED, ArticleStatus.MISSED)
MAX_YEARS_AHEAD = 100


class TransitionError(Exception):
    """The article is not in a state this action applies to (message says which and why)."""


@dataclass(frozen=True)
class Claim:
    token: str
    due: list[tuple[int, datetime]]  # (article id, publish_at), earliest first
    examined: int = 0  # rows the claim looked at (claimed, expired or missed): the batch cap applies to these

    @property
    def article_ids(self) -> list[int]:
        return [article_id for article_id, _ in self.due]


def _lease_expiry(*, from_publish_at: bool = False):
    """A claim's lease runs from when its work can start: now, or its publish time when the
    scan claimed it ahead (look-ahead dispatch)."""
    start = Greatest(F("publish_at"), Now()) if from_publish_at else Now()
    return ExpressionWrapper(start + timedelta(seconds=settings.PUBLISHER_LEASE_SECONDS), output_field=DateTimeField())


def _claimed(token: str) -> list[tuple[int, datetime]]:
    return list(Article.objects.filter(claim_token=token, status=ArticleStatus.PUBLISHING)
                .order_by("publish_at", "pk").values_list("id", "publish_at"))


def _released_claim() -> dict:
    return {"claim_token": None, "claimed_at": None, "lease_expires_at": None, "unfinished_runs": 0}


def validate_schedule(*, title: str, body: str, publish_at: datetime | None, unpublish_at: datetime | None) -> None:
    """Raise ValidationError, keyed by field, when these values cannot be scheduled."""
    errors: dict[str, str] = {}
    if not (title or "").strip():
        errors["title"] = "An article needs a title before it can be scheduled."
    if not (body or "").strip():
        errors["body"] = "An article needs a body before it can be scheduled."
    for field, value in (("publish_at", publish_at), ("unpublish_at", unpublish_at)):
        if value is None:
            continue
        if not isinstance(value, datetime):
            errors[field] = f"Expected a date and time, got {value!r}."
        elif timezone.is_naive(value):
            errors[field] = "The time must include its time zone (got a naive datetime)."
        elif abs(value.year - timezone.now().year) > MAX_YEARS_AHEAD:
            errors[field] = f"The year {value.year} is out of range (within {MAX_YEARS_AHEAD} years of now)."
    if publish_at is None:
        errors.setdefault("publish_at", "A publish time is required to schedule an article.")
    if "publish_at" not in errors and "unpublish_at" not in errors and unpublish_at is not None:
        if unpublish_at <= publish_at:
            errors["unpublish_at"] = "The unpublish time must be after the publish time."
    if errors:
        raise ValidationError(errors)


def _transition(article_id: int, *, allowed, action: str, **values) -> Article:
    updated = Article.objects.filter(pk=article_id, status__in=allowed).update(updated_at=Now(), **values)
    if not updated:
        current = Article.objects.filter(pk=article_id).values_list("status", flat=True).first()
        if current is None:
            raise TransitionError(f"Article #{article_id} no longer exists.")
        raise TransitionError(f"Cannot {action} article #{article_id}: it is {current}.")
    return Article.objects.get(pk=article_id)


def article_schedule(*, article_id: int, publish_at: datetime, unpublish_at: datetime | None = None) -> Article:
    """Schedule or reschedule. Overrides an in-flight claim: the editor wins, nothing half-publishes."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        raise TransitionError(f"Article #{article_id} no longer exists.")
    validate_schedule(title=article.title, body=article.body, publish_at=publish_at, unpublish_at=unpublish_at)
    with transaction.atomic():
        article = _transition(article_id, allowed=SCHEDULABLE, action="schedule",
                              status=ArticleStatus.SCHEDULED, publish_at=publish_at, unpublish_at=unpublish_at,
                              attempts=0, last_error="", **_released_claim())
        if publish_at <= timezone.now() + timedelta(seconds=settings.PUBLISHER_LOOKAHEAD):
            # Due before the next scan could see it: claim it now so it still goes out on the second.
            if articles_claim_due(article_ids=[article_id]):
                article.refresh_from_db()
    return article


def article_unschedule(*, article_id: int, clear_times: bool = False) -> Article:
    """Back to draft; an in-flight claim is abandoned (its remaining steps do nothing)."""
    times = {"publish_at": None, "unpublish_at": None} if clear_times else {}
    return _transition(article_id, allowed=UNSCHEDULABLE, action="unschedule",
                       status=ArticleStatus.DRAFT, **times, **_released_claim())


def article_set_unpublish_at(*, article_id: int, unpublish_at: datetime | None) -> Article:
    """Set or clear the take-down time of a live article."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        raise TransitionError(f"Article #{article_id} no longer exists.")
    if unpublish_at is not None:
        validate_schedule(title=article.title, body=article.body, publish_at=article.publish_at or article.published_at,
                          unpublish_at=unpublish_at)
    return _transition(article_id, allowed=(ArticleStatus.PUBLISHED,), action="change the unpublish time of",
                       unpublish_at=unpublish_at)


def article_retry(*, article_id: int) -> Article:
    """A failed (or missed) article goes back to `scheduled`; the next scan publishes it."""
    return _transition(article_id, allowed=RETRYABLE, action="retry",
                       status=ArticleStatus.SCHEDULED, attempts=0, last_error="", **_released_claim())


def article_publish_now(*, article_id: int) -> Article:
    """Claim one article now and send it down the same pipeline the scan uses."""
    with transaction.atomic():
        article = Article.objects.select_for_update().filter(pk=article_id).first()
        if article is None:
            raise TransitionError(f"Article #{article_id} no longer exists.")
        if article.status not in (ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.FAILED, ArticleStatus.MISSED):
            raise TransitionError(f"Cannot publish article #{article_id} now: it is {article.status}.")
        now = timezone.now()
        publish_at = article.publish_at if article.publish_at and article.publish_at <= now else now
        unpublish_at = article.unpublish_at
        if unpublish_at and unpublish_at <= now:
            raise TransitionError(f"Cannot publish article #{article_id} now: its unpublish time has passed.")
        validate_schedule(title=article.title, body=article.body, publish_at=publish_at, unpublish_at=unpublish_at)
        token = str(uuid.uuid4())
        Article.objects.filter(pk=article_id).update(
            status=ArticleStatus.PUBLISHING, publish_at=publish_at, claim_token=token, claimed_at=Now(),
            lease_expires_at=_lease_expiry(), attempts=1, last_error="", unfinished_runs=0,
        )
        due = [(article_id, publish_at)]
        transaction.on_commit(lambda: dispatch.publish_claimed(token=token, due=due, chunk_size=1))
    return Article.objects.get(pk=article_id)


def _due_ids(queryset, limit: int) -> list[int]:
    """Ids to claim. On PostgreSQL locks them, skipping rows another claimer holds."""
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True)
    return list(queryset.values_list("id", flat=True)[:limit])


def _update_first_returning(queryset, *, limit: int, values: dict, returning: tuple[str, ...]) -> list[tuple]:
    """Update the first `limit` rows of `queryset` (locked, skipping rows others hold, where the
    database can) and return the given columns of the rows changed. One statement:

        WITH due AS MATERIALIZED (SELECT id ... ORDER BY ... LIMIT n FOR UPDATE SKIP LOCKED)
        UPDATE ... SET ... WHERE id IN (SELECT id FROM due) RETURNING ...

    MATERIALIZED makes the SELECT run once: as a plain IN subquery PostgreSQL may re-run it inside
    a nested loop, and SKIP LOCKED then skips the rows this statement already updated and hands
    out more than `limit`. Django's update() neither returns rows nor takes a WITH, so the ORM
    compiles both parts and they are put together here (PostgreSQL; SQLite 3.35+)."""
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True)
    find, find_params = queryset.values("id")[:limit].query.sql_with_params()
    query = Article.objects.filter(pk__in=RawSQL('SELECT "id" FROM "due"', ())).query.chain(sql.UpdateQuery)
    query.add_update_values(values)
    update, update_params = query.get_compiler(queryset.db).as_sql()
    columns = ", ".join(connection.ops.quote_name(Article._meta.get_field(name).column) for name in returning)
    with connection.cursor() as cursor:
        cursor.execute(f'WITH "due" AS MATERIALIZED ({find}) {update} RETURNING {columns}',
                       (*find_params, *update_params))
        return cursor.fetchall()


def _aware(value) -> datetime:
    """A datetime read by raw SQL: PostgreSQL returns it aware, SQLite as UTC text."""
    value = Article._meta.get_field("publish_at").to_python(value)
    return value if timezone.is_aware(value) else timezone.make_aware(value, UTC)


def articles_claim_due(*, limit: int | None = None, lookahead: float | None = None,
                       article_ids: list[int] | None = None) -> Claim | None:
    """Claim up to `limit` scheduled articles due within `lookahead` seconds and dispatch them
    after commit. Articles not yet due wait in the broker with an ETA of their publish time
    (look-ahead dispatch: on time to the second, not to the scan interval), and the make-live
    step still refuses to flip one early by the database clock, the clock every host shares.

    Articles whose whole window passed while nothing ran become `expired` without going live;
    with a lateness policy, ones found too late become `missed`.

    One statement, whatever the table's size: it finds the earliest due rows through the partial
    index (article_due_idx), locks them skipping rows another scan holds (PostgreSQL), and
    claims them, each row's outcome (claimed, expired, missed) chosen by CASE, returning what it
    did. SQLite serializes writers, so the statement is the compare-and-set there.
    """
    limit = limit or settings.PUBLISHER_SCAN_BATCH
    lookahead = settings.PUBLISHER_LOOKAHEAD if lookahead is None else lookahead
    horizon = ExpressionWrapper(Now() + timedelta(seconds=lookahead), output_field=DateTimeField())
    token = str(uuid.uuid4())
    # What a due row becomes instead of being claimed, first match wins: (status, condition, reason).
    not_claimed = [(ArticleStatus.EXPIRED, Q(unpublish_at__lte=Now()),
                    "Not published: its publish and unpublish times both passed while publishing was down.")]
    if settings.PUBLISHER_MAX_LATENESS:
        too_late = ExpressionWrapper(Now() - timedelta(seconds=settings.PUBLISHER_MAX_LATENESS), output_field=DateTimeField())
        not_claimed.append((ArticleStatus.MISSED, Q(publish_at__lt=too_late),
                            f"Not published: found more than {settings.PUBLISHER_MAX_LATENESS} s after its publish time "
                            "(PUBLISHER_MAX_LATENESS). Retry to publish it anyway."))

    def by_outcome(claimed, field: str, value=None):
        """`claimed` for a row being claimed; for one that is not, `value(status, reason)` or, by
        default, the value it has."""
        return Case(*(When(condition, then=value(status, reason) if value else F(field))
                      for status, condition, reason in not_claimed),
                    default=claimed, output_field=Article._meta.get_field(field))

    with transaction.atomic():
        due = Article.objects.filter(status=ArticleStatus.SCHEDULED, publish_at__lte=horizon).order_by("publish_at")
        if article_ids is not None:
            due = due.filter(pk__in=article_ids)
        changed = _update_first_returning(due, limit=limit, values={
            "status": by_outcome(Value(ArticleStatus.PUBLISHING), "status", lambda status, _: Value(status)),
            "last_error": by_outcome(Value(""), "last_error", lambda _, reason: Value(reason)),
            "claim_token": by_outcome(Value(uuid.UUID(token)), "claim_token"),
            "claimed_at": by_outcome(Now(), "claimed_at"),
            "lease_expires_at": by_outcome(_lease_expiry(from_publish_at=True), "lease_expires_at"),
            "attempts": by_outcome(F("attempts") + 1, "attempts"),
            "unfinished_runs": 0,
            # Expired and missed rows are dated now (the dashboard and the report go by it); a claim
            # leaves it alone (stamping every claimed row cost the 1,000-row claim ~6 ms at 1M rows).
            "updated_at": by_outcome(F("updated_at"), "updated_at", lambda *_: Now()),
        }, returning=("id", "publish_at", "status"))
        if not changed:
            return None
        claimed = sorted(((pk, _aware(publish_at)) for pk, publish_at, status in changed
                          if status == ArticleStatus.PUBLISHING), key=lambda item: (item[1], item[0]))
        if claimed:
            transaction.on_commit(lambda: dispatch.publish_claimed(token=token, due=claimed))
    expired = sum(1 for *_, status in changed if status == ArticleStatus.EXPIRED)
    missed = sum(1 for *_, status in changed if status == ArticleStatus.MISSED)
    if expired or missed:
        logger.warning("scan: %d expired and %d missed articles found after downtime", expired, missed)
    return Claim(token=token, due=claimed, examined=len(changed))


def articles_reclaim_expired_leases(*, limit: int | None = None) -> tuple[Claim | None, int]:
    """The sweeper: re-dispatch claims whose lease ran out (worker killed, message lost,
    broker restarted), one article per chain so a poison article cannot take others down.
    After PUBLISHER_MAX_ATTEMPTS claims the article is `failed` with the reason.
    Returns (the new claim or None, how many were given up)."""
    limit = limit or settings.PUBLISHER_SCAN_BATCH
    token = str(uuid.uuid4())
    max_attempts = settings.PUBLISHER_MAX_ATTEMPTS
    with transaction.atomic():
        stale = Article.objects.filter(status=ArticleStatus.PUBLISHING, lease_expires_at__lte=Now()).order_by("lease_expires_at")
        ids = _due_ids(stale, limit)
        if not ids:
            return None, 0
        stale = Article.objects.filter(pk__in=ids, status=ArticleStatus.PUBLISHING, lease_expires_at__lte=Now())
        given_up = stale.filter(attempts__gte=max_attempts).update(
            status=ArticleStatus.FAILED,
            last_error=f"Gave up after {max_attempts} attempts: each claim's lease ({settings.PUBLISHER_LEASE_SECONDS} s) "
                       "expired before publishing finished (worker killed, message lost or broker restarted).",
            updated_at=Now(),
            **_released_claim(),
        )
        stale.filter(attempts__lt=max_attempts).update(
            claim_token=token, claimed_at=Now(), lease_expires_at=_lease_expiry(), attempts=F("attempts") + 1,
            unfinished_runs=0,
        )
        reclaimed = _claimed(token)
        if reclaimed:
            transaction.on_commit(lambda: dispatch.publish_claimed(token=token, due=reclaimed, chunk_size=1))
    if reclaimed or given_up:
        logger.warning("sweeper: re-dispatched %d expired claims, gave up on %d", len(reclaimed), given_up)
    return (Claim(token=token, due=reclaimed) if reclaimed else None), given_up


def articles_take_down_expired() -> int:
    """Published articles whose unpublish_at passed become `expired` (and their `unpublished`
    webhooks are recorded in the same transaction)."""
    with transaction.atomic():
        ids = list(Article.objects.select_for_update().filter(status=ArticleStatus.PUBLISHED, unpublish_at__lte=Now())
                   .values_list("id", flat=True))
        taken_down = Article.objects.filter(pk__in=ids, status=ArticleStatus.PUBLISHED).update(
            status=ArticleStatus.EXPIRED, updated_at=Now())
        webhooks.record(event="unpublished", article_ids=ids)
    return taken_down


def articles_fail_claimed(*, article_ids: list[int], token: str, reason: str) -> int:
    """Record a failure on the articles this claim still holds (retries spent). Idempotent."""
    failed = Article.objects.filter(pk__in=article_ids, claim_token=token, status=ArticleStatus.PUBLISHING).update(
        status=ArticleStatus.FAILED, last_error=reason[:5000], lease_expires_at=None, updated_at=Now(),
    )
    if failed:
        logger.error("%d articles failed (claim %s): %s", failed, token, reason)
    return failed


# --- Editor actions (the admin) ------------------------------------------------------------
# Each is one of the transitions above plus its audit event, written in the same transaction.
# Bulk variants take one article at a time, each in its own transaction, so an article that
# cannot move is reported with the reason and the rest still go.

@dataclass(frozen=True)
class Skipped:
    article_id: int
    title: str
    reason: str


@dataclass
class BulkResult:
    done: list[Article] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)


# Why an action does not apply to an article in a given state, in the editor's words.
NOT_APPLICABLE = {
    "schedule": {
        ArticleStatus.PUBLISHED: "it is already live (change its unpublish time on the article instead)",
    },
    "unschedule": {
        ArticleStatus.DRAFT: "it is already a draft",
        ArticleStatus.PUBLISHED: "it is already live (set an unpublish time to take it down)",
        ArticleStatus.EXPIRED: "it has expired, there is nothing to unschedule",
    },
    "publish now": {
        ArticleStatus.PUBLISHED: "it is already live",
        ArticleStatus.PUBLISHING: "it is being published right now",
        ArticleStatus.EXPIRED: "it has expired (schedule it again to put it back)",
    },
    "retry": {
        status: f"it is {label.lower()}, not failed: only failed or missed articles can be retried"
        for status, label in ArticleStatus.choices if status not in RETRYABLE
    },
}


def _reasons(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


def article_event_record(*, article: Article, action: str, actor: AbstractBaseUser | None,
                         previous_status: str = "", previous_publish_at: datetime | None = None) -> ArticleEvent:
    """Append one audit event describing the article as it is now. Call it inside the
    transaction that made the change."""
    return ArticleEvent.objects.create(
        article=article, action=action, actor=actor if actor is not None and actor.is_authenticated else None,
        publish_at=article.publish_at, unpublish_at=article.unpublish_at,
        previous_status=previous_status, previous_publish_at=previous_publish_at,
    )


def article_update_schedule(*, article_id: int, publish_at: datetime | None, unpublish_at: datetime | None,
                            actor: AbstractBaseUser | None) -> ArticleEvent | None:
    """The article form's single call after the editor saved new times. Schedules a draft that
    has a publish time, reschedules a scheduled (or in-flight, or failed) article in place, sends
    it back to draft when the publish time was cleared, or changes a live article's take-down
    time. Returns the audit event, or None when the times did not change anything."""
    with transaction.atomic():
        before = Article.objects.select_for_update().filter(pk=article_id).first()
        if before is None:
            raise TransitionError(f"Article #{article_id} no longer exists.")
        changed = (publish_at, unpublish_at) != (before.publish_at, before.unpublish_at)
        if before.status == ArticleStatus.PUBLISHED:
            if unpublish_at == before.unpublish_at:
                return None
            article = article_set_unpublish_at(article_id=article_id, unpublish_at=unpublish_at)
            webhooks.record(event="updated", article_ids=[article_id])
            action = ArticleEventAction.UNPUBLISH_CHANGED
        elif publish_at is None:
            if before.status not in UNSCHEDULABLE:
                # A draft (or expired article) keeps no times of its own without a publish time.
                if changed:
                    Article.objects.filter(pk=article_id, status=before.status).update(
                        publish_at=None, unpublish_at=None, updated_at=Now())
                return None
            article = article_unschedule(article_id=article_id, clear_times=True)
            action = ArticleEventAction.UNSCHEDULED
        elif before.status == ArticleStatus.DRAFT or changed:
            article = article_schedule(article_id=article_id, publish_at=publish_at, unpublish_at=unpublish_at)
            action = (ArticleEventAction.SCHEDULED if before.status in (ArticleStatus.DRAFT, ArticleStatus.EXPIRED)
                      else ArticleEventAction.RESCHEDULED)
        else:
            return None
        return article_event_record(article=article, action=action, actor=actor, previous_status=before.status,
                                    previous_publish_at=before.publish_at)


def _bulk(article_ids: list[int], verb: str, apply, actor: AbstractBaseUser | None) -> BulkResult:
    """Run `apply(row) -> (article, event action)` on each article in id order, one transaction
    each, and record the audit event, or the reason the article was skipped."""
    result = BulkResult()
    rows = {row.pk: row for row in Article.objects.filter(pk__in=article_ids)
            .only("id", "title", "status", "publish_at", "unpublish_at")}
    for article_id in sorted(set(article_ids)):
        row = rows.get(article_id)
        if row is None:
            result.skipped.append(Skipped(article_id, f"Article #{article_id}", "it no longer exists"))
            continue
        reason = NOT_APPLICABLE.get(verb, {}).get(row.status)
        if reason:
            result.skipped.append(Skipped(article_id, str(row), reason))
            continue
        try:
            with transaction.atomic():
                article, action = apply(row)
                article_event_record(article=article, action=action, actor=actor, previous_status=row.status,
                                     previous_publish_at=row.publish_at)
        except (ValidationError, TransitionError) as exc:
            result.skipped.append(Skipped(article_id, str(row), _reasons(exc)))
        else:
            result.done.append(article)
    return result


def articles_schedule(*, article_ids: list[int], publish_at: datetime, unpublish_at: datetime | None = None,
                      spacing: timedelta | None = None, actor: AbstractBaseUser | None) -> BulkResult:
    """Schedule (or reschedule) each article for `publish_at`, or, with `spacing`, one after
    another that far apart in id order. Same rules and same claim-at-once for near-due times as
    `article_schedule`; an article that cannot be scheduled is skipped with the reason."""
    scheduled = 0  # slots go to the articles that take them: a skipped one leaves no gap

    def apply(row):
        nonlocal scheduled
        when = publish_at + spacing * scheduled if spacing else publish_at
        article = article_schedule(article_id=row.pk, publish_at=when, unpublish_at=unpublish_at)
        scheduled += 1
        action = (ArticleEventAction.RESCHEDULED if row.status in (ArticleStatus.SCHEDULED, ArticleStatus.PUBLISHING)
                  else ArticleEventAction.SCHEDULED)
        return article, action

    return _bulk(article_ids, "schedule", apply, actor)


def articles_unschedule(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Back to draft, publish and unpublish times cleared (the audit event keeps the old ones)."""
    return _bulk(article_ids, "unschedule", lambda row: (
        article_unschedule(article_id=row.pk, clear_times=True), ArticleEventAction.UNSCHEDULED), actor)


def articles_publish_now(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Claim each article now and send it down the scan's own pipeline (`article_publish_now`)."""
    return _bulk(article_ids, "publish now", lambda row: (
        article_publish_now(article_id=row.pk), ArticleEventAction.PUBLISHED_NOW), actor)


def articles_retry(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Give failed (or missed) articles another go through the same pipeline. One whose publish
    time has come is claimed and dispatched now (a lateness policy does not mark it missed again:
    retrying is the editor saying "publish it anyway"); one whose publish time is still ahead goes
    back to `scheduled` and is published at that time, never early."""

    def apply(row):
        if row.publish_at is not None and row.publish_at > timezone.now():
            article = article_retry(article_id=row.pk)
            if articles_claim_due(article_ids=[row.pk]):  # within the look-ahead: on the second
                article.refresh_from_db()
        else:
            article = article_publish_now(article_id=row.pk)
        return article, ArticleEventAction.RETRIED

    return _bulk(article_ids, "retry", apply, actor)


def article_import(*, title: str, body: str, publish_at: datetime | None, unpublish_at: datetime | None,
                   actor: AbstractBaseUser | None = None) -> Article:
    """Create one article from outside the admin (the import command) the way the admin does:
    saved as a draft, then scheduled through `article_update_schedule` when it has a publish
    time, in one transaction. A row that fails any check raises ValidationError (or
    TransitionError) and leaves nothing behind."""
    article = Article(title=title, body=body, status=ArticleStatus.DRAFT)
    article.full_clean(exclude=["image", "publish_at", "unpublish_at"])
    if publish_at is None and unpublish_at is not None:
        raise ValidationError({"unpublish_at": "An unpublish time needs a publish time."})
    if publish_at is not None:
        validate_schedule(title=title, body=body, publish_at=publish_at, unpublish_at=unpublish_at)
    with transaction.atomic():
        article.save()
        if publish_at is not None:
            article_update_schedule(article_id=article.pk, publish_at=publish_at, unpublish_at=unpublish_at,
                                    actor=actor)
    return Article.objects.get(pk=article.pk)
