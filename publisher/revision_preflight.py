"""Pre-flight of scheduled changes (ArticleRevision): PUBLISHER_PREFLIGHT_MINUTES before a change
is due, prepare it exactly as its apply will (render its body, make its thumbnail, render the
subscribers' update mail) with the same checks as an article (publisher.preflight.preflight_check,
given the change's content and its live article's address), without touching the live article.
What fails marks the change *at risk* (ArticleRevision.at_risk_reason), is written to the
article's Activity ("Change #N: …") and is e-mailed once to whoever scheduled the change; what
passes keeps its prepared output on the change, and the pipeline's steps reuse it when the change
still holds the content checked (ArticleRevision.prepared_by_preflight), so the apply is only the
copy into the article.

As for articles, a result belongs to a content fingerprint (the change's title, body, image and
alt text): a save of new content asks for a new check (ArticleRevision.save), the same content is
never checked or mailed twice, and a result is written only while the change still holds the
content checked and is still scheduled (compare-and-set). A change in a release is `in_release`:
it is checked with its release (publisher.release_preflight), never alone.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now

from . import dispatch, preflight
from .models import REVISION_PREFLIGHT_THUMBNAIL, ArticleEvent, ArticleEventAction, ArticleRevision
from .preflight import SKIPPED, UNCHANGED, Content
from .states import RevisionStatus

def revision_content(revision: ArticleRevision, *, slug: str) -> Content:
    """What the change puts live, under its article's address `slug`; its e-mail is the update mail."""
    return Content(title=revision.title, body=revision.body, image=revision.image or None,
                   image_alt=revision.image_alt, slug=slug or "", article_id=revision.article_id, update=True)


# --- Which changes, and when --------------------------------------------------------------------

def _unchecked(window):
    """Scheduled changes due within the window, not checked for their current content, and not
    handed to a pre-flight task whose lease still runs: read through revision_preflight_due_idx."""
    return (ArticleRevision.objects.filter(status=RevisionStatus.SCHEDULED, preflight_checked_at__isnull=True,
                                           **preflight.due_ahead_of_the_claim(window))
            .filter(Q(preflight_queued_until__isnull=True) | Q(preflight_queued_until__lte=Now())))


def _send(ids: list[int]) -> None:
    dispatch.revision_preflight(revision_ids=ids)


def revisions_preflight_dispatch(*, limit: int | None = None) -> int:
    """The scan's part: hand the scheduled changes due within PUBLISHER_PREFLIGHT_MINUTES that were
    not checked for their current content to pre-flight tasks (in chunks, after commit), as
    articles are. Returns how many. 0 minutes: off."""
    window = preflight._window()
    if window is None:
        return 0
    return len(preflight._queue(_unchecked(window), limit=limit or settings.PUBLISHER_SCAN_BATCH, send=_send))


def revision_preflight_soon(*, revision_id: int) -> bool:
    """Scheduled closer to its time than the window: check it now rather than at the next scan.
    Call after the schedule committed. Returns whether a check was dispatched."""
    window = preflight._window()
    if window is None:
        return False
    return bool(preflight._queue(_unchecked(window).filter(pk=revision_id), limit=1, send=_send))


def revision_preflight_requested_on_commit(*, revision_id: int, publish_at) -> None:
    """Inside the transaction that scheduled the change: check it at once after commit when it is
    already inside the window (else the scan takes it when it enters the window)."""
    if preflight.within_window(publish_at):
        transaction.on_commit(lambda: revision_preflight_soon(revision_id=revision_id))


# --- The check of one change ---------------------------------------------------------------------

def revisions_preflight(*, revision_ids: list[int]) -> dict[str, int]:
    """Check each of these changes that is still scheduled, each alone (as `articles_preflight`):
    a transient error propagates; when the soft time limit fires, the rest goes back to the next
    scan. Returns how many passed, are at risk, were unchanged or skipped."""
    return preflight.check_each(ArticleRevision, revision_ids, lambda pk: revision_preflight(revision_id=pk),
                                noun="change", log_key="revision_id")


def revision_preflight(*, revision_id: int, release_id: int | None = None) -> str:
    """Check one scheduled change and record the outcome for its current content (see the
    module's docstring). Returns PASSED, AT_RISK, UNCHANGED or SKIPPED, as `article_preflight`.
    With `release_id`: the change is checked as a member of that scheduled release (`in_release`)
    and is not mailed about on its own (the release's pre-flight mails its scheduler)."""
    scope = ({"status": RevisionStatus.SCHEDULED} if release_id is None
             else {"status": RevisionStatus.IN_RELEASE, "release_id": release_id})
    revision = ArticleRevision.objects.filter(pk=revision_id, **scope).select_related("article").first()
    if revision is None:
        return SKIPPED
    fingerprint = revision.content_fingerprint()
    still = ArticleRevision.objects.filter(pk=revision_id, **scope, title=revision.title, body=revision.body,
                                           image=revision.image.name or "", image_alt=revision.image_alt)
    if revision.preflight_fingerprint == fingerprint:
        still.filter(preflight_fingerprint=fingerprint).update(preflight_checked_at=Now(), preflight_queued_until=None)
        return UNCHANGED
    result = preflight.preflight_check(revision_content(revision, slug=revision.article.slug or ""))
    values, made = preflight.outcome_values(result, fingerprint=fingerprint,
                                            thumbnail_name=REVISION_PREFLIGHT_THUMBNAIL.format(pk=revision_id))
    with transaction.atomic():
        written = still.exclude(preflight_fingerprint=fingerprint).update(**values)
        if written:
            ArticleEvent.objects.create(
                article_id=revision.article_id, actor=None, publish_at=revision.publish_at,
                action=ArticleEventAction.PREFLIGHT_PASSED if result.passed else ArticleEventAction.AT_RISK,
                note=f"Change #{revision_id}" + (f": {values['at_risk_reason']}" if not result.passed else ""))
            if not result.passed and release_id is None:
                transaction.on_commit(lambda: dispatch.revision_preflight_alerts(revision_ids=[revision_id]))
    return preflight.settle(result, written=written, made=made, old=revision.thumbnail.name,
                            own_prefix="thumbnails/articlerevision-", what=f"change #{revision_id}")
