"""Releases: articles that go live together, in one database transaction, or not at all.

A release's members are never claimed one by one: the scan claims the release within
PUBLISHER_RELEASE_LOOKAHEAD (`preparing`, a claim token and a lease of its own), its members
under the release's token; the pipeline's own steps prepare them in chunks (render, thumbnail)
with no flip of their own; each chunk's last step marks its members prepared and sends the
release's flip with an ETA of the release time. The flip (`release_flip`) locks the release
row and, by the database clock, in one transaction: every member prepared -> all `published`
with the same `published_at`, the release `published`, webhooks recorded, cached pages
forgotten; a member failed, or the release itself found wrong (no members, two answering under
one address: publisher.release_preflight) -> the release `blocked`, every member held
(`in_release`, the failed one with its reason), nothing live, the scheduler mailed. A flip that
finds a chunk still being prepared does nothing: that chunk's own flip, sent when it finishes,
finds everything ready.
A killed worker or a lost message is the lease's: the sweeper (`releases_reclaim_expired_leases`)
claims the release again under a new token and re-sends what is missing.

Every status write is a declared transition (publisher.states: RELEASE_TRANSITIONS for the
release, the release_* transitions for its members), compare-and-set, with its audit event.
"""

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, F
from django.db.models.functions import Greatest, Now
from django.urls import reverse
from django.utils import timezone

from . import dispatch, release_changes, release_preflight, revisions, schedule_rules
from .models import Article, ArticleEvent, ArticleEventAction, ArticleStatus, Release, ReleaseEvent
from .site.links import absolute_url
from .site.selectors import database_now
from .site.services import article_ensure_slug
from .services import articles_step_gave_up
from .states import RELEASE_ACTIONS, RELEASE_EDITABLE, TRANSITIONS, ReleaseStatus
from .webhooks import services as webhooks
from .zones import local_time_text

logger = logging.getLogger(__name__)

# Articles that may join a release: not live, not in flight, not in another release.
JOINABLE = (ArticleStatus.DRAFT, ArticleStatus.SCHEDULED, ArticleStatus.FAILED, ArticleStatus.MISSED)
# The member statuses a (re)schedule of the release takes along (the article transition's sources).
MEMBER_SCHEDULABLE = TRANSITIONS["release_schedule"].sources


class ReleaseError(Exception):
    """The release (or an article) is not in a state this action applies to; says why."""


@dataclass
class MembersResult:
    done: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (article id, reason)


def _released_claim() -> dict:
    return {"claim_token": None, "claimed_at": None, "lease_expires_at": None}


def _member_claim_cleared() -> dict:
    return {**_released_claim(), "unfinished_runs": 0, "release_prepared_at": None}


def _locked(release_id: int) -> Release:
    release = Release.objects.select_for_update().filter(pk=release_id).first()
    if release is None:
        raise ReleaseError(f"Release #{release_id} no longer exists.")
    return release


def _event(release_id: int, action: str, actor, *, note: str = "", release: Release | None = None) -> None:
    user = actor if actor is not None and actor.is_authenticated else None
    ReleaseEvent.objects.create(release_id=release_id, actor=user, action=action, note=note,
                                publish_at=release.publish_at if release else None,
                                unpublish_at=release.unpublish_at if release else None)


def release_create(*, name: str, notes: str = "", actor: AbstractBaseUser | None = None) -> Release:
    """A draft release, with its first history line."""
    if not name.strip():
        raise ValidationError({"name": "A release needs a name."})
    with transaction.atomic():
        user = actor if actor is not None and actor.is_authenticated else None
        release = Release.objects.create(name=name.strip(), notes=notes, created_by=user)
        _event(release.pk, "created", actor)
    return release


def release_action_reason(*, release: Release, action: str) -> str | None:
    """Why `action` does not apply to this release (None: it does), in the editor's words."""
    return RELEASE_ACTIONS[action].reason(release.status)


# --- Members ------------------------------------------------------------------------------------

