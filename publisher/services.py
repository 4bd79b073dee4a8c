"""Article lifecycle: the one path every mutation takes (admin, scan, commands, "publish now").

Every transition is one declared in publisher.states, taken through
`Article.objects.transition`: a compare-and-set UPDATE on the article row, conditioned on the
statuses it leaves from (and, while publishing, on the claim token), so two scans, two beats, a
redelivered message or an editor acting mid-flight can never make a row move twice. Work is
enqueued only after the transaction that claimed it commits.
"""

import dataclasses
import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, Value
from django.db.models.functions import Greatest, Now
from django.utils import timezone

from . import dispatch, preflight, schedule_rules
from .models import Article, ArticleEvent, ArticleStatus
from .rendering import render_body
from .states import ACTIONS, IN_RELEASE_REASON, TRANSITIONS
from .text import error_text
from .site.services import article_ensure_slug
from .webhooks import services as webhooks

logger = logging.getLogger(__name__)


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
    return list(Article.objects.in_flight(token)
                .order_by("publish_at", "pk").values_list("id", "publish_at"))


def _released_claim() -> dict:
    return {"claim_token": None, "claimed_at": None, "lease_expires_at": None, "unfinished_runs": 0}


def validate_schedule(*, title: str, body: str, publish_at: datetime | None, unpublish_at: datetime | None) -> None:
    """Raise schedule_rules.ScheduleErrors (a ValidationError keyed by field, each error with its
    rule code) when these values cannot be scheduled."""
    schedule_rules.raise_errors(schedule_rules.schedule_errors(title=title, body=body, publish_at=publish_at,
                                                               unpublish_at=unpublish_at))


def _transition(article_id: int, name: str, *, action: str, actor: AbstractBaseUser | None, **values) -> Article:
    """Take the declared transition `name` on one article, recording the audit event (actor None:
    the system), or raise TransitionError saying why it does not apply."""
    if not Article.objects.filter(pk=article_id).transition(name, actor=actor, **values):
        current = Article.objects.filter(pk=article_id).values_list("status", flat=True).first()
        if current is None:
            raise TransitionError(f"Article #{article_id} no longer exists.")
        if current == ArticleStatus.IN_RELEASE:  # the state machine's words: it goes with its release
            raise TransitionError(f"Cannot {action} article #{article_id}: {IN_RELEASE_REASON}.")
        raise TransitionError(f"Cannot {action} article #{article_id}: it is {current}.")
    return Article.objects.get(pk=article_id)


def article_record_created(*, article_id: int, actor: AbstractBaseUser | None) -> ArticleEvent:
    """The first line of an article's Activity: who created it (what lets an editor delete
    their own drafts)."""
    user = actor if actor is not None and actor.is_authenticated else None
    return ArticleEvent.objects.create(article_id=article_id, actor=user, action="created",
                                       previous_status=ArticleStatus.DRAFT)


def article_schedule(*, article_id: int, publish_at: datetime, unpublish_at: datetime | None = None,
                     actor: AbstractBaseUser | None = None, claim_due: bool = True) -> Article:
    """Schedule or reschedule, with its audit event. Overrides an in-flight claim: the editor
    wins, nothing half-publishes. `claim_due=False`: the caller claims near-due articles itself,
    many at once (the importer), instead of one chain per article."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        raise TransitionError(f"Article #{article_id} no longer exists.")
    validate_schedule(title=article.title, body=article.body, publish_at=publish_at, unpublish_at=unpublish_at)
    with transaction.atomic():
        article = _transition(article_id, "schedule", action="schedule", actor=actor,
                              publish_at=publish_at, unpublish_at=unpublish_at,
                              attempts=0, last_error="", **_released_claim())
        if article_ensure_slug(article_id=article_id) != article.slug:
            article.refresh_from_db(fields=["slug"])
        if claim_due and publish_at <= timezone.now() + timedelta(seconds=settings.PUBLISHER_LOOKAHEAD):
            # Due before the next scan could see it: claim it now so it still goes out on the second.
            if articles_claim_due(article_ids=[article_id]):
                article.refresh_from_db()
        if claim_due and article.status == ArticleStatus.SCHEDULED and preflight.within_window(publish_at):
            # Scheduled closer than the pre-flight window: checked at once, not at the next scan.
            transaction.on_commit(lambda: preflight.article_preflight_soon(article_id=article_id))
    return article


def article_unschedule(*, article_id: int, clear_times: bool = False, actor: AbstractBaseUser | None = None) -> Article:
    """Back to draft, with its audit event; an in-flight claim is abandoned (its remaining steps
    do nothing)."""
    times = {"publish_at": None, "unpublish_at": None} if clear_times else {}
    return _transition(article_id, "unschedule", action="unschedule", actor=actor, **times, **_released_claim())


def article_set_unpublish_at(*, article_id: int, unpublish_at: datetime | None,
                             actor: AbstractBaseUser | None = None) -> Article:
    """Set or clear the take-down time of a live article."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        raise TransitionError(f"Article #{article_id} no longer exists.")
    if unpublish_at is not None:
        validate_schedule(title=article.title, body=article.body, publish_at=article.publish_at or article.published_at,
                          unpublish_at=unpublish_at)
    return _transition(article_id, "change_unpublish", action="change the unpublish time of", actor=actor,
                       unpublish_at=unpublish_at)


