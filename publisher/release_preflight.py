"""Pre-flight of releases: PUBLISHER_PREFLIGHT_MINUTES before a scheduled release is due, check
each member exactly as a scheduled article is checked (publisher.preflight: the same checks,
the same fingerprint, the same prepared output kept on the member, which the release's
preparation at its look-ahead then reuses), each of its changes to live articles as a scheduled
change is (publisher.revision_preflight), plus what only a release can get wrong: it has no
members, two of its members answer under one address (the flip blocks a release still found so
at its time: `release_level_problems`). What fails makes the release *at risk*
(Release.at_risk_reason, naming the member and the reason), is written to the release's history
and the member's Activity, and is e-mailed once to whoever scheduled the release.

A result belongs to the release's state: a fingerprint of its members and of each member's
checked content. A release is checked again when it is (re)scheduled, a member joins or leaves,
or a member's content changes (Article.save asks the member for a new check, and the scan reads
releases with an unchecked member); an unchanged state is never recorded or mailed twice, and a
result is written only if the release is still scheduled and every member still holds the
content checked (compare-and-set under the release's row lock).
"""

import hashlib
import logging
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.functions import Now

from . import dispatch, preflight, revision_preflight
from .models import Article, ArticleRevision, ArticleSlugRedirect, ArticleStatus, Release, ReleaseEvent
from .states import ReleaseStatus, RevisionStatus

logger = logging.getLogger(__name__)

PASSED, AT_RISK, UNCHANGED, SKIPPED = preflight.PASSED, preflight.AT_RISK, preflight.UNCHANGED, preflight.SKIPPED

# ReleaseEvent.action values written here (the history shows them as the article's Activity does).
EVENT_AT_RISK, EVENT_PASSED = "at_risk", "preflight_passed"


# --- Which releases, and when -------------------------------------------------------------------

def _unchecked(window: timedelta):
    """Scheduled releases due within the window that were not checked for their current state
    (never, or a member's content changed since), and not handed to a task whose lease runs."""
    member_unchecked = Article.objects.filter(release_id=OuterRef("pk"), preflight_checked_at__isnull=True)
    change_unchecked = ArticleRevision.objects.filter(release_id=OuterRef("pk"), status=RevisionStatus.IN_RELEASE,
                                                      preflight_checked_at__isnull=True)
    return (Release.objects.filter(status=ReleaseStatus.SCHEDULED, publish_at__lte=preflight._by_db_clock(window))
            .filter(Q(preflight_checked_at__isnull=True) | Exists(member_unchecked) | Exists(change_unchecked))
            .filter(Q(preflight_queued_until__isnull=True) | Q(preflight_queued_until__lte=Now())))


