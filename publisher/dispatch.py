"""Building and sending the Celery canvas. Signatures are made by task name, so services can
enqueue without importing the tasks that call them (no import circle).

One chain prepares a whole chunk of articles, so a burst of N due articles costs
N / PUBLISHER_CHUNK_SIZE chains instead of N: the per-article chain is the throughput ceiling.
A chunk is up to PUBLISHER_CHUNK_SIZE claimed articles, earliest first, whatever their publish
times; only the make-live flip is grouped by due time (PUBLISHER_CHUNK_WINDOW), one cheap
`make_live -> notify` chain per group, each waiting in the broker until its time.

Every signature says `ignore_result`: nothing reads these results, and a process that has not
imported the tasks (web, a management command) otherwise subscribes to each task's result on
the result backend when it sends it (Celery's send_task), which costs a subscription per task
and, with the backend unreachable, ~20 s of reconnect attempts before the dispatch fails.
"""

import logging
from datetime import datetime

from functools import partial

from celery import chain, group
from celery import signature as celery_signature
from django.conf import settings
from django.utils import timezone

logger = logging.getLogger(__name__)

PROCESS = "publisher.tasks.process_articles"
THUMBNAILS = "publisher.tasks.generate_thumbnails"
MAKE_LIVE = "publisher.tasks.make_live"
SCHEDULE_FLIPS = "publisher.tasks.schedule_flips"
NOTIFY = "publisher.tasks.notify_subscribers"
FAIL = "publisher.tasks.record_chunk_failure"
FAN_OUT = "publisher.tasks.fan_out_notifications"
SEND = "publisher.tasks.send_notifications"
ALERT = "publisher.tasks.send_failure_alerts"
CONFIRM = "publisher.tasks.send_confirmation"
PREFLIGHT = "publisher.tasks.preflight_articles"
PREFLIGHT_ALERT = "publisher.tasks.send_preflight_alerts"
RELEASE_PREPARED = "publisher.tasks.release_members_prepared"
RELEASE_FLIP = "publisher.tasks.release_flip"
RELEASE_FAIL = "publisher.tasks.record_release_chunk_failure"
RELEASE_ALERT = "publisher.tasks.send_release_alert"
RELEASE_ROLL_BACK = "publisher.tasks.release_roll_back"
RELEASE_CHANGES_PREPARED = "publisher.tasks.release_changes_prepared"
RELEASE_CHANGES_FAIL = "publisher.tasks.record_release_changes_failure"
REVISION_PROCESS = "publisher.tasks.process_revisions"
REVISION_THUMBNAILS = "publisher.tasks.generate_revision_thumbnails"
REVISION_APPLY = "publisher.tasks.apply_revisions"
REVISION_FAIL = "publisher.tasks.record_revision_chain_failure"
REVISION_ALERT = "publisher.tasks.send_revision_failure_alerts"
RELEASE_PREFLIGHT = "publisher.tasks.preflight_release"
RELEASE_PREFLIGHT_ALERT = "publisher.tasks.send_release_preflight_alert"
REVISION_PREFLIGHT = "publisher.tasks.preflight_revisions"
REVISION_PREFLIGHT_ALERT = "publisher.tasks.send_revision_preflight_alerts"

signature = partial(celery_signature, ignore_result=True)


def chunks(due: list[tuple[int, datetime]], *, size: int, window: float) -> list[list[tuple[int, datetime]]]:
    """Split (id, publish_at) pairs, earliest first, into chunks of at most `size` articles
    whose publish times lie within `window` seconds of the chunk's first."""
    out: list[list[tuple[int, datetime]]] = []
    for item in due:
        if out and len(out[-1]) < size and (item[1] - out[-1][0][1]).total_seconds() <= window:
            out[-1].append(item)
        else:
            out.append([item])
    return out


def plan(due: list[tuple[int, datetime]], *, size: int, window: float) -> list[list[list[tuple[int, datetime]]]]:
    """Split (id, publish_at) pairs, earliest first, into preparation chunks of at most `size`
    articles whatever their publish times, each split into its flip groups (`chunks`: articles
    due within `window` seconds of the group's first)."""
    return [chunks(due[start:start + size], size=size, window=window) for start in range(0, len(due), size)]