def article_record_published(*, article_id: int, published_at: datetime, unpublish_at: datetime | None = None,
                             actor: AbstractBaseUser | None = None) -> Article:
    """Back-catalogue: record an article as live since `published_at` (a time already past)
    without the pipeline: its body is rendered and sanitized here, exactly as the pipeline
    would, and no subscriber is mailed and no webhook sent (it is not news). No thumbnail is
    made: the page shows the image itself."""
    article = Article.objects.filter(pk=article_id).first()
    if article is None:
        raise TransitionError(f"Article #{article_id} no longer exists.")
    if published_at > timezone.now():
        raise ValidationError("Only a time that has passed can be recorded as the publish time.",
                              code="record_in_future")
    validate_schedule(title=article.title, body=article.body, publish_at=published_at, unpublish_at=unpublish_at)
    body_html, excerpt, word_count = render_body(article.body)
    with transaction.atomic():
        article = _transition(article_id, "record_published", action="record as published", actor=actor,
                              publish_at=published_at, published_at=published_at, unpublish_at=unpublish_at,
                              body_html=body_html, excerpt=excerpt, word_count=word_count, preflight_fingerprint="",
                              attempts=0,
                              last_error="", **_released_claim())
        if article_ensure_slug(article_id=article_id) != article.slug:
            article.refresh_from_db(fields=["slug"])
    return article


def article_unpublish_now(*, article_id: int, actor: AbstractBaseUser | None = None) -> Article:
    """Take a live article down now (`expired`: its page answers 410 Gone), with its audit event
    and its `unpublished` webhook in the same transaction. Scheduling it again puts it back."""
    with transaction.atomic():
        article = _transition(article_id, "unpublish_now", action="unpublish", actor=actor)
        webhooks.record(event="unpublished", article_ids=[article_id])
    return article


def article_retry(*, article_id: int, actor: AbstractBaseUser | None = None) -> Article:
    """A failed (or missed) article goes back to `scheduled`; the next scan publishes it."""
    return _transition(article_id, "retry", action="retry", actor=actor,
                       attempts=0, last_error="", **_released_claim())


def article_publish_now(*, article_id: int, actor: AbstractBaseUser | None = None,
                        transition: str = "publish_now") -> Article:
    """Claim one article now and send it down the same pipeline the scan uses (`retry_now`:
    the same, recorded as a retry)."""
    with transaction.atomic():
        article = Article.objects.select_for_update().filter(pk=article_id).first()
        if article is None:
            raise TransitionError(f"Article #{article_id} no longer exists.")
        if article.status not in TRANSITIONS[transition].sources:
            raise TransitionError(f"Cannot publish article #{article_id} now: it is {article.status}.")
        now = timezone.now()
        publish_at = article.publish_at if article.publish_at and article.publish_at <= now else now
        unpublish_at = article.unpublish_at
        if unpublish_at and unpublish_at <= now:
            raise TransitionError(f"Cannot publish article #{article_id} now: its unpublish time has passed.")
        validate_schedule(title=article.title, body=article.body, publish_at=publish_at, unpublish_at=unpublish_at)
        token = str(uuid.uuid4())
        Article.objects.filter(pk=article_id).transition(
            transition, actor=actor, publish_at=publish_at, claim_token=token, claimed_at=Now(),
            lease_expires_at=_lease_expiry(), attempts=1, last_error="", unfinished_runs=0,
        )
        article_ensure_slug(article_id=article_id)
        due = [(article_id, publish_at)]
        transaction.on_commit(lambda: dispatch.publish_claimed(token=token, due=due, chunk_size=1))
    return Article.objects.get(pk=article_id)


