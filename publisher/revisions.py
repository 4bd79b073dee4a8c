"""Changes to a live article (ArticleRevision): made from the editor's edit, published now or
scheduled for a time, and applied through the same claim, lease and pipeline as an article.

A revision is a frozen snapshot (title, body, image, alt text, author, time). The live article
is never touched before its time: the scan claims a due revision ahead (look-ahead dispatch,
compare-and-set on the row, a lease the sweeper re-dispatches after), the pipeline's own steps
render its body and make its thumbnail INTO the revision, and the last step, at the due second
by the database clock (never early), copies the prepared content into the article in one
transaction, with its `updated` webhook, its audit event and the revision marked `applied`.

The editor wins, as for articles: a change is applied only if the article is still live with
the text the change was made from (`base_title`, `base_body`); otherwise it is `cancelled` with
the reason and the article is left as it is. One change at a time is pending per article (the
database enforces it): a new one replaces the pending one.

Subscribers are mailed for a change only when the editor ticked *Notify subscribers of this
update* (`notify_subscribers`): once it is applied, the update mail fans out through
publisher.notifications keyed by the change (one per change and subscriber, docs/revisions.md).
"""

import logging
import uuid
from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Value
from django.db.models.functions import Now
from django.urls import reverse
from django.utils import timezone

from . import dispatch, faults, pipeline, revision_preflight, schedule_rules
from .models import Article, ArticleRevision, ArticleStatus
from .services import Claim, TransitionError, _aware, _due_ids, _lease_expiry, _released_claim
from .site.links import absolute_url
from .site.selectors import database_now
from .states import REVISION_ACTIONS, RevisionStatus
from .webhooks import services as webhooks

logger = logging.getLogger(__name__)

# What a changed article is said to have become when it is not live any more at the change's time.
NOT_LIVE = "Not applied: the article was no longer live with the text this change was made from (it was {})."


def _transition(revision_id: int, name: str, *, actor, **values) -> ArticleRevision:
    """Take the declared revision transition `name`, with its audit event, or raise
    TransitionError saying why not."""
    if not ArticleRevision.objects.filter(pk=revision_id).transition(name, actor=actor, **values):
        current = ArticleRevision.objects.filter(pk=revision_id).values_list("status", flat=True).first()
        if current is None:
            raise TransitionError(f"Change #{revision_id} no longer exists.")
        if current == RevisionStatus.IN_RELEASE and name in REVISION_ACTIONS:
            reason = REVISION_ACTIONS[name].reason(current)
            raise TransitionError(f"Cannot {name.replace('_', ' ')} change #{revision_id}: {reason}.")
        raise TransitionError(f"Cannot {name.replace('_', ' ')} change #{revision_id}: it is {current}.")
    return ArticleRevision.objects.get(pk=revision_id)


def _live_article(article_id: int) -> Article:
    """The article, locked for the rest of the transaction, or TransitionError if it is not live."""
    article = Article.objects.select_for_update().filter(pk=article_id).first()
    if article is None:
        raise TransitionError(f"Article #{article_id} no longer exists.")
    if article.status != ArticleStatus.PUBLISHED:
        raise TransitionError(f"Article #{article_id} is {article.status}, not live: edit it directly, a change "
                              "is only scheduled for a live article.")
    return article


def _locked(revision_id: int) -> ArticleRevision:
    """The change and its article, locked in that order everywhere (the article first, as the
    apply does), or TransitionError if either is gone or the article is not live."""
    article_id = ArticleRevision.objects.filter(pk=revision_id).values_list("article_id", flat=True).first()
    if article_id is None:
        raise TransitionError(f"Change #{revision_id} no longer exists.")
    _live_article(article_id)
    return ArticleRevision.objects.select_for_update().get(pk=revision_id)


# A release member that no longer holds its article: done with, or dropped.
RELEASE_MEMBER_DONE = (RevisionStatus.APPLIED, RevisionStatus.CANCELLED, RevisionStatus.ROLLED_BACK)


