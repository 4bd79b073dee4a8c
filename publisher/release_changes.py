"""Changes to live articles (ArticleRevision) as members of a release.

A release's members are new articles (publisher.releases) and, here, scheduled changes of live
articles. A change in a release is never claimed on its own: while its release is scheduled it
is `in_release` (publisher.states, REVISION_TRANSITIONS), its publish time the release's. The
release's claim takes its changes too, under the release's token; the pipeline's own steps
prepare them in chunks (`pipeline.Claimed` REVISIONS) and the release's ONE flip applies them
with the same copy-into-article as a change's own apply (`revisions_copy_into_articles`), in
the transaction that puts the new articles live. A change that fails preparation blocks the
release, as an article does.

At the release's rollback the content each change replaced (kept on the change by the apply,
`previous_content`) is restored, in the scan's rollback transaction.

Two releases never hold the same article: a change cannot join a release while its article has
a change in (or is a member of) another release still to go live or to roll back.
"""

from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Now

from . import release_preflight
from .models import Article, ArticleEvent, ArticleEventAction, ArticleRevision, ArticleStatus, Release, ReleaseEvent
from .revisions import (RELEASE_MEMBER_DONE, revision_rows, revisions_copy_into_articles,
                        revisions_mail_updates_on_commit, revisions_restore_previous)
from .states import RELEASE_EDITABLE, ReleaseStatus, RevisionStatus

# Changes that may join a release: not live, not in flight, not dropped.
JOINABLE = (RevisionStatus.DRAFT, RevisionStatus.SCHEDULED, RevisionStatus.FAILED)
# Releases that still hold what they touch: not live yet, or live with a rollback still to come.
HOLDING = (Q(status__in=(ReleaseStatus.DRAFT, ReleaseStatus.SCHEDULED, ReleaseStatus.PREPARING,
                         ReleaseStatus.BLOCKED))
           | Q(status=ReleaseStatus.PUBLISHED, unpublish_at__isnull=False))


class ReleaseChangeError(Exception):
    """The release is not in a state whose changes may be edited; says why."""


@dataclass
class ChangesResult:
    done: list[int] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (change id, reason)


def _user(actor):
    return actor if actor is not None and actor.is_authenticated else None


def _claim_cleared() -> dict:
    return {"claim_token": None, "claimed_at": None, "lease_expires_at": None, "unfinished_runs": 0,
            "release_prepared_at": None}


def members(release_id: int):
    """The release's changes still with it (a change cancelled or rolled back is history)."""
    return ArticleRevision.objects.filter(release_id=release_id).exclude(status=RevisionStatus.CANCELLED)


def _locked_release(release_id: int) -> Release:
    release = Release.objects.select_for_update().filter(pk=release_id).first()
    if release is None:
        raise ReleaseChangeError(f"Release #{release_id} no longer exists.")
    if release.status not in RELEASE_EDITABLE:
        raise ReleaseChangeError(f"The changes of release “{release}” cannot be edited: it is "
                                 f"{release.get_status_display().lower()}.")
    return release


def _join_refusal(revision: ArticleRevision | None, release: Release) -> str | None:
    if revision is None:
        return "it no longer exists"
    if revision.release_id == release.pk and revision.status not in RELEASE_MEMBER_DONE:
        return "it is already in this release"
    if revision.release_id is not None and revision.status not in RELEASE_MEMBER_DONE:
        return f"it is in another release (#{revision.release_id}): remove it from that one first"
    if revision.status not in JOINABLE:
        return (f"it is {revision.get_status_display().lower()}: only a draft, scheduled or failed change can "
                "join a release")
    article = revision.article
    if article.status != ArticleStatus.PUBLISHED:
        return (f"its article is {article.get_status_display().lower()}, not live: a change is for a live article "
                "(add the article itself instead)")
    if article.release_id is not None and Release.objects.filter(HOLDING, pk=article.release_id).exists():
        return (f"its article is a member of release #{article.release_id}, whose rollback is still to come: two "
                "releases cannot touch the same article")
    other = (ArticleRevision.objects.filter(article_id=article.pk, release__isnull=False)
             .exclude(pk=revision.pk).exclude(status__in=(RevisionStatus.CANCELLED, RevisionStatus.ROLLED_BACK))
             .filter(release__in=Release.objects.filter(HOLDING)).values_list("id", "release_id").first())
    if other and other[1] == release.pk:
        return f"this release already changes that article (change #{other[0]}): one change per article"
    if other:
        return (f"its article already has a change (#{other[0]}) in release #{other[1]}, still to go live or to "
                "roll back: two releases cannot touch the same article; remove it from that one first")
    pending = (ArticleRevision.objects.filter(article_id=article.pk).pending().exclude(pk=revision.pk)
               .values_list("id", flat=True).first())
    if pending:
        return f"its article has another pending change (#{pending}): cancel that one first"
    return None