def _flip(*, token: str, go_live_at: datetime | None, args: tuple = ()) -> list:
    """make live -> notify. The make-live step waits in the broker until `go_live_at`
    (look-ahead dispatch); delivered early anyway, it waits again (never early)."""
    make_live = signature(MAKE_LIVE, kwargs={"token": token}, args=args)
    if go_live_at is not None and go_live_at > timezone.now():
        make_live = make_live.set(eta=go_live_at)
    return [make_live, signature(NOTIFY, kwargs={"token": token})]


def publishing_chain(*, token: str, article_ids: list[int], go_live_at: datetime | None = None,
                     flips: list[tuple[list[int], datetime]] | None = None):
    """process -> thumbnails -> make live -> notify, for one chunk under one claim. Each step
    passes the ids still in flight to the next; a step whose retries are spent records the
    failure on the chunk's remaining articles through the errback. Processing runs at once.
    With one flip (or none given) the make-live step waits in the broker until `go_live_at`;
    with several `flips` (ids, due time), the last step sends one flip chain per group instead."""
    if flips is not None and len(flips) > 1:
        tail = [signature(SCHEDULE_FLIPS, kwargs={
            "token": token, "flips": [[ids, when.isoformat()] for ids, when in flips]})]
    else:
        tail = _flip(token=token, go_live_at=flips[0][1] if flips else go_live_at)
    canvas = chain(
        signature(PROCESS, kwargs={"token": token}, args=(article_ids,)),
        signature(THUMBNAILS, kwargs={"token": token}),
        *tail,
    )
    canvas.link_error(signature(FAIL, kwargs={"article_ids": article_ids, "token": token}))
    return canvas


def flip_chain(*, token: str, article_ids: list[int], go_live_at: datetime):
    """make live -> notify for one group of prepared articles due together, with its own
    errback (a flip whose retries are spent fails that group, not the chunk)."""
    canvas = chain(*_flip(token=token, go_live_at=go_live_at, args=(article_ids,)))
    canvas.link_error(signature(FAIL, kwargs={"article_ids": article_ids, "token": token}))
    return canvas


def send_flips(*, token: str, flips: list[tuple[list[int], datetime]]) -> None:
    """Send one flip chain per group. Raises the broker's error: the sending step retries (a
    group sent twice flips nothing twice: make-live is a compare-and-set on the claim)."""
    group(flip_chain(token=token, article_ids=ids, go_live_at=when) for ids, when in flips).apply_async()


def publish_claimed(*, token: str, due: list[tuple[int, datetime]], chunk_size: int | None = None) -> None:
    """Send one group of chunked chains. Called after the claim committed. If the broker is
    unreachable the claim stays in the database and the sweeper re-dispatches it when its
    lease expires: nothing is lost, only delayed."""
    parts = plan(due, size=chunk_size or settings.PUBLISHER_CHUNK_SIZE, window=settings.PUBLISHER_CHUNK_WINDOW)
    try:
        group(publishing_chain(token=token, article_ids=[pk for flip in part for pk, _ in flip],
                               flips=[([pk for pk, _ in flip], flip[-1][1]) for flip in part])
              for part in parts).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the lease covers all
        logger.exception("dispatch of %d claimed articles (claim %s) failed; the sweeper will retry after the lease",
                         len(due), token)


def fan_out(*, article_id: int, after_subscriber_id: int = 0, revision_id: int | None = None) -> None:
    # `revision_id` only when set: the article's own mail keeps the previous release's message.
    kwargs = {"article_id": article_id, "after_subscriber_id": after_subscriber_id}
    signature(FAN_OUT, kwargs={**kwargs, "revision_id": revision_id} if revision_id else kwargs).apply_async()


def send_notifications(*, article_id: int, first_subscriber_id: int, last_subscriber_id: int,
                       revision_id: int | None = None) -> None:
    kwargs = {"article_id": article_id, "first_subscriber_id": first_subscriber_id,
              "last_subscriber_id": last_subscriber_id}
    signature(SEND, kwargs={**kwargs, "revision_id": revision_id} if revision_id else kwargs).apply_async()