def release_add_members(*, release_id: int, article_ids: list[int], actor: AbstractBaseUser | None) -> MembersResult:
    """Add articles to a release. A member is in one release, and not live: drafts join as they
    are; a scheduled (or failed, missed) article joining a draft release goes back to draft (it
    would otherwise go out alone); joining a scheduled or blocked release, it is scheduled with
    it at once (`in_release`). Each addition is an Activity line and a release history line."""
    result = MembersResult()
    with transaction.atomic():
        release = _locked(release_id)
        if release.status not in RELEASE_EDITABLE:
            raise ReleaseError(f"Articles cannot be added to release “{release}”: it is "
                               f"{release.get_status_display().lower()}.")
        rows = {a.pk: a for a in Article.objects.select_for_update().filter(pk__in=article_ids)}
        for article_id in sorted(set(article_ids)):
            article = rows.get(article_id)
            reason = _join_refusal(article, release)
            if reason is None and release.status != ReleaseStatus.DRAFT:
                errors = schedule_rules.content_errors(title=article.title, body=article.body, scheduling=True)
                reason = " ".join(e.message for e in errors) or None
            if reason:
                result.skipped.append((article_id, reason))
                continue
            Article.objects.filter(pk=article_id).update(release=release)
            ArticleEvent.objects.create(article_id=article_id, actor=_user(actor),
                                        action=ArticleEventAction.ADDED_TO_RELEASE, previous_status=article.status,
                                        publish_at=article.publish_at, note=f"Release “{release}” (#{release.pk})")
            if release.status == ReleaseStatus.DRAFT:
                if article.status != ArticleStatus.DRAFT:
                    Article.objects.filter(pk=article_id).transition("unschedule", actor=actor, **_released_claim(),
                                                                     unfinished_runs=0)
            else:
                _schedule_members(release, Article.objects.filter(pk=article_id), actor)
            result.done.append(article_id)
        if result.done:
            _event(release.pk, "members_added", actor, release=release,
                   note=", ".join(f"#{pk}" for pk in result.done))
            release_preflight.release_preflight_requested(release_id=release.pk, members_changed=True)
    return result


def _user(actor):
    return actor if actor is not None and actor.is_authenticated else None


def _join_refusal(article: Article | None, release: Release) -> str | None:
    if article is None:
        return "it no longer exists"
    if article.release_id == release.pk:
        return "it is already in this release"
    if article.release_id is not None:
        return f"it is in another release (#{article.release_id}): remove it from that one first"
    if article.status not in JOINABLE:
        return f"it is {article.get_status_display().lower()}: only articles not live can join a release"
    return None


def release_remove_members(*, release_id: int, article_ids: list[int],
                           actor: AbstractBaseUser | None) -> MembersResult:
    """Take articles out of a release (draft, scheduled or blocked): a member scheduled with the
    release goes back to draft."""
    result = MembersResult()
    with transaction.atomic():
        release = _locked(release_id)
        if release.status not in RELEASE_EDITABLE:
            raise ReleaseError(f"Articles cannot be removed from release “{release}”: it is "
                               f"{release.get_status_display().lower()}.")
        members = {a.pk: a for a in Article.objects.select_for_update().filter(pk__in=article_ids, release=release)}
        for article_id in sorted(set(article_ids)):
            article = members.get(article_id)
            if article is None:
                result.skipped.append((article_id, "it is not in this release"))
                continue
            Article.objects.filter(pk=article_id).transition("release_unschedule", actor=actor,
                                                             **_member_claim_cleared())
            Article.objects.filter(pk=article_id).update(release=None, release_prepared_at=None)
            ArticleEvent.objects.create(article_id=article_id, actor=_user(actor),
                                        action=ArticleEventAction.REMOVED_FROM_RELEASE, previous_status=article.status,
                                        publish_at=article.publish_at, note=f"Release “{release}” (#{release.pk})")
            result.done.append(article_id)
        if result.done:
            if release.blocked_article_id in result.done:
                Release.objects.filter(pk=release.pk).update(blocked_article=None)
            _event(release.pk, "members_removed", actor, release=release,
                   note=", ".join(f"#{pk}" for pk in result.done))
            release_preflight.release_preflight_requested(release_id=release.pk, members_changed=True)
    return result


# --- Scheduling -----------------------------------------------------------------------------------