def _replace_pending(article_id: int, *, keep: int | None, actor) -> None:
    """One change is pending per article: scheduling another cancels the one waiting."""
    in_release = (ArticleRevision.objects.filter(article_id=article_id, release__isnull=False)
                  .exclude(status__in=RELEASE_MEMBER_DONE).values_list("id", "release_id").first())
    if in_release:
        raise TransitionError(f"The article has a change (#{in_release[0]}) in release #{in_release[1]}: it is "
                              "applied with that release. Change it there, or remove it from the release first.")
    pending = ArticleRevision.objects.filter(article_id=article_id).pending()
    if keep is not None:
        pending = pending.exclude(pk=keep)
    pending.transition("cancel", actor=actor, last_error="Replaced by a newer change.", **_released_claim())


# --- Editor actions -------------------------------------------------------------------------------

def revision_create(*, article_id: int, title: str, body: str, image_alt: str, image=None,
                    publish_at: datetime | None, notify_subscribers: bool = False,
                    actor: AbstractBaseUser | None, draft: bool = False) -> ArticleRevision:
    """The editor changed a live article: store the change as a frozen revision and publish it
    now (`publish_at` None) or schedule it for `publish_at` (a time ahead, before the article's
    take-down time), or (`draft`) keep it as a draft change, to be published or scheduled from
    its page. `image`: a file to store, the name of one already stored, or "" for none.
    The live article is not touched. Raises ValidationError (schedule_rules codes) or
    TransitionError (the article is not live)."""
    schedule_rules.raise_errors(schedule_rules.content_errors(title=title, body=body, scheduling=True))
    with transaction.atomic():
        article = _live_article(article_id)
        if publish_at is not None:
            schedule_rules.raise_errors(schedule_rules.change_time_errors(publish_at=publish_at,
                                                                          unpublish_at=article.unpublish_at))
        revision = ArticleRevision(article=article, title=title, body=body, image_alt=image_alt or "",
                                   base_title=article.title, base_body=article.body, author=_user(actor),
                                   notify_subscribers=notify_subscribers)
        if image is None or isinstance(image, str):
            revision.image = article.image.name if image is None else image
        else:
            revision.image.save(getattr(image, "name", "image"), image, save=False)
        revision.save()
        if draft:
            return revision
        if publish_at is None:
            return revision_publish_now(revision_id=revision.pk, actor=actor)
        return revision_schedule(revision_id=revision.pk, publish_at=publish_at, actor=actor)


def revision_restore(*, revision_id: int, actor: AbstractBaseUser | None) -> ArticleRevision:
    """A new draft change carrying an older change's content (its diff against the live text
    now). Nothing goes live until it is published or scheduled. It does not notify subscribers
    (a restore is usually a correction back, not news): the editor ticks *Notify subscribers*
    on its page before publishing or scheduling it, if it is."""
    with transaction.atomic():
        old = ArticleRevision.objects.filter(pk=revision_id).first()
        if old is None:
            raise TransitionError(f"Change #{revision_id} no longer exists.")
        article = _live_article(old.article_id)
        return ArticleRevision.objects.create(
            article=article, title=old.title, body=old.body, image=old.image.name, image_alt=old.image_alt,
            base_title=article.title, base_body=article.body, author=_user(actor))


# A change whose content and *Notify subscribers* tick may still be edited: not live, not in
# flight, not dropped.
NOTIFY_EDITABLE = (RevisionStatus.DRAFT, RevisionStatus.SCHEDULED, RevisionStatus.FAILED, RevisionStatus.IN_RELEASE)


def _set_notify(revision_id: int, notify_subscribers: bool | None) -> None:
    """Store the *Notify subscribers of this update* tick, compare-and-set on the status: refused
    (TransitionError) once the change is publishing, applied or dropped (its mail is decided)."""
    if notify_subscribers is None:
        return
    if ArticleRevision.objects.filter(pk=revision_id, status__in=NOTIFY_EDITABLE).update(
            notify_subscribers=notify_subscribers, updated_at=Now()):
        return
    current = ArticleRevision.objects.filter(pk=revision_id).first()
    if current is None:
        raise TransitionError(f"Change #{revision_id} no longer exists.")
    raise TransitionError(f"Whether subscribers are notified of change #{revision_id} can no longer be changed: "
                          f"it is {current.get_status_display().lower()}"
                          + (" (subscribers are notified)." if current.notify_subscribers
                             else " (subscribers are not notified)."))