def _due_ids(queryset, limit: int) -> list[int]:
    """Ids to claim. On PostgreSQL locks them, skipping rows another claimer holds."""
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True)
    return list(queryset.values_list("id", flat=True)[:limit])


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
    # What a due row becomes instead of being claimed, first match wins: (transition, condition, reason).
    not_claimed = [("expire_unclaimed", Q(unpublish_at__lte=Now()),
                    "Not published: its publish and unpublish times both passed while publishing was down.")]
    if settings.PUBLISHER_MAX_LATENESS:
        too_late = ExpressionWrapper(Now() - timedelta(seconds=settings.PUBLISHER_MAX_LATENESS), output_field=DateTimeField())
        not_claimed.append(("miss", Q(publish_at__lt=too_late),
                            f"Not published: found more than {settings.PUBLISHER_MAX_LATENESS} s after its publish time "
                            "(PUBLISHER_MAX_LATENESS). Retry to publish it anyway."))

    with transaction.atomic():
        due = Article.objects.due(horizon).order_by("publish_at")
        if article_ids is not None:
            due = due.filter(pk__in=article_ids)
        changed = due.claim_first(limit=limit, outcomes=not_claimed, values={
            "claim_token": Value(uuid.UUID(token)),
            "claimed_at": Now(),
            "lease_expires_at": _lease_expiry(from_publish_at=True),
            "attempts": F("attempts") + 1,
        }, always={"unfinished_runs": 0}, returning=("id", "publish_at", "status"))
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
        ids = _due_ids(Article.objects.stale_claims().order_by("lease_expires_at"), limit)
        if not ids:
            return None, 0
        stale = Article.objects.filter(pk__in=ids).stale_claims()
        giving_up = list(stale.filter(attempts__gte=max_attempts).values_list("id", flat=True))
        given_up = stale.filter(pk__in=giving_up).transition(
            "fail", actor=None,
            last_error=f"Gave up after {max_attempts} attempts: each claim's lease ({settings.PUBLISHER_LEASE_SECONDS} s) "
                       "expired before publishing finished (worker killed, message lost or broker restarted).",
            **_released_claim(),
        )
        stale.filter(attempts__lt=max_attempts).transition(
            "reclaim",
            claim_token=token, claimed_at=Now(), lease_expires_at=_lease_expiry(), attempts=F("attempts") + 1,
            unfinished_runs=0,
        )
        reclaimed = _claimed(token)
        if given_up:
            transaction.on_commit(lambda: dispatch.failure_alerts(article_ids=giving_up))
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
        taken_down = Article.objects.filter(pk__in=ids, unpublish_at__lte=Now()).transition("take_down")
        webhooks.record(event="unpublished", article_ids=ids)
    return taken_down


def articles_release_dropped_claims(*, tokens: list[str]) -> int:
    """A worker lost the broker connection while it held these claims' messages for their ETA:
    they cannot be acknowledged any more and may be gone with the broker. End the claims' leases
    now so the next scan's sweeper re-dispatches them (new token, attempts + 1, bounded by
    PUBLISHER_MAX_ATTEMPTS) instead of waiting out the lease. A copy that survives in the
    broker and is delivered later finds its old token replaced and does nothing."""
    valid = []
    for token in tokens:
        try:
            valid.append(uuid.UUID(token))
        except (TypeError, ValueError):
            logger.warning("not a claim token, ignored: %r", token)
    if not valid:
        return 0
    return Article.objects.filter(claim_token__in=valid, status=ArticleStatus.PUBLISHING).update(
        lease_expires_at=Now())


def articles_step_gave_up(*, article_ids: list[int], token: str, reason: str, transient: bool) -> int:
    """A publishing step gave up on a chunk (its retries are spent). A transient cause (the broker
    or the database unreachable for longer than the retries, e.g. while forwarding the chain to
    the next step) is a delay, not the articles' fault: the rows stay `publishing` under the
    claim, its lease runs out and the sweeper re-dispatches them (at most PUBLISHER_MAX_ATTEMPTS
    claims, then `failed` with the reason). Anything else fails them now. Returns how many failed."""
    if transient:
        logger.warning("%d articles left to the lease and the sweeper (claim %s): %s", len(article_ids), token, reason)
        return 0
    return articles_fail_claimed(article_ids=article_ids, token=token, reason=reason)