def _schedule_members(release: Release, members, actor) -> int:
    """Members join their release's time (`in_release`); an in-flight claim of theirs is dropped."""
    ids = list(members.values_list("id", flat=True))
    moved = members.transition("release_schedule", actor=actor, publish_at=release.publish_at,
                               unpublish_at=release.unpublish_at, attempts=0, last_error="", **_member_claim_cleared())
    for article_id in ids:
        article_ensure_slug(article_id=article_id)
    return moved


def release_schedule(*, release_id: int, publish_at: datetime, unpublish_at: datetime | None = None,
                     actor: AbstractBaseUser | None = None) -> Release:
    """Schedule or reschedule a release, and every member with it: each member becomes
    `in_release` at the release's time (and its rollback time as its unpublish time), so it can
    no longer be scheduled, published or unpublished alone. The editor wins over an in-flight
    claim (a release being prepared, or blocked): its members are held again, nothing
    half-publishes. Refused with the reasons when a member cannot be published (no title, no
    body) or the times are wrong."""
    errors = schedule_rules.window_errors(publish_at=publish_at, unpublish_at=unpublish_at)
    errors += schedule_rules.entered_time_errors(publish_at=publish_at, unpublish_at=unpublish_at)
    schedule_rules.raise_errors(errors)
    with transaction.atomic():
        release = _locked(release_id)
        reason = release_action_reason(release=release, action="schedule")
        if reason:
            raise ReleaseError(f"Cannot schedule release “{release}”: {reason}.")
        members = list(Article.objects.select_for_update().filter(release=release).order_by("pk"))
        if not members and not release_changes.members(release.pk).exists():
            raise ReleaseError(f"Release “{release}” has no articles or changes: add some before scheduling it.")
        problems = release_changes.schedule_problems(release.pk)
        for article in members:
            found = schedule_rules.content_errors(title=article.title, body=article.body, scheduling=True)
            if found:
                problems.append(f"“{article}” (#{article.pk}): {' '.join(e.message for e in found)}")
            elif article.status not in MEMBER_SCHEDULABLE:
                problems.append(f"“{article}” (#{article.pk}) is {article.get_status_display().lower()}")
        if problems:
            raise ValidationError("Some articles of this release cannot be published: " + "; ".join(problems))
        Release.objects.filter(pk=release.pk).transition(
            "schedule", actor=actor, publish_at=publish_at, unpublish_at=unpublish_at, scheduled_by=_user(actor),
            last_error="", blocked_article=None, attempts=0, **_released_claim())
        release.refresh_from_db()
        _schedule_members(release, Article.objects.filter(release=release), actor)
        release_changes.schedule(release, actor)
        # Scheduled closer than the pre-flight window: checked at once after commit.
        release_preflight.release_preflight_requested(release_id=release.pk)
        if publish_at <= _horizon_now():
            releases_claim_due(release_ids=[release.pk])
    release.refresh_from_db()
    return release


def _horizon_now() -> datetime:
    return timezone.now() + timedelta(seconds=settings.PUBLISHER_RELEASE_LOOKAHEAD)


def release_unschedule(*, release_id: int, actor: AbstractBaseUser | None = None) -> Release:
    """Back to draft, every member with it (`draft`, its times kept); an in-flight claim is
    abandoned: its remaining steps find no row under their token and do nothing."""
    with transaction.atomic():
        release = _locked(release_id)
        reason = release_action_reason(release=release, action="unschedule")
        if reason:
            raise ReleaseError(f"Cannot unschedule release “{release}”: {reason}.")
        Release.objects.filter(pk=release.pk).transition("unschedule", actor=actor, scheduled_by=None,
                                                         **_released_claim())
        Article.objects.filter(release=release).transition("release_unschedule", actor=actor,
                                                           **_member_claim_cleared())
        release_changes.unschedule(release.pk, actor)
    release.refresh_from_db()
    return release