def revision_set_notify(*, revision_id: int, notify_subscribers: bool,
                        actor: AbstractBaseUser | None) -> ArticleRevision:
    """Tick or untick *Notify subscribers of this update* on a change still editable (draft,
    scheduled, failed, or waiting in its release); refused with the reason once it is
    publishing, applied, cancelled or rolled back."""
    with transaction.atomic():
        _set_notify(revision_id, notify_subscribers)
        return ArticleRevision.objects.get(pk=revision_id)


def revision_schedule(*, revision_id: int, publish_at: datetime, actor: AbstractBaseUser | None,
                      claim_due: bool = True, notify_subscribers: bool | None = None) -> ArticleRevision:
    """Schedule (or reschedule) a change for `publish_at`, a time ahead. Overrides an in-flight
    claim (the editor wins); one due within the look-ahead is claimed at once, so it still goes
    live on its second. `notify_subscribers` (None: as it is) is stored in the same transaction."""
    with transaction.atomic():
        revision = _locked(revision_id)
        _set_notify(revision_id, notify_subscribers)
        article = Article.objects.get(pk=revision.article_id)
        schedule_rules.raise_errors(schedule_rules.change_time_errors(publish_at=publish_at,
                                                                      unpublish_at=article.unpublish_at))
        _replace_pending(revision.article_id, keep=revision_id, actor=actor)
        revision = _transition(revision_id, "schedule", actor=actor, publish_at=publish_at, immediate=False,
                               attempts=0, last_error="", **_released_claim())
        if claim_due and publish_at <= timezone.now() + timedelta(seconds=settings.PUBLISHER_LOOKAHEAD):
            if revisions_claim_due(revision_ids=[revision_id]):
                revision.refresh_from_db()
        # Scheduled closer than the pre-flight window: checked at once after commit (a change
        # claimed just now is prepared by the pipeline instead; the check skips it).
        if claim_due and revision.status == RevisionStatus.SCHEDULED:
            revision_preflight.revision_preflight_requested_on_commit(revision_id=revision_id, publish_at=publish_at)
    return revision


def revision_publish_now(*, revision_id: int, actor: AbstractBaseUser | None,
                         notify_subscribers: bool | None = None) -> ArticleRevision:
    """Claim a change now and send it down the scan's pipeline: live within seconds.
    `notify_subscribers` (None: as it is) is stored in the same transaction."""
    with transaction.atomic():
        revision = _locked(revision_id)
        _set_notify(revision_id, notify_subscribers)
        _replace_pending(revision.article_id, keep=revision_id, actor=actor)
        now = timezone.now()
        token = str(uuid.uuid4())
        revision = _transition(revision_id, "publish_now", actor=actor, publish_at=now, immediate=True,
                               claim_token=token, claimed_at=Now(), lease_expires_at=_lease_expiry(), attempts=1,
                               last_error="", unfinished_runs=0)
        due = [(revision_id, now)]
        transaction.on_commit(lambda: dispatch.revisions_claimed(token=token, due=due))
    return revision


def revision_cancel(*, revision_id: int, actor: AbstractBaseUser | None) -> ArticleRevision:
    """Drop a pending (or draft, or failed) change; an in-flight claim is abandoned. A member
    of a release leaves the release first (on the release's page)."""
    release_id = ArticleRevision.objects.filter(pk=revision_id).exclude(
        status__in=RELEASE_MEMBER_DONE).values_list("release_id", flat=True).first()
    if release_id is not None:
        raise TransitionError(f"Cannot cancel change #{revision_id}: it is in release #{release_id}; remove it "
                              "from the release first.")
    return _transition(revision_id, "cancel", actor=actor, **_released_claim())


def _user(actor):
    return actor if actor is not None and actor.is_authenticated else None


# --- The scan --------------------------------------------------------------------------------------