def _queue(queryset, *, limit: int) -> list[int]:
    """Hand up to `limit` releases to pre-flight tasks (one each; their lease:
    PUBLISHER_LEASE_SECONDS, after which the scan hands them out again), after commit."""
    with transaction.atomic():
        rows = queryset.order_by("publish_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        ids = list(rows.values_list("id", flat=True)[:limit])
        if ids:
            Release.objects.filter(pk__in=ids).update(
                preflight_queued_until=preflight._by_db_clock(timedelta(seconds=settings.PUBLISHER_LEASE_SECONDS)))
            transaction.on_commit(lambda: [dispatch.release_preflight(release_id=pk) for pk in ids])
    return ids


def releases_preflight_dispatch(*, limit: int = 20) -> int:
    """The scan's part: hand the scheduled releases due within PUBLISHER_PREFLIGHT_MINUTES whose
    state was not checked to pre-flight tasks, after commit. Returns how many. 0 minutes: off."""
    window = preflight._window()
    if window is None:
        return 0
    return len(_queue(_unchecked(window), limit=limit))


def release_preflight_soon(*, release_id: int) -> bool:
    """Scheduled closer to its time than the window, or changed (a member added, removed or
    edited) inside it: check it now rather than at the next scan. Call after the change
    committed. Returns whether a check was dispatched."""
    window = preflight._window()
    if window is None:
        return False
    return bool(_queue(_unchecked(window).filter(pk=release_id), limit=1))


def release_preflight_requested(*, release_id: int, members_changed: bool = False) -> None:
    """The release changed (scheduled, a member joined or left): its state needs a new check.
    Call inside the change's transaction; the check runs at once after commit when the release
    is due within the window, else the scan takes it when it enters the window. A change of
    members also drops the finding, which was about other members."""
    reset = {"at_risk_reason": ""} if members_changed else {}
    Release.objects.filter(pk=release_id).update(preflight_checked_at=None, preflight_queued_until=None, **reset)
    publish_at = Release.objects.filter(pk=release_id, status=ReleaseStatus.SCHEDULED).values_list(
        "publish_at", flat=True).first()
    if publish_at is not None and preflight.within_window(publish_at):
        transaction.on_commit(lambda: release_preflight_soon(release_id=release_id))


# --- The check of one release ---------------------------------------------------------------------

def _state_fingerprint(members: list[dict], changes: list[dict] = ()) -> str:
    parts = [f"{m['id']}:{m['preflight_fingerprint']}" for m in members]
    parts += [f"change {c['id']}:{c['preflight_fingerprint']}" for c in changes]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _members(release_id: int) -> list[dict]:
    return list(Article.objects.filter(release_id=release_id).order_by("pk").values(
        "id", "title", "slug", "status", "at_risk_reason", "preflight_fingerprint", "preflight_checked_at"))


def _changes(release_id: int) -> list[dict]:
    """The release's changes still with it (a cancelled one is history)."""
    return list(ArticleRevision.objects.filter(release_id=release_id).exclude(status=RevisionStatus.CANCELLED)
                .order_by("pk").values("id", "article__title", "status", "at_risk_reason", "preflight_fingerprint",
                                       "preflight_checked_at"))


NO_MEMBERS = "The release has no articles: add some, or unschedule it."


def release_problems(*, members: list[dict], changes: list[dict] = ()) -> list[str]:
    """What would stop this release, each a sentence naming the member: no members (articles or
    changes); a member (an article, or a change to a live article) the pre-flight found at risk
    (a missing title or body, an image, its address...); two members answering under one
    address (a slug, or one's old address that redirects)."""
    if not members and not changes:
        return [NO_MEMBERS]
    problems = [f"{_name(m)}: {m['at_risk_reason']}" for m in members if m["at_risk_reason"]]
    problems += [f"Change #{c['id']} to “{c['article__title']}”: {c['at_risk_reason']}" for c in changes
                 if c["at_risk_reason"]]
    return problems + _shared_addresses(members)


def release_level_problems(*, release_id: int) -> list[str]:
    """What would stop the release whatever each member's own content, read now: it has no
    members, or two members answer under one address. The flip blocks a release these are
    found on (publisher.releases), as one with a failed member."""
    members, changes = _members(release_id), _changes(release_id)
    if not members and not changes:
        return [NO_MEMBERS]
    return _shared_addresses(members)


def _name(member: dict) -> str:
    return f"“{member['title']}” (#{member['id']})" if member["title"] else f"Article #{member['id']}"


def _shared_addresses(members: list[dict]) -> list[str]:
    name = {m["id"]: _name(m) for m in members}
    problems = []
    owners: dict[str, list[int]] = {}
    for m in members:
        if m["slug"]:
            owners.setdefault(m["slug"].casefold(), []).append(m["id"])
    for old_slug, article_id in ArticleSlugRedirect.objects.filter(
            article_id__in=[m["id"] for m in members]).values_list("old_slug", "article_id"):
        holders = owners.get(old_slug.casefold())
        if holders and article_id not in holders:
            holders.append(article_id)
    for slug, holders in sorted(owners.items()):
        if len(holders) > 1:
            problems.append(f"{' and '.join(name[pk] for pk in sorted(holders))} share the address “{slug}”: "
                            "change one of the slugs.")
    return problems


def release_preflight(*, release_id: int) -> str:
    """Check a scheduled release: each member as a scheduled article (its result and prepared
    output on the member, its Activity), then the release as a whole, and record the outcome
    for the release's current state (see the module's docstring). Returns PASSED, AT_RISK,
    UNCHANGED (this state was recorded before: nobody is mailed again) or SKIPPED (not
    scheduled any more, or changed while being checked: the change asked for its own check).
    A transient error propagates (the task retries; the members already checked stay checked)."""
    if not Release.objects.filter(pk=release_id, status=ReleaseStatus.SCHEDULED).exists():
        return SKIPPED
    ordered = [m["id"] for m in _members(release_id)]
    for index, member_id in enumerate(ordered):
        try:
            preflight.article_preflight(article_id=member_id, release_id=release_id)
        except SoftTimeLimitExceeded:
            # A large release: the members checked so far keep their results (the next check
            # finds them unchanged); the next scan hands the release out again at once.
            Release.objects.filter(pk=release_id).update(preflight_queued_until=None)
            logger.warning("pre-flight: soft time limit reached on release #%s; %d members left to the next scan",
                           release_id, len(ordered) - index)
            return SKIPPED
    # Its changes to live articles: each checked as a scheduled change is (publisher.revision_preflight).
    changes = [c["id"] for c in _changes(release_id)]
    for index, revision_id in enumerate(changes):
        try:
            revision_preflight.revision_preflight(revision_id=revision_id, release_id=release_id)
        except SoftTimeLimitExceeded:
            Release.objects.filter(pk=release_id).update(preflight_queued_until=None)
            logger.warning("pre-flight: soft time limit reached on release #%s; %d changes left to the next scan",
                           release_id, len(changes) - index)
            return SKIPPED
    members, changes = _members(release_id), _changes(release_id)
    if (any(m["status"] != ArticleStatus.IN_RELEASE or m["preflight_checked_at"] is None for m in members)
            or any(c["status"] != RevisionStatus.IN_RELEASE or c["preflight_checked_at"] is None for c in changes)):
        Release.objects.filter(pk=release_id).update(preflight_queued_until=None)
        return SKIPPED  # a member changed meanwhile: its save asked for a new check
    problems = release_problems(members=members, changes=changes)
    reason = " ".join(problems)[:5000]
    fingerprint = _state_fingerprint(members, changes)
    with transaction.atomic():
        release = Release.objects.select_for_update().filter(pk=release_id, status=ReleaseStatus.SCHEDULED).first()
        if release is None:
            return SKIPPED
        if _members(release_id) != members or _changes(release_id) != changes:
            Release.objects.filter(pk=release_id).update(preflight_queued_until=None)
            return SKIPPED
        if release.preflight_fingerprint == fingerprint and release.at_risk_reason == reason:
            Release.objects.filter(pk=release_id).update(preflight_checked_at=Now(), preflight_queued_until=None)
            return UNCHANGED
        Release.objects.filter(pk=release_id).update(
            preflight_fingerprint=fingerprint, preflight_checked_at=Now(), preflight_queued_until=None,
            at_risk_reason=reason)
        ReleaseEvent.objects.create(
            release_id=release_id, action=EVENT_AT_RISK if problems else EVENT_PASSED,
            publish_at=release.publish_at, unpublish_at=release.unpublish_at, previous_status=release.status,
            note=reason or f"Every article ({len(members)}) is ready to go live."
                 + (f" Every change ({len(changes)}) too." if changes else ""))
        if problems:
            transaction.on_commit(lambda: dispatch.release_preflight_alert(release_id=release_id))
    if problems:
        logger.warning("pre-flight: release #%s is at risk: %s", release_id, reason)
        return AT_RISK
    return PASSED