def failure_alerts(*, article_ids: list[int]) -> None:
    """E-mail whoever scheduled these failed articles (publisher.alerts). After the failure
    committed; with the broker unreachable the alert is lost (logged): the failure itself is in
    the article's Activity and on the status panel either way."""
    try:
        signature(ALERT, kwargs={"article_ids": article_ids}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("failure alert for articles %s not sent: the broker refused it", article_ids)


def send_confirmation(*, email: str, site_url: str) -> None:
    """Enqueue one confirmation mail. Raises the broker's error: no row records the request
    (an unknown address has none yet), so nothing would pick it up later; the caller says so."""
    signature(CONFIRM, kwargs={"email": email, "site_url": site_url}).apply_async()


def preflight(*, article_ids: list[int]) -> None:
    """One pre-flight task per chunk of PUBLISHER_CHUNK_SIZE articles (publisher.preflight). With
    the broker unreachable nothing is lost: the rows' pre-flight lease runs out and the scan
    hands them out again."""
    size = settings.PUBLISHER_CHUNK_SIZE
    try:
        for start in range(0, len(article_ids), size):
            signature(PREFLIGHT, kwargs={"article_ids": article_ids[start:start + size]}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the lease covers all
        logger.exception("pre-flight of articles %s not dispatched: the broker refused it", article_ids)


def preflight_alerts(*, article_ids: list[int]) -> None:
    """E-mail whoever scheduled these articles that the pre-flight found them at risk
    (publisher.alerts), after that committed. With the broker unreachable the mail is lost
    (logged): the flag is on the article list, the agenda and the status panel either way."""
    try:
        signature(PREFLIGHT_ALERT, kwargs={"article_ids": article_ids}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("at-risk alert for articles %s not sent: the broker refused it", article_ids)


# --- Releases (publisher.releases) ---------------------------------------------------------------

def publish_release(*, release_id: int, token: str, article_ids: list[int], go_live_at: datetime,
                    revision_ids: list[int] = ()) -> None:
    """One preparation chain per chunk of the release's members (process -> thumbnails ->
    mark prepared and send the flip): no chunk flips anything itself. With every member
    already prepared (a reclaim), just the flip. If the broker is unreachable the release's
    lease and the sweeper send it again."""
    size = settings.PUBLISHER_CHUNK_SIZE
    try:
        if not article_ids and not revision_ids:
            release_flip(release_id=release_id, token=token, go_live_at=go_live_at)
            return
        chains = []
        # Its changes (publisher.release_changes): the changes' own steps, then marked prepared.
        for start in range(0, len(revision_ids), size):
            ids = list(revision_ids[start:start + size])
            canvas = chain(signature(REVISION_PROCESS, kwargs={"token": token}, args=(ids,)),
                           signature(REVISION_THUMBNAILS, kwargs={"token": token}),
                           signature(RELEASE_CHANGES_PREPARED, kwargs={"token": token, "release_id": release_id}))
            canvas.link_error(signature(RELEASE_CHANGES_FAIL, kwargs={"release_id": release_id, "revision_ids": ids,
                                                                      "token": token}))
            chains.append(canvas)
        for start in range(0, len(article_ids), size):
            ids = article_ids[start:start + size]
            canvas = chain(signature(PROCESS, kwargs={"token": token}, args=(ids,)),
                           signature(THUMBNAILS, kwargs={"token": token}),
                           signature(RELEASE_PREPARED, kwargs={"token": token, "release_id": release_id}))
            canvas.link_error(signature(RELEASE_FAIL, kwargs={"release_id": release_id, "article_ids": ids,
                                                              "token": token}))
            chains.append(canvas)
        group(chains).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the lease covers all
        logger.exception("dispatch of release #%s (claim %s) failed; the sweeper will retry after the lease",
                         release_id, token)


def release_flip(*, release_id: int, token: str, go_live_at: datetime) -> None:
    """The release's one flip, waiting in the broker until the release time. Raises the
    broker's error (the sending step retries; a flip sent twice flips once)."""
    flip = signature(RELEASE_FLIP, kwargs={"release_id": release_id, "token": token})
    if go_live_at > timezone.now():
        flip = flip.set(eta=go_live_at)
    flip.apply_async()


def release_roll_back(*, release_id: int, at: datetime) -> None:
    """The release's rollback, waiting in the broker until its rollback time `at` (look-ahead
    dispatch, as the flip). Lost (logged) with the broker unreachable: the scan's
    `releases_roll_back_due` rolls the release back at its next run instead."""
    roll_back = signature(RELEASE_ROLL_BACK, kwargs={"release_id": release_id, "at": at.isoformat()})
    if at > timezone.now():
        roll_back = roll_back.set(eta=at)
    try:
        roll_back.apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the scan covers it
        logger.exception("rollback of release #%s not dispatched: the broker refused it; the scan rolls it back",
                         release_id)


def release_alert(*, release_id: int) -> None:
    """E-mail whoever scheduled this blocked release. Lost (logged) with the broker unreachable:
    the block and its reason are on the release's page either way."""
    try:
        signature(RELEASE_ALERT, kwargs={"release_id": release_id}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("release alert for release #%s not sent: the broker refused it", release_id)


# --- Changes to live articles (publisher.revisions) ---------------------------------------------

def revisions_chain(*, token: str, revision_ids: list[int], go_live_at: datetime):
    """process -> thumbnails -> apply, for changes due together under one claim: prepared at
    once, the apply waiting in the broker until `go_live_at` (and refusing to run early by the
    database clock). The errback fails the chunk's remaining changes when a step gives up."""
    apply = signature(REVISION_APPLY, kwargs={"token": token})
    if go_live_at > timezone.now():
        apply = apply.set(eta=go_live_at)
    canvas = chain(signature(REVISION_PROCESS, kwargs={"token": token}, args=(revision_ids,)),
                   signature(REVISION_THUMBNAILS, kwargs={"token": token}), apply)
    canvas.link_error(signature(REVISION_FAIL, kwargs={"revision_ids": revision_ids, "token": token}))
    return canvas


def revisions_claimed(*, token: str, due: list[tuple[int, datetime]], chunk_size: int | None = None) -> None:
    """Send one chain per group of claimed changes due within PUBLISHER_CHUNK_WINDOW of each
    other, after the claim committed. An unreachable broker leaves the claim to the sweeper."""
    parts = chunks(due, size=chunk_size or settings.PUBLISHER_CHUNK_SIZE, window=settings.PUBLISHER_CHUNK_WINDOW)
    try:
        group(revisions_chain(token=token, revision_ids=[pk for pk, _ in part], go_live_at=part[-1][1])
              for part in parts).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the lease covers all
        logger.exception("dispatch of %d claimed changes (claim %s) failed; the sweeper will retry after the lease",
                         len(due), token)


def revision_failure_alerts(*, revision_ids: list[int]) -> None:
    """E-mail the authors of these failed changes, after the failure committed (logged if the
    broker refuses it: the failure is in the article's Activity either way)."""
    try:
        signature(REVISION_ALERT, kwargs={"revision_ids": revision_ids}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("failure alert for changes %s not sent: the broker refused it", revision_ids)


def release_preflight(*, release_id: int) -> None:
    """One pre-flight task for this release (publisher.release_preflight). With the broker
    unreachable nothing is lost: the release's pre-flight lease runs out and the scan hands it
    out again."""
    try:
        signature(RELEASE_PREFLIGHT, kwargs={"release_id": release_id}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the lease covers it
        logger.exception("pre-flight of release #%s not dispatched: the broker refused it", release_id)


def release_preflight_alert(*, release_id: int) -> None:
    """E-mail whoever scheduled this release that the pre-flight found it at risk, after that
    committed. Lost (logged) with the broker unreachable: the flag is on the release's page,
    the list, the agenda and the status panel either way."""
    try:
        signature(RELEASE_PREFLIGHT_ALERT, kwargs={"release_id": release_id}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("at-risk alert for release #%s not sent: the broker refused it", release_id)


def revision_preflight(*, revision_ids: list[int]) -> None:
    """One pre-flight task per chunk of PUBLISHER_CHUNK_SIZE scheduled changes
    (publisher.revision_preflight), as for articles. With the broker unreachable nothing is lost:
    the rows' pre-flight lease runs out and the scan hands them out again."""
    size = settings.PUBLISHER_CHUNK_SIZE
    try:
        for start in range(0, len(revision_ids), size):
            signature(REVISION_PREFLIGHT, kwargs={"revision_ids": revision_ids[start:start + size]}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker; the lease covers all
        logger.exception("pre-flight of changes %s not dispatched: the broker refused it", revision_ids)


def revision_preflight_alerts(*, revision_ids: list[int]) -> None:
    """E-mail whoever scheduled these changes that the pre-flight found them at risk, after that
    committed. Lost (logged) with the broker unreachable: the flag is on the change, the article's
    changes, the agenda and the status panel either way."""
    try:
        signature(REVISION_PREFLIGHT_ALERT, kwargs={"revision_ids": revision_ids}).apply_async()
    except Exception:  # kombu raises several types for an unreachable broker
        logger.exception("at-risk alert for changes %s not sent: the broker refused it", revision_ids)