def release_set_rollback(*, release_id: int, unpublish_at: datetime | None,
                         actor: AbstractBaseUser | None = None) -> Release:
    """Set or clear the rollback time of a live release: each live member's unpublish time
    follows (the scan's take-down then hides it on that second, as for any article). Before
    it is live, the rollback time is given with Schedule / Reschedule."""
    with transaction.atomic():
        release = _locked(release_id)
        if release.status != ReleaseStatus.PUBLISHED:
            raise ReleaseError(f"Release “{release}” is not live: give its rollback time when you schedule it.")
        errors = schedule_rules.window_errors(publish_at=release.publish_at, unpublish_at=unpublish_at)
        errors += schedule_rules.entered_time_errors(publish_at=None, unpublish_at=unpublish_at)
        schedule_rules.raise_errors(errors)
        # A rollback message sent for the old time finds the time changed and does nothing.
        Release.objects.filter(pk=release.pk).transition("change_rollback", actor=actor, unpublish_at=unpublish_at,
                                                         lease_expires_at=None)
        live = Article.objects.filter(release=release, status=ArticleStatus.PUBLISHED)
        live.transition("change_unpublish", actor=actor, unpublish_at=unpublish_at)
        webhooks.record(event="updated", article_ids=list(live.values_list("id", flat=True)))
        releases_dispatch_rollbacks_due(release_ids=[release.pk])
    release.refresh_from_db()
    return release


# --- The scan -----------------------------------------------------------------------------------

def _lease_expiry():
    start = Greatest(F("publish_at"), Now())
    return ExpressionWrapper(start + timedelta(seconds=settings.PUBLISHER_LEASE_SECONDS), output_field=DateTimeField())


def releases_claim_due(*, limit: int = 20, release_ids: list[int] | None = None) -> list[int]:
    """Claim scheduled releases due within PUBLISHER_RELEASE_LOOKAHEAD (their members with
    them, under the release's token) and dispatch their preparation after commit. Two scans
    cannot claim one release: the rows are locked skipping those another scan holds, and the
    claim is a compare-and-set. Returns the ids claimed."""
    horizon = ExpressionWrapper(Now() + timedelta(seconds=settings.PUBLISHER_RELEASE_LOOKAHEAD),
                                output_field=DateTimeField())
    claimed = []
    with transaction.atomic():
        due = Release.objects.filter(status=ReleaseStatus.SCHEDULED, publish_at__lte=horizon).order_by("publish_at")
        if release_ids is not None:
            due = due.filter(pk__in=release_ids)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        for release_id in list(due.values_list("id", flat=True)[:limit]):
            token = str(uuid.uuid4())
            if not Release.objects.filter(pk=release_id).transition(
                    "claim", claim_token=token, claimed_at=Now(), lease_expires_at=_lease_expiry(),
                    attempts=F("attempts") + 1):
                continue
            Article.objects.filter(release_id=release_id).transition(
                "release_claim", claim_token=token, claimed_at=Now(), lease_expires_at=None,
                attempts=F("attempts") + 1, unfinished_runs=0, release_prepared_at=None)
            release_changes.claim(release_id, token)
            claimed.append(release_id)
            transaction.on_commit(lambda r=release_id, t=token: _dispatch(release_id=r, token=t))
    if claimed:
        logger.info("scan: claimed releases %s", claimed)
    return claimed


def _dispatch(*, release_id: int, token: str) -> None:
    release = Release.objects.filter(pk=release_id, claim_token=token).values_list("publish_at", flat=True).first()
    if release is None:
        return
    unprepared = list(Article.objects.in_flight(token).filter(release_id=release_id, release_prepared_at__isnull=True)
                      .order_by("pk").values_list("id", flat=True))
    dispatch.publish_release(release_id=release_id, token=token, article_ids=unprepared, go_live_at=release,
                             revision_ids=release_changes.unprepared_ids(release_id, token))