def articles_fail_claimed(*, article_ids: list[int], token: str, reason: str) -> int:
    """Record a failure on the articles this claim still holds (retries spent), in each one's
    Activity (a system event with the reason), and e-mail whoever scheduled them once that
    commits. Idempotent: a second call finds them failed and records nothing."""
    with transaction.atomic():
        held = list(Article.objects.in_flight(token).filter(pk__in=article_ids).values_list("id", flat=True))
        failed = Article.objects.filter(pk__in=held).transition(
            "fail", token=token, actor=None, last_error=reason[:5000], lease_expires_at=None)
        if failed:
            transaction.on_commit(lambda: dispatch.failure_alerts(article_ids=held))
    if failed:
        logger.error("%d articles failed (claim %s): %s", failed, token, reason)
    return failed


# --- Editor actions (the admin) ------------------------------------------------------------
# Each is one of the transitions above; the transition writes its audit event in the same
# transaction, so the per-article and bulk entry points record the same thing. Bulk variants
# take one article at a time, each in its own transaction, so an article that cannot move is
# reported with the reason and the rest still go.

@dataclass(frozen=True)
class Skipped:
    article_id: int
    title: str
    reason: str


@dataclass
class BulkResult:
    done: list[Article] = dataclasses.field(default_factory=list)
    skipped: list[Skipped] = dataclasses.field(default_factory=list)




def article_update_schedule(*, article_id: int, publish_at: datetime | None, unpublish_at: datetime | None,
                            actor: AbstractBaseUser | None, claim_due: bool = True) -> ArticleEvent | None:
    """The article form's single call after the editor saved new times. Schedules a draft that
    has a publish time, reschedules a scheduled (or in-flight, or failed) article in place, sends
    it back to draft when the publish time was cleared, or changes a live article's take-down
    time. Returns the audit event, or None when the times did not change anything. A content
    edit saved with it is pre-flight checked at once when the article is due within the window."""
    with transaction.atomic():
        if claim_due and publish_at is not None and preflight.within_window(publish_at):
            transaction.on_commit(lambda: preflight.article_preflight_soon(article_id=article_id))
        before = Article.objects.select_for_update().filter(pk=article_id).first()
        if before is None:
            raise TransitionError(f"Article #{article_id} no longer exists.")
        changed = (publish_at, unpublish_at) != (before.publish_at, before.unpublish_at)
        if before.status == ArticleStatus.PUBLISHED:
            if unpublish_at == before.unpublish_at:
                return None
            article_set_unpublish_at(article_id=article_id, unpublish_at=unpublish_at, actor=actor)
            webhooks.record(event="updated", article_ids=[article_id])
        elif publish_at is None:
            if before.status not in TRANSITIONS["unschedule"].sources:
                # A draft (or expired article) keeps no times of its own without a publish time.
                if changed:
                    Article.objects.filter(pk=article_id).transition("clear_times", publish_at=None,
                                                                     unpublish_at=None)
                return None
            article_unschedule(article_id=article_id, clear_times=True, actor=actor)
        elif before.status == ArticleStatus.DRAFT or changed:
            article_schedule(article_id=article_id, publish_at=publish_at, unpublish_at=unpublish_at, actor=actor,
                             claim_due=claim_due)
        else:
            return None
        return ArticleEvent.objects.filter(article_id=article_id).select_related("actor").first()


def _bulk(article_ids: list[int], action: str, apply) -> BulkResult:
    """Run `apply(row) -> article` on each article in id order, one transaction each, or
    record the reason the article was skipped (the state machine's, or the error's)."""
    result = BulkResult()
    rows = {row.pk: row for row in Article.objects.filter(pk__in=article_ids)
            .only("id", "title", "status", "publish_at", "unpublish_at")}
    for article_id in sorted(set(article_ids)):
        row = rows.get(article_id)
        if row is None:
            result.skipped.append(Skipped(article_id, f"Article #{article_id}", "it no longer exists"))
            continue
        reason = ACTIONS[action].reason(row.status)
        if reason:
            result.skipped.append(Skipped(article_id, str(row), reason))
            continue
        try:
            with transaction.atomic():
                article = apply(row)
        except (ValidationError, TransitionError) as exc:
            result.skipped.append(Skipped(article_id, str(row), error_text(exc)))
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
        article = article_schedule(article_id=row.pk, publish_at=when, unpublish_at=unpublish_at, actor=actor)
        scheduled += 1
        return article

    return _bulk(article_ids, "schedule", apply)