def revisions_claim_due(*, limit: int | None = None, lookahead: float | None = None,
                        revision_ids: list[int] | None = None) -> Claim | None:
    """Claim up to `limit` scheduled changes due within `lookahead` seconds and dispatch them
    after commit, exactly as `articles_claim_due` does articles: one compare-and-set statement
    (SKIP LOCKED on PostgreSQL), a lease from the due time, the apply waiting in the broker
    until then and refusing to run early by the database clock."""
    limit = limit or settings.PUBLISHER_SCAN_BATCH
    lookahead = settings.PUBLISHER_LOOKAHEAD if lookahead is None else lookahead
    horizon = ExpressionWrapper(Now() + timedelta(seconds=lookahead), output_field=DateTimeField())
    token = str(uuid.uuid4())
    with transaction.atomic():
        due = ArticleRevision.objects.due(horizon).order_by("publish_at")
        if revision_ids is not None:
            due = due.filter(pk__in=revision_ids)
        changed = due.claim_first(limit=limit, outcomes=[], values={
            "claim_token": Value(uuid.UUID(token)),
            "claimed_at": Now(),
            "lease_expires_at": _lease_expiry(from_publish_at=True),
            "attempts": F("attempts") + 1,
        }, always={"unfinished_runs": 0}, returning=("id", "publish_at"))
        if not changed:
            return None
        claimed = sorted(((pk, _aware(publish_at)) for pk, publish_at in changed), key=lambda item: (item[1], item[0]))
        transaction.on_commit(lambda: dispatch.revisions_claimed(token=token, due=claimed))
    return Claim(token=token, due=claimed, examined=len(changed))


def revisions_reclaim_expired_leases(*, limit: int | None = None) -> tuple[Claim | None, int]:
    """The sweeper, for changes: re-dispatch claims whose lease ran out, one change per chain;
    after PUBLISHER_MAX_ATTEMPTS claims the change is `failed` with the reason and its author
    is e-mailed. Returns (the new claim or None, how many were given up)."""
    limit = limit or settings.PUBLISHER_SCAN_BATCH
    token = str(uuid.uuid4())
    max_attempts = settings.PUBLISHER_MAX_ATTEMPTS
    with transaction.atomic():
        ids = _due_ids(ArticleRevision.objects.stale_claims().order_by("lease_expires_at"), limit)
        if not ids:
            return None, 0
        stale = ArticleRevision.objects.filter(pk__in=ids).stale_claims()
        giving_up = list(stale.filter(attempts__gte=max_attempts).values_list("id", flat=True))
        given_up = stale.filter(pk__in=giving_up).transition(
            "fail", actor=None,
            last_error=f"Gave up after {max_attempts} attempts: each claim's lease ({settings.PUBLISHER_LEASE_SECONDS} s) "
                       "expired before the change went live (worker killed, message lost or broker restarted).",
            **_released_claim())
        stale.filter(attempts__lt=max_attempts).transition(
            "reclaim", claim_token=token, claimed_at=Now(), lease_expires_at=_lease_expiry(),
            attempts=F("attempts") + 1, unfinished_runs=0)
        reclaimed = [(pk, when) for pk, when in ArticleRevision.objects.in_flight(token)
                     .order_by("publish_at", "pk").values_list("id", "publish_at")]
        if given_up:
            transaction.on_commit(lambda: dispatch.revision_failure_alerts(revision_ids=giving_up))
        if reclaimed:
            transaction.on_commit(lambda: dispatch.revisions_claimed(token=token, due=reclaimed, chunk_size=1))
    if reclaimed or given_up:
        logger.warning("sweeper: re-dispatched %d expired change claims, gave up on %d", len(reclaimed), given_up)
    return (Claim(token=token, due=reclaimed) if reclaimed else None), given_up


def revisions_fail_claimed(*, revision_ids: list[int], token: str, reason: str) -> int:
    """Record a failure on the changes this claim still holds (in the article's Activity) and
    e-mail their authors once that commits. The live article is untouched. Idempotent."""
    with transaction.atomic():
        held = list(ArticleRevision.objects.in_flight(token).filter(pk__in=revision_ids).values_list("id", flat=True))
        failed = ArticleRevision.objects.filter(pk__in=held).transition(
            "fail", token=token, actor=None, last_error=reason[:5000], lease_expires_at=None)
        # A release's member: the release's blocked mail says it, not its own.
        alone = list(ArticleRevision.objects.filter(pk__in=held, release__isnull=True).values_list("id", flat=True))
        if failed and alone:
            transaction.on_commit(lambda: dispatch.revision_failure_alerts(revision_ids=alone))
    if failed:
        logger.error("%d changes failed (claim %s): %s", failed, token, reason)
    return failed