def releases_reclaim_expired_leases(*, limit: int = 20) -> tuple[list[int], int]:
    """The sweeper: a release whose lease ran out while `preparing` (worker killed, flip message
    lost, broker restarted) is claimed again under a new token, its members with it, and what
    is missing is sent again (members already prepared are not prepared twice). After
    PUBLISHER_MAX_ATTEMPTS claims it is `blocked` with the reason. Returns (reclaimed ids,
    how many were blocked)."""
    reclaimed, blocked = [], 0
    with transaction.atomic():
        stale = Release.objects.filter(status=ReleaseStatus.PREPARING, lease_expires_at__lte=Now()).order_by(
            "lease_expires_at")
        if connection.features.has_select_for_update_skip_locked:
            stale = stale.select_for_update(skip_locked=True)
        for release_id, old_token, attempts in list(stale.values_list("id", "claim_token", "attempts")[:limit]):
            if attempts >= settings.PUBLISHER_MAX_ATTEMPTS:
                blocked += _block(release_id, str(old_token), article_id=None, reason=(
                    f"Gave up after {attempts} attempts: each claim's lease ({settings.PUBLISHER_LEASE_SECONDS} s) "
                    "expired before the release went live (worker killed, message lost or broker restarted). "
                    "Reschedule it to try again."))
                continue
            token = str(uuid.uuid4())
            Release.objects.filter(pk=release_id).transition(
                "reclaim", token=str(old_token), claim_token=token, claimed_at=Now(), lease_expires_at=_lease_expiry(),
                attempts=F("attempts") + 1)
            Article.objects.filter(release_id=release_id).transition(
                "reclaim", token=str(old_token), claim_token=token, claimed_at=Now(), lease_expires_at=None,
                unfinished_runs=0)
            release_changes.reclaim(release_id, str(old_token), token)
            if _any_failed(release_id):
                _block_failed(release_id, token)
                blocked += 1
                continue
            reclaimed.append(release_id)
            transaction.on_commit(lambda r=release_id, t=token: _dispatch(release_id=r, token=t))
    if reclaimed or blocked:
        logger.warning("sweeper: reclaimed releases %s, blocked %d", reclaimed, blocked)
    return reclaimed, blocked


def releases_roll_back_due(*, limit: int = 20) -> int:
    """Live releases whose rollback time passed are rolled back, each in one transaction: the
    articles its changes changed get back the content each change replaced (the change
    `rolled_back`, the `updated` webhook), its new articles are taken down (hidden already on
    their second by the database clock, their unpublish time being the rollback time; a member
    the scan's take-down has not reached yet is taken down here), and the release becomes
    `rolled_back` with a history line saying what was restored. Returns how many."""
    rolled_back = 0
    due = Release.objects.filter(status=ReleaseStatus.PUBLISHED, unpublish_at__lte=Now()).order_by("unpublish_at")
    if connection.features.has_select_for_update_skip_locked:
        due = due.select_for_update(skip_locked=True)
    with transaction.atomic():
        for release_id in list(due.values_list("id", flat=True)[:limit]):
            rolled_back += _roll_back(release_id)
    return rolled_back


def releases_dispatch_rollbacks_due(*, limit: int = 20, release_ids: list[int] | None = None) -> int:
    """Look-ahead dispatch of rollbacks, as flips are timed: a live release whose rollback time
    is within PUBLISHER_RELEASE_LOOKAHEAD is marked dispatched (compare-and-set on
    `lease_expires_at`, empty while live until then: the rollback time plus the lease) and its
    rollback sent after commit, waiting in the broker until that second (`release_roll_back`).
    Called by the scan, by the flip and when a rollback time is set, so the changed articles get
    their previous versions back on the second the new articles disappear; the scan's
    `releases_roll_back_due` stays the safety net (a lost message, the broker down). A message
    is never sent days ahead: it waits in the worker's memory until its time. Returns how many."""
    horizon = ExpressionWrapper(Now() + timedelta(seconds=settings.PUBLISHER_RELEASE_LOOKAHEAD),
                                output_field=DateTimeField())
    due = Release.objects.filter(status=ReleaseStatus.PUBLISHED, unpublish_at__isnull=False,
                                 unpublish_at__lte=horizon, lease_expires_at__isnull=True)
    if release_ids is not None:
        due = due.filter(pk__in=release_ids)
    sent = 0
    with transaction.atomic():
        for release_id, unpublish_at in list(due.order_by("unpublish_at").values_list("id", "unpublish_at")[:limit]):
            marked = Release.objects.filter(pk=release_id, status=ReleaseStatus.PUBLISHED, unpublish_at=unpublish_at,
                                            lease_expires_at__isnull=True).update(
                lease_expires_at=unpublish_at + timedelta(seconds=settings.PUBLISHER_LEASE_SECONDS))
            if marked:
                sent += 1
                transaction.on_commit(lambda r=release_id, at=unpublish_at: dispatch.release_roll_back(
                    release_id=r, at=at))
    return sent