def release_add_changes(*, release_id: int, revision_ids: list[int],
                        actor: AbstractBaseUser | None) -> ChangesResult:
    """Add changes of live articles to a release (draft, scheduled or blocked). A change joining
    a draft release waits as a draft (a scheduled one would otherwise go out alone); joining a
    scheduled or blocked release, it is `in_release` at once, its publish time the release's.
    Refused, with the reason, for a change not pending (or draft), an article not live, an
    article another release still holds (to go live or to roll back), a second change of one
    article, or an article with another pending change. Each addition is an Activity line on the
    article and a release history line."""
    result = ChangesResult()
    with transaction.atomic():
        release = _locked_release(release_id)
        article_ids = ArticleRevision.objects.filter(pk__in=revision_ids).values("article_id")
        list(Article.objects.select_for_update().filter(pk__in=article_ids).order_by("pk").values_list("pk"))
        rows = {r.pk: r for r in ArticleRevision.objects.select_for_update().filter(pk__in=revision_ids)
                .select_related("article")}
        for revision_id in sorted(set(revision_ids)):
            revision = rows.get(revision_id)
            reason = _join_refusal(revision, release)
            if reason:
                result.skipped.append((revision_id, reason))
                continue
            one = ArticleRevision.objects.filter(pk=revision_id)
            one.update(release=release, release_prepared_at=None, previous_content=None)
            if release.status == ReleaseStatus.DRAFT:
                if revision.status != RevisionStatus.DRAFT:
                    one.transition("release_unschedule", **_claim_cleared())
            else:
                one.transition("release_schedule", actor=actor, publish_at=release.publish_at, attempts=0,
                               last_error="", **_claim_cleared())
            ArticleEvent.objects.create(article_id=revision.article_id, actor=_user(actor),
                                        action=ArticleEventAction.ADDED_TO_RELEASE,
                                        previous_status=revision.article.status,
                                        note=f"Change #{revision_id}: release “{release}” (#{release.pk})")
            result.done.append(revision_id)
        if result.done:
            ReleaseEvent.objects.create(release=release, actor=_user(actor), action="changes_added",
                                        publish_at=release.publish_at, unpublish_at=release.unpublish_at,
                                        note=", ".join(f"change #{pk}" for pk in result.done))
            release_preflight.release_preflight_requested(release_id=release.pk, members_changed=True)
    return result


def release_remove_changes(*, release_id: int, revision_ids: list[int],
                           actor: AbstractBaseUser | None) -> ChangesResult:
    """Take changes out of a release (draft, scheduled or blocked): each goes back to a draft
    change of its article, to be published or scheduled from its own page."""
    result = ChangesResult()
    with transaction.atomic():
        release = _locked_release(release_id)
        held = {r.pk: r for r in members(release_id).select_for_update().filter(pk__in=revision_ids)}
        for revision_id in sorted(set(revision_ids)):
            revision = held.get(revision_id)
            if revision is None:
                result.skipped.append((revision_id, "it is not in this release"))
                continue
            one = ArticleRevision.objects.filter(pk=revision_id)
            one.transition("release_unschedule", **_claim_cleared())
            one.update(release=None)
            ArticleEvent.objects.create(article_id=revision.article_id, actor=_user(actor),
                                        action=ArticleEventAction.REMOVED_FROM_RELEASE,
                                        note=f"Change #{revision_id}: release “{release}” (#{release.pk})")
            result.done.append(revision_id)
        if result.done:
            ReleaseEvent.objects.create(release=release, actor=_user(actor), action="changes_removed",
                                        publish_at=release.publish_at, unpublish_at=release.unpublish_at,
                                        note=", ".join(f"change #{pk}" for pk in result.done))
            release_preflight.release_preflight_requested(release_id=release.pk, members_changed=True)
    return result


# --- The release's steps, for its changes (called by publisher.releases) -------------------------

def schedule_problems(release_id: int) -> list[str]:
    """Why the release's changes cannot be scheduled (their article not live any more, changed
    since, or holding another pending change), in the editor's words."""
    problems = []
    for revision in members(release_id).select_related("article").order_by("pk"):
        article = revision.article
        if article.status != ArticleStatus.PUBLISHED:
            problems.append(f"change #{revision.pk}: its article “{article}” is "
                            f"{article.get_status_display().lower()}, not live")
        elif (article.title, article.body) != (revision.base_title, revision.base_body):
            problems.append(f"change #{revision.pk}: its article “{article}” was changed since the change was made")
        elif ArticleRevision.objects.filter(article_id=article.pk).pending().exclude(pk=revision.pk).exists():
            problems.append(f"change #{revision.pk}: its article “{article}” has another pending change")
    return problems