def revisions_step_gave_up(*, revision_ids: list[int], token: str, reason: str, transient: bool) -> int:
    """A step gave up on a chunk of changes: a transient cause is left to the lease and the
    sweeper, anything else fails them now (as `articles_step_gave_up`)."""
    if transient:
        logger.warning("%d changes left to the lease and the sweeper (claim %s): %s", len(revision_ids), token, reason)
        return 0
    return revisions_fail_claimed(revision_ids=revision_ids, token=token, reason=reason)


# --- The pipeline's steps, on revisions --------------------------------------------------------------

# A change the pre-flight prepared for exactly its content is not rendered again (publisher.revision_preflight).
REVISIONS = pipeline.Claimed(ArticleRevision, lambda *, ids, token, reason: revisions_fail_claimed(
    revision_ids=ids, token=token, reason=reason), prepared_fields=pipeline.REVISION_PREPARED_FIELDS)

APPLIED_FIELDS = ("title", "body", "image", "image_alt", "body_html", "excerpt", "word_count", "thumbnail")


def step_process(*, revision_ids: list[int], token: str) -> list[int]:
    """Render and sanitize the change's body into the revision (the pipeline's own step)."""
    return pipeline.step_process(article_ids=revision_ids, token=token, rows=REVISIONS)


def step_thumbnails(*, revision_ids: list[int], token: str) -> list[int]:
    """Make the change's thumbnail into the revision (the pipeline's own step)."""
    return pipeline.step_thumbnails(article_ids=revision_ids, token=token, rows=REVISIONS)


def revision_rows(revisions) -> list[dict]:
    """What `revisions_copy_into_articles` reads of each change, in id order."""
    return list(revisions.order_by("pk").values("id", "article_id", "base_title", "base_body", "notify_subscribers",
                                                *APPLIED_FIELDS))


def revisions_copy_into_articles(*, rows: list[dict], at: datetime) -> tuple[list[dict], dict[int, str]]:
    """Copy each change's prepared content into its article, stamped `at`, if the article is
    still live with the text the change was made from (the editor wins), and keep on the
    change the content it replaced (`previous_content`: what a release's rollback restores).
    The caller holds the articles' locks and owns the transaction, the status transitions and
    the webhooks (a change's own apply, or a release's flip). Returns (the rows applied,
    {revision id: why not} for the others)."""
    applied, abandoned = [], {}
    for row in rows:
        live = Article.objects.filter(pk=row["article_id"], status=ArticleStatus.PUBLISHED,
                                      title=row["base_title"], body=row["base_body"])
        previous = live.values(*APPLIED_FIELDS, "revised_at").first()
        if previous is None:
            status = Article.objects.filter(pk=row["article_id"]).values_list("status", flat=True).first()
            abandoned[row["id"]] = NOT_LIVE.format(status or "deleted")
            continue
        live.update(**{name: row[name] for name in APPLIED_FIELDS}, revised_at=at, updated_at=at)
        previous["revised_at"] = previous["revised_at"].isoformat() if previous["revised_at"] else None
        ArticleRevision.objects.filter(pk=row["id"]).update(previous_content=previous)
        applied.append(row)
    return applied, abandoned


def revisions_restore_previous(*, revision_ids: list[int], at: datetime) -> tuple[list[int], dict[int, str]]:
    """Give each applied change's article back the content the change replaced, stamped `at`,
    if the article is still live with exactly this change's text (an article changed or taken
    down since is left as it is: the editor wins). The caller holds the transaction and takes
    the transitions. Returns (the ids restored, {revision id: why not} for the others)."""
    restored, skipped = [], {}
    rows = ArticleRevision.objects.filter(pk__in=revision_ids).order_by("pk").values(
        "id", "article_id", "title", "body", "previous_content")
    for row in rows:
        previous = dict(row["previous_content"] or {})
        if not previous:
            skipped[row["id"]] = "nothing to restore: the content it replaced was not recorded"
            continue
        revised_at = previous.pop("revised_at", None)
        written = Article.objects.filter(pk=row["article_id"], status=ArticleStatus.PUBLISHED, title=row["title"],
                                         body=row["body"]).update(**previous, updated_at=at, revised_at=revised_at)
        if written:
            restored.append(row["id"])
        else:
            skipped[row["id"]] = "not restored: the article was taken down or changed again since"
    return restored, skipped