@dataclass(frozen=True)
class RollBack:
    done: int  # 1: this call rolled the release back
    wait: float = 0.0  # > 0: not due yet by the database clock, try again after this many seconds


def release_roll_back(*, release_id: int, at: datetime) -> RollBack:
    """The rollback sent for `at`, the release's rollback time: by the database clock, never
    early, the release is rolled back in one transaction (`_roll_back`). It does nothing when the
    release was rolled back already (by the scan, or a redelivered message: compare-and-set on
    its status) or its rollback time changed or was cleared since (the message sent for the new
    time does it)."""
    with transaction.atomic():
        release = (Release.objects.select_for_update().filter(pk=release_id, status=ReleaseStatus.PUBLISHED)
                   .only("id", "unpublish_at").first())
        if release is None or release.unpublish_at != at:
            return RollBack(0)
        now = database_now()
        if at > now:
            return RollBack(0, wait=min(max((at - now).total_seconds(), 0.05), 5.0))
        return RollBack(_roll_back(release_id))


def _roll_back(release_id: int) -> int:
    with transaction.atomic():
        # One rollback per release: whoever locks it first (the message at its time, or the scan)
        # rolls it back; the other finds it rolled back and does nothing.
        if not Release.objects.select_for_update().filter(pk=release_id, status=ReleaseStatus.PUBLISHED).exists():
            return 0
        at = database_now()
        restored, skipped = release_changes.roll_back(release_id, at)
        down = list(Article.objects.select_for_update().filter(release_id=release_id, status=ArticleStatus.PUBLISHED,
                                                               unpublish_at__lte=Now()).values_list("id", flat=True))
        Article.objects.filter(pk__in=down).transition("take_down")
        note = "Its rollback time passed: its articles were taken down"
        if restored:
            note += f"; previous versions restored: {', '.join(f'article #{pk}' for pk in restored)}"
        if skipped:
            note += "; " + "; ".join(f"change #{pk} {why}" for pk, why in skipped.items())
        done = Release.objects.filter(pk=release_id).transition("roll_back", actor=None, note=note + ".")
        webhooks.record(event="unpublished", article_ids=down)
        if restored:
            webhooks.record(event="updated", article_ids=restored)
    if restored:
        logger.info("release #%s rolled back: %d articles restored, %d taken down", release_id, len(restored),
                    len(down))
    return done


def releases_release_dropped_claims(*, tokens: list[str]) -> int:
    """The worker lost the broker while holding these claims' messages (a release's flip waits
    for its ETA in the worker): end those releases' leases now so the sweeper re-sends them."""
    valid = []
    for token in tokens:
        try:
            valid.append(uuid.UUID(token))
        except (TypeError, ValueError):
            continue
    if not valid:
        return 0
    return Release.objects.filter(claim_token__in=valid, status=ReleaseStatus.PREPARING).update(lease_expires_at=Now())


# --- The pipeline's release steps ----------------------------------------------------------------

def release_members_prepared(*, release_id: int, token: str, article_ids: list[int],
                             revision_ids: list[int] = ()) -> bool:
    """The last step of a chunk's preparation: mark the chunk's members still in flight as
    prepared; if a member of the release failed, block the release now (the scheduler learns it
    before the release time); otherwise send the release's flip, waiting in the broker until
    the release time. Returns whether a flip was sent."""
    with transaction.atomic():
        release = Release.objects.select_for_update().filter(pk=release_id, claim_token=token,
                                                             status=ReleaseStatus.PREPARING).first()
        if release is None:
            return False  # unscheduled, rescheduled or reclaimed meanwhile: another token's work
        Article.objects.in_flight_by_id(article_ids, token).filter(release_id=release_id).update(
            release_prepared_at=Now())
        release_changes.mark_prepared(release_id, token, list(revision_ids))
        if _any_failed(release_id):
            _block_failed(release_id, token)
            return False
        go_live_at = release.publish_at
    dispatch.release_flip(release_id=release_id, token=token, go_live_at=go_live_at)
    return True