def schedule(release: Release, actor) -> int:
    """The release was scheduled or rescheduled: its changes are `in_release` at its time."""
    return members(release.pk).transition("release_schedule", actor=actor, publish_at=release.publish_at,
                                          attempts=0, last_error="", **_claim_cleared())


def unschedule(release_id: int, actor) -> int:
    # No Activity line of its own: the release's history says it was unscheduled.
    return members(release_id).transition("release_unschedule", **_claim_cleared())


def claim(release_id: int, token: str) -> int:
    """Claimed with the release, under its token; the release's lease covers them (none of
    their own, so the changes' sweeper leaves them alone)."""
    return members(release_id).transition("release_claim", claim_token=token, claimed_at=Now(), lease_expires_at=None,
                                          attempts=F("attempts") + 1, unfinished_runs=0, release_prepared_at=None)


def reclaim(release_id: int, old_token: str, token: str) -> int:
    return members(release_id).transition("reclaim", token=old_token, claim_token=token, claimed_at=Now(),
                                          lease_expires_at=None, unfinished_runs=0)


def hold(release_id: int) -> int:
    """The release was blocked: every change waits with it, the failed one keeping its reason."""
    return members(release_id).transition("release_hold", **_claim_cleared())


def failed(release_id: int) -> ArticleRevision | None:
    return (members(release_id).filter(status=RevisionStatus.FAILED).select_related("article")
            .order_by("updated_at", "pk").first())


def unprepared_ids(release_id: int, token: str) -> list[int]:
    return list(members(release_id).in_flight(token).filter(release_prepared_at__isnull=True)
                .order_by("pk").values_list("id", flat=True))


def mark_prepared(release_id: int, token: str, revision_ids: list[int]) -> int:
    return (ArticleRevision.objects.in_flight_by_id(revision_ids, token).filter(release_id=release_id)
            .update(release_prepared_at=Now()))


def not_ready(release_id: int, token: str) -> bool:
    """Some change of the release is not prepared under this claim yet."""
    return members(release_id).exclude(status=RevisionStatus.PUBLISHING, claim_token=token,
                                       release_prepared_at__isnull=False).exists()


def lock_articles(release_id: int) -> str | None:
    """Lock the changed articles for the flip, and say why a change could not be applied now
    (its article taken down or changed since): the flip then blocks the release instead."""
    article_ids = members(release_id).values("article_id")
    list(Article.objects.select_for_update().filter(pk__in=article_ids).order_by("pk").values_list("pk"))
    for revision in members(release_id).select_related("article").order_by("pk"):
        article = revision.article
        if article.status != ArticleStatus.PUBLISHED or (article.title, article.body) != (revision.base_title,
                                                                                        revision.base_body):
            return (f"change #{revision.pk} to “{article}” cannot be applied: the article is no longer live with "
                    "the text the change was made from. Remove the change (or make it again) and reschedule.")
    return None


def apply(release_id: int, token: str, at: datetime) -> list[int]:
    """In the flip's transaction (articles locked and checked by `lock_articles`): copy every
    change into its article, the same copy as a change's own apply. Returns the changed
    articles' ids."""
    rows = revision_rows(members(release_id).in_flight(token))
    applied, abandoned = revisions_copy_into_articles(rows=rows, at=at)
    if abandoned:  # checked under the same locks: cannot happen, and must not half-apply
        raise RuntimeError(f"release #{release_id}: changes not applicable at the flip: {abandoned}")
    ArticleRevision.objects.filter(pk__in=[row["id"] for row in applied]).transition(
        "apply", token=token, actor=None, applied_at=at, lease_expires_at=None)
    revisions_mail_updates_on_commit(rows=applied)
    return [row["article_id"] for row in applied]


def roll_back(release_id: int, at: datetime) -> tuple[list[int], dict[int, str]]:
    """In the rollback's transaction: each applied change's article gets back the content it
    replaced, and the change becomes `rolled_back`. Returns (the restored articles' ids,
    {change id: why not} for a change whose article was taken down or changed since)."""
    applied = list(members(release_id).filter(status=RevisionStatus.APPLIED).values_list("id", "article_id"))
    list(Article.objects.select_for_update().filter(pk__in=[a for _, a in applied]).order_by("pk").values_list("pk"))
    restored, skipped = revisions_restore_previous(revision_ids=[pk for pk, _ in applied], at=at)
    ArticleRevision.objects.filter(pk__in=restored).transition("roll_back", actor=None)
    by_id = dict(applied)
    return [by_id[pk] for pk in restored], skipped