def step_apply(*, revision_ids: list[int], token: str) -> tuple[list[int], float]:
    """Apply the prepared changes that are due by the database clock, each in full or not at
    all, in one transaction: the article gets the change's content and `revised_at` (the page,
    the feed's updated date and the sitemap's lastmod follow; cached pages are forgotten on
    commit), the `updated` webhook is recorded, the revision becomes `applied` with its audit
    event. A change whose article is no longer live with the text it was made from is cancelled
    instead (the editor wins). Never early: the second value says how long to wait for the rest
    (0 when nothing is left). Returns the ids applied by this call."""
    faults.checkpoint("apply_revision")
    with transaction.atomic():
        # One instant of the database clock for the lot: what is due, and the time stamped on
        # the article, its revision and its webhook.
        at = database_now()
        mine = ArticleRevision.objects.in_flight_by_id(revision_ids, token)
        # The articles first, then the changes: the order the editor's actions lock them in.
        list(Article.objects.select_for_update().filter(pk__in=mine.values("article_id")).values_list("pk"))
        due = revision_rows(mine.filter(publish_at__lte=at).select_for_update())
        applied, abandoned = revisions_copy_into_articles(rows=due, at=at)
        if applied:
            ArticleRevision.objects.filter(pk__in=[row["id"] for row in applied]).transition(
                "apply", token=token, actor=None, applied_at=at, lease_expires_at=None)
            webhooks.record(event="updated", article_ids=[row["article_id"] for row in applied])
            revisions_mail_updates_on_commit(rows=applied)
        for revision_id, reason in abandoned.items():
            ArticleRevision.objects.filter(pk=revision_id).transition(
                "abandon", token=token, actor=None, last_error=reason, lease_expires_at=None)
        waiting = mine.order_by("publish_at").values_list("publish_at", flat=True).first()
    if applied:
        logger.info("applied %d changes (claim %s)", len(applied), token)
    wait = 0.0
    if waiting is not None:
        wait = min(max((waiting - timezone.now()).total_seconds(), 0.1), 5.0)
    return [row["id"] for row in applied], wait


def revisions_mail_updates_on_commit(*, rows: list[dict]) -> None:
    """Inside the transaction that applied these changes (their own apply, or a release's flip):
    once it commits, start the update mail of each change the editor ticked *Notify subscribers
    of this update* on. A lost message is re-sent by the fan-out sweeper
    (ArticleRevision.fanned_out_at stays empty until the fan-out ends)."""
    for row in rows:
        if row["notify_subscribers"]:
            transaction.on_commit(partial(_fan_out_update, row["article_id"], row["id"]))


def _fan_out_update(article_id: int, revision_id: int) -> None:
    try:
        dispatch.fan_out(article_id=article_id, revision_id=revision_id)
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("update mail of change #%s not dispatched (the sweeper will): the broker refused it",
                         revision_id)


# --- Alerts ------------------------------------------------------------------------------------------

def revision_failure_alerts_send(*, revision_ids: list[int]) -> int:
    """Mail the author of each of these changes that is still failed (the live article kept its
    content). Returns how many e-mails were sent."""
    sent = 0
    for revision in (ArticleRevision.objects.filter(pk__in=revision_ids, status=RevisionStatus.FAILED)
                     .select_related("author", "article").order_by("pk")):
        to = revision.author.email if revision.author else ""
        if not to:
            logger.warning("change #%s failed and its author has no e-mail address", revision.pk)
            continue
        link = absolute_url(None, reverse("admin:publisher_article_change", args=[revision.article_id]))
        send_mail(
            subject=f"Change failed: {revision.article}",
            message=(f"Your change to “{revision.article}” could not be published; the live article is unchanged.\n\n"
                     f"Reason: {revision.last_error}\n\nOpen the article to fix it and schedule it again: {link}\n\n"
                     f"— {settings.PUBLISHER_SITE_NAME}"),
            from_email=None, recipient_list=[to])
        sent += 1
    return sent