def release_chunk_gave_up(*, release_id: int, token: str, article_ids: list[int], reason: str,
                          transient: bool) -> int:
    """A preparation step gave up on a chunk (its retries spent): the chunk's members fail as
    any article's would, and the release is blocked at once (a transient cause is left to the
    release's lease). Returns how many members failed."""
    failed = articles_step_gave_up(article_ids=article_ids, token=token, reason=reason, transient=transient)
    if failed:
        with transaction.atomic():
            if Release.objects.select_for_update().filter(pk=release_id, claim_token=token,
                                                          status=ReleaseStatus.PREPARING).exists():
                _block_failed(release_id, token)
    return failed


def release_change_chunk_gave_up(*, release_id: int, token: str, revision_ids: list[int], reason: str,
                                 transient: bool) -> int:
    """As `release_chunk_gave_up`, for a chunk of the release's changes."""
    failed = revisions.revisions_step_gave_up(revision_ids=revision_ids, token=token, reason=reason,
                                              transient=transient)
    if failed:
        with transaction.atomic():
            if Release.objects.select_for_update().filter(pk=release_id, claim_token=token,
                                                          status=ReleaseStatus.PREPARING).exists():
                _block_failed(release_id, token)
    return failed


@dataclass(frozen=True)
class Flip:
    published: list[int]  # the members this flip put live (empty when it did nothing)
    wait: float = 0.0  # > 0: not due yet by the database clock, try again after this many seconds
    outcome: str = "done"  # published, blocked, waiting, not_ready, done (someone else's, or nothing to do)


def release_flip(*, release_id: int, token: str) -> Flip:
    """All members live in ONE transaction, or none: never early by the database clock. Under a
    lock on the release row (two flips, a redelivered one, the editor: one at a time, the claim
    token compared), checks that the release is due, that no member failed (else it is blocked)
    and that every member is prepared (else it leaves the flip to the chunk still preparing);
    then one UPDATE puts every member live with the same `published_at` (the transaction's
    time), the release becomes `published`, the webhooks are recorded and cached pages
    forgotten, all in the same commit. Subscribers are notified after it, per article."""
    with transaction.atomic():
        release = Release.objects.select_for_update().filter(pk=release_id, claim_token=token,
                                                             status=ReleaseStatus.PREPARING).first()
        if release is None:
            return Flip([])
        # The database's clock, read once: the due check and every member's published_at.
        now = Release.objects.filter(pk=release_id).annotate(db_now=Now()).values_list("db_now", flat=True).get()
        now = Release._meta.get_field("published_at").to_python(now)
        if release.publish_at > now:
            return Flip([], wait=min(max((release.publish_at - now).total_seconds(), 0.05), 5.0), outcome="waiting")
        if _any_failed(release_id):
            _block_failed(release_id, token)
            return Flip([], outcome="blocked")
        # What the pre-flight finds on the release itself (no members, two answering under one
        # address), read again now: it blocks the release as a failed member does.
        level = release_preflight.release_level_problems(release_id=release_id)
        if level:
            _block(release_id, token, article_id=None, reason="Not published: " + " ".join(level))
            return Flip([], outcome="blocked")
        if release.unpublish_at is not None and release.unpublish_at <= now:
            # Both times passed while nothing ran: as for an article, it is not put live.
            _block(release_id, token, article_id=None, reason=(
                "Not published: its rollback time passed before it could go live (publishing was down). "
                "Reschedule it to publish it."))
            return Flip([], outcome="blocked")
        members = Article.objects.filter(release_id=release_id)
        if members.exclude(status=ArticleStatus.PUBLISHING, claim_token=token,
                           release_prepared_at__isnull=False).exists() or release_changes.not_ready(release_id, token):
            return Flip([], outcome="not_ready")
        ids = list(members.values_list("id", flat=True))
        started = time.perf_counter()
        # The changed articles locked, and still as the changes expect them, or nothing goes live.
        unapplicable = release_changes.lock_articles(release_id)
        if unapplicable:
            _block(release_id, token, article_id=None, reason=unapplicable)
            return Flip([], outcome="blocked")
        changed = release_changes.apply(release_id, token, now)
        went_live = members.transition("make_live", token=token, published_at=now, lease_expires_at=None)
        Release.objects.filter(pk=release_id).transition("publish", token=token, actor=None, published_at=now,
                                                         lease_expires_at=None)
        ReleaseEvent.objects.create(release_id=release_id, action="published", previous_status=ReleaseStatus.PREPARING,
                                    publish_at=release.publish_at, unpublish_at=release.unpublish_at,
                                    note=f"{went_live} articles went live together"
                                         + (f", {len(changed)} changes applied." if changed else "."))
        webhooks.record(event="published", article_ids=ids)
        if changed:
            webhooks.record(event="updated", article_ids=changed)
        if release.unpublish_at is not None:
            releases_dispatch_rollbacks_due(release_ids=[release_id])
    # From the flip's first write to its commit: the only time readers could wait on it.
    logger.info("release #%s published: %d articles in one transaction (claim %s, flip %.1f ms)", release_id,
                went_live, token, (time.perf_counter() - started) * 1000)
    return Flip(ids, outcome="published")