def articles_unschedule(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Back to draft, publish and unpublish times cleared (the audit event keeps the old ones)."""
    return _bulk(article_ids, "unschedule",
                 lambda row: article_unschedule(article_id=row.pk, clear_times=True, actor=actor))


def articles_publish_now(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Claim each article now and send it down the scan's own pipeline (`article_publish_now`)."""
    return _bulk(article_ids, "publish_now", lambda row: article_publish_now(article_id=row.pk, actor=actor))


def articles_unpublish_now(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Take each live article down now (`article_unpublish_now`)."""
    return _bulk(article_ids, "unpublish_now", lambda row: article_unpublish_now(article_id=row.pk, actor=actor))


def articles_retry(*, article_ids: list[int], actor: AbstractBaseUser | None) -> BulkResult:
    """Give failed (or missed) articles another go through the same pipeline. One whose publish
    time has come is claimed and dispatched now (a lateness policy does not mark it missed again:
    retrying is the editor saying "publish it anyway"); one whose publish time is still ahead goes
    back to `scheduled` and is published at that time, never early."""

    def apply(row):
        if row.publish_at is not None and row.publish_at > timezone.now():
            article = article_retry(article_id=row.pk, actor=actor)
            if articles_claim_due(article_ids=[row.pk]):  # within the look-ahead: on the second
                article.refresh_from_db()
            return article
        return article_publish_now(article_id=row.pk, actor=actor, transition="retry_now")

    return _bulk(article_ids, "retry", apply)


class ImportOutcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    EXISTING = "existing"  # already imported, and live, past or unchanged: left as it is


@dataclass(frozen=True)
class Imported:
    article: Article
    outcome: ImportOutcome


def article_import_key(*, title: str, body: str, publish_at: datetime | None) -> str:
    """What recognises a row imported before when the file gives no external id: a hash of
    title, publish time (UTC) and body."""
    when = publish_at.astimezone(UTC).isoformat() if publish_at else ""
    return hashlib.sha256("\x1f".join((title, when, body)).encode()).hexdigest()


def article_import(*, title: str, body: str, publish_at: datetime | None, unpublish_at: datetime | None,
                   external_id: str | None = None, actor: AbstractBaseUser | None = None,
                   claim_due: bool = True) -> Imported:
    """Create or update one article from outside the admin (the import command) the way the
    admin does: saved as a draft, then scheduled through `article_update_schedule` when it has a
    publish time, in one transaction. A row that fails any check raises ValidationError (or
    TransitionError) and leaves nothing behind.

    Idempotent: the row is found again by `external_id`, or without one by its content key
    (`article_import_key`), both unique in the database. An article found by external id that is
    still a draft, or scheduled for a time still ahead, is updated to the row; one that is live,
    in flight, done or past its publish time, or found by content key, is left alone (EXISTING). Re-running a file never duplicates an
    article, so never mails a subscriber twice. `claim_due=False`: near-due articles are left
    `scheduled` for the caller to claim in chunks (`articles_claim_imported`)."""
    key = _import_lookup(title=title, body=body, publish_at=publish_at, external_id=external_id)
    try:
        return _article_import(title=title, body=body, publish_at=publish_at, unpublish_at=unpublish_at,
                               key=key, actor=actor, claim_due=claim_due)
    except IntegrityError:
        if not Article.objects.filter(**key).exists():
            raise
        # Another import created the same row between our look-up and our insert: it is there now.
        return _article_import(title=title, body=body, publish_at=publish_at, unpublish_at=unpublish_at,
                               key=key, actor=actor, claim_due=claim_due)


def article_import_check(*, title: str, body: str, publish_at: datetime | None, unpublish_at: datetime | None,
                         external_id: str | None = None) -> Imported:
    """What `article_import` would do with this row, without writing anything (the dry run):
    the same look-up, the same checks and errors, and an unsaved Article with the status it
    would get. Only reads, so it never holds a write lock (on SQLite: never blocks publishing).
    Rows repeated within one file are not seen as existing, since the first was never written."""
    key = _import_lookup(title=title, body=body, publish_at=publish_at, external_id=external_id)
    existing = Article.objects.filter(**key).first()
    outcome = _import_plan(existing, title=title, body=body, publish_at=publish_at, unpublish_at=unpublish_at)
    if outcome == ImportOutcome.EXISTING:
        return Imported(existing, outcome)
    article = Article(pk=existing.pk if existing else None, title=title, body=body, publish_at=publish_at,
                      unpublish_at=unpublish_at, **key,
                      status=ArticleStatus.SCHEDULED if publish_at is not None else ArticleStatus.DRAFT)
    article.full_clean(exclude=_IMPORT_CLEAN_EXCLUDE, validate_unique=False)
    return Imported(article, outcome)


_IMPORT_CLEAN_EXCLUDE = ["image", "publish_at", "unpublish_at", "slug", "external_id", "import_key"]


def _import_lookup(*, title: str, body: str, publish_at: datetime | None, external_id: str | None) -> dict:
    external_id = (external_id or "").strip() or None
    if external_id:
        return {"external_id": external_id}
    return {"import_key": article_import_key(title=title, body=body, publish_at=publish_at)}


def _import_plan(existing: Article | None, *, title, body, publish_at, unpublish_at) -> ImportOutcome:
    """CREATED, UPDATED or EXISTING for this row, or raise the row's errors. An article found
    live, in flight, finished or past its publish time is EXISTING whatever the row says (its
    times would now be refused as past, and it must not change under the pipeline). So is one
    found by content key: the row is the one imported before, and an editor may have changed
    the article since (only an external id says "this row replaces that article")."""
    if existing is not None and existing.external_id is None:
        return ImportOutcome.EXISTING
    if existing is not None and not (
            existing.status == ArticleStatus.DRAFT
            or (existing.status == ArticleStatus.SCHEDULED and existing.publish_at > timezone.now())):
        return ImportOutcome.EXISTING
    if publish_at is None:
        errors = (schedule_rules.content_errors(title=title, body=body, scheduling=False)
                  + schedule_rules.window_errors(publish_at=None, unpublish_at=unpublish_at))
    else:
        errors = schedule_rules.schedule_errors(title=title, body=body, publish_at=publish_at,
                                                unpublish_at=unpublish_at)
        # The file's times are newly entered: the same policy as the admin's form.
        errors = errors or schedule_rules.entered_time_errors(publish_at=publish_at, unpublish_at=unpublish_at)
    schedule_rules.raise_errors(errors)
    if existing is None:
        return ImportOutcome.CREATED
    if (title, body) != (existing.title, existing.body):
        return ImportOutcome.UPDATED
    if publish_at is None:  # back to draft, or a draft staying one (a draft keeps no times)
        return ImportOutcome.UPDATED if existing.status == ArticleStatus.SCHEDULED else ImportOutcome.EXISTING
    unchanged = (existing.status == ArticleStatus.SCHEDULED
                 and (publish_at, unpublish_at) == (existing.publish_at, existing.unpublish_at))
    return ImportOutcome.EXISTING if unchanged else ImportOutcome.UPDATED


def _article_import(*, title, body, publish_at, unpublish_at, key: dict, actor, claim_due: bool) -> Imported:
    with transaction.atomic():
        existing = Article.objects.select_for_update().filter(**key).first()
        outcome = _import_plan(existing, title=title, body=body, publish_at=publish_at, unpublish_at=unpublish_at)
        if outcome == ImportOutcome.EXISTING:
            return Imported(existing, outcome)
        article = existing or Article(status=ArticleStatus.DRAFT, **key)
        article.title, article.body = title, body
        article.full_clean(exclude=_IMPORT_CLEAN_EXCLUDE, validate_unique=False)
        article.save()
        if publish_at is not None or existing is not None:
            article_update_schedule(article_id=article.pk, publish_at=publish_at, unpublish_at=unpublish_at,
                                    actor=actor, claim_due=claim_due)
    return Imported(Article.objects.get(pk=article.pk), outcome)


def articles_claim_imported(*, article_ids: list[int]) -> int:
    """Claim the imported articles that are due now or within the look-ahead, and dispatch them
    in chunks of PUBLISHER_CHUNK_SIZE like the scan (not one chain per article). Returns how
    many were claimed."""
    claimed = 0
    for start in range(0, len(article_ids), settings.PUBLISHER_SCAN_BATCH):
        batch = article_ids[start:start + settings.PUBLISHER_SCAN_BATCH]
        while claim := articles_claim_due(article_ids=batch):
            claimed += len(claim.due)
    return claimed