def _failed_member(release_id: int) -> Article | None:
    return (Article.objects.filter(release_id=release_id, status=ArticleStatus.FAILED)
            .only("id", "title", "last_error").order_by("updated_at", "pk").first())


def _any_failed(release_id: int) -> bool:
    return _failed_member(release_id) is not None or release_changes.failed(release_id) is not None


def _block_failed(release_id: int, token: str) -> int:
    member = _failed_member(release_id)
    if member is None:
        change = release_changes.failed(release_id)
        return _block(release_id, token, article_id=change.article_id,
                      reason=f"Change #{change.pk} to “{change.article}” could not be prepared: {change.last_error}")
    return _block(release_id, token, article_id=member.pk,
                  reason=f"“{member}” (#{member.pk}) could not be prepared: {member.last_error}")


def _block(release_id: int, token: str, *, article_id: int | None, reason: str) -> int:
    """The release becomes `blocked` with the reason (and the member that caused it); every
    member, failed or prepared, is held (`in_release`, its claim dropped): nothing of it goes
    live. The scheduler is mailed once this commits."""
    with transaction.atomic():
        blocked = Release.objects.filter(pk=release_id).transition(
            "block", token=token, actor=None, note=reason[:5000], last_error=reason[:5000],
            blocked_article_id=article_id,
            **_released_claim())
        if not blocked:
            return 0
        Article.objects.filter(release_id=release_id).transition("release_hold", **_member_claim_cleared())
        release_changes.hold(release_id)
        transaction.on_commit(lambda: dispatch.release_alert(release_id=release_id))
    logger.error("release #%s blocked: %s", release_id, reason)
    return blocked


def release_alert_send(*, release_id: int) -> int:
    """Mail whoever scheduled a blocked release which member blocked it and why. Returns how
    many e-mails were sent (0: not blocked any more, or nobody with an address scheduled it)."""
    release = Release.objects.filter(pk=release_id, status=ReleaseStatus.BLOCKED).select_related("scheduled_by").first()
    if release is None:
        return 0
    to = release.scheduled_by.email if release.scheduled_by else ""
    if not to:
        logger.warning("release #%s is blocked and nobody who scheduled it has an e-mail address", release_id)
        return 0
    link = absolute_url(None, reverse("admin:publisher_release_change", args=[release.pk]))
    send_mail(
        subject=f"Release blocked: {release}",
        message=(f"The release “{release}”, scheduled for {local_time_text(release.publish_at)}, is blocked: "
                 f"none of its articles went live.\n\nReason: {release.last_error}\n\n"
                 f"Fix the article, then reschedule the release: {link}\n\n— {settings.PUBLISHER_SITE_NAME}"),
        from_email=None, recipient_list=[to])
    return 1
