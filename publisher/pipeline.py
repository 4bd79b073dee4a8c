"""The publishing steps, each applied to a chunk of articles held by one claim.

Each step works only on rows still `publishing` under the claim's token, so a step that runs
twice (redelivery, retry) or after an editor took the article back does nothing harmful, and
each returns the ids still in flight for the next step. A fault in one article's own content
fails that article alone; a transient fault (database, broker) propagates so the task retries.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Now
from django.utils import timezone

from . import dispatch, faults
from .budgets import time_budget
from .webhooks import services as webhooks
from .log import log_context
from .models import Article, ArticleStatus, Subscriber, is_preflight_thumbnail
from .rendering import ContentError, check_image_pixels, make_thumbnail, render_body
from .services import articles_fail_claimed
from .site.services import articles_ensure_slugs
from .transient import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

# Errors a retry can fix (publisher.transient): the whole task retries. Anything else raised
# while handling one article is that article's own problem: it fails alone and the chunk goes on.


@dataclass(frozen=True)
class Claimed:
    """The rows a claim holds: the model (an article, or a revision of one, whose queryset is a
    ClaimQuerySet) and how the steps fail one of them (`fail(ids=, token=, reason=)`, recorded
    with the reason and alerted). The steps' guard, write and isolation work the same on both."""

    model: type
    fail: Callable[..., int]
    # The fields read to tell whether the pre-flight already prepared a row (none: never).
    prepared_fields: tuple[str, ...] = ()

    def in_flight(self, ids: list[int], token: str):
        return self.model.objects.in_flight_by_id(ids, token)

    def prepared(self, row) -> bool:
        """The pre-flight prepared this row for exactly its content (publisher.preflight)."""
        return bool(self.prepared_fields) and row.prepared_by_preflight()


# What tells whether the pre-flight's prepared output is for the content going live
# (Article.prepared_by_preflight, ArticleRevision.prepared_by_preflight: a change's address is
# its live article's, not part of its content).
PREPARED_FIELDS = ("image_alt", "slug", "preflight_fingerprint", "at_risk_reason")
REVISION_PREPARED_FIELDS = ("image_alt", "preflight_fingerprint", "at_risk_reason")

ARTICLES = Claimed(Article, lambda *, ids, token, reason: articles_fail_claimed(article_ids=ids, token=token,
                                                                                 reason=reason),
                   prepared_fields=PREPARED_FIELDS)


def _in_flight(article_ids: list[int], token: str):
    return Article.objects.in_flight_by_id(article_ids, token)


# A step that started this many times on a chunk without finishing is killing its worker
# process: with acks_late + reject_on_worker_lost the broker hands the message straight back,
# which would loop forever. The chunk is split (each article re-dispatched alone by the
# sweeper) and a single article that still does it is failed as poison.
POISON_THRESHOLD = 3


def _guarded(step: str, article_ids: list[int], token: str, work, *, fields: tuple[str, ...],
             rows: Claimed = ARTICLES) -> list[int]:
    """Mark the chunk's rows still in flight as started (unfinished_runs + 1) and read their
    `fields` in the same statement, then `work(articles)`. The step's own write of its results
    clears the mark (`_write`); an exception we see clears it here (retries are not crashes);
    only a process that dies mid-step leaves it."""
    started = rows.in_flight(article_ids, token).update_returning(
        {"unfinished_runs": F("unfinished_runs") + 1}, returning=("id", "unfinished_runs", *fields))
    in_flight = [row[0] for row in started]
    if any(runs > POISON_THRESHOLD for _, runs, *_ in started):
        if len(in_flight) > 1:
            # Hand each article to the sweeper, which re-dispatches it in a chain of its own.
            rows.in_flight(in_flight, token).update(lease_expires_at=Now(), unfinished_runs=0)
            logger.error("%s: chunk of %d killed its worker %d times; splitting it (claim %s)",
                         step, len(in_flight), POISON_THRESHOLD, token)
        else:
            rows.fail(ids=in_flight, token=token, reason=(
                f"{step}: this article killed the worker process {POISON_THRESHOLD} times while being processed "
                "(out of memory, a crash in an image library, or a time limit); it will not be tried again."))
        return []
    articles = sorted((rows.model(id=pk, **dict(zip(fields, values))) for pk, _, *values in started),
                      key=lambda article: article.pk)
    try:
        return work(articles)
    except BaseException:
        rows.model.objects.filter(pk__in=article_ids, claim_token=token).update(unfinished_runs=0)
        raise


def _write(articles: list[Article], token: str, fields: list[str], *, rows: Claimed = ARTICLES) -> set[int]:
    """One UPDATE for the chunk's results, still conditioned on the claim (a row the editor took
    back meanwhile is not written, and the next steps skip it), which also clears the guard's
    started mark. Returns the ids written."""
    return set(rows.in_flight([a.pk for a in articles], token).update_each(
        {a.pk: {name: getattr(a, name) for name in fields} for a in articles}, also={"unfinished_runs": 0}))


def _release_rest(articles: list[Article], token: str, step: str, *, rows: Claimed = ARTICLES) -> None:
    """The task's soft time limit fired mid-chunk: what is done is kept and goes on down the
    chain; the articles not reached yet are handed to the next scan's sweeper (lease expired
    now), which re-dispatches them under a new claim. No article's budget was spent: no one is
    failed for it."""
    ids = [a.pk for a in articles]
    left = rows.in_flight(ids, token).update(lease_expires_at=Now())
    logger.warning("%s: soft time limit reached mid-chunk; %d articles left to the sweeper (claim %s)",
                   step, left, token)


def _fail_one(article: Article, token: str, step: str, exc: Exception, *, rows: Claimed = ARTICLES) -> None:
    with log_context(article_id=article.pk):
        rows.fail(ids=[article.pk], token=token, reason=f"{step}: {exc}")


def step_process(*, article_ids: list[int], token: str, rows: Claimed = ARTICLES) -> list[int]:
    """Render and sanitize the body, fill the derived fields (kept as they are for an article
    the pre-flight prepared with exactly this content)."""
    return _guarded("process", article_ids, token, lambda articles: _process(articles, token, rows),
                    fields=("title", "body", "image", *rows.prepared_fields), rows=rows)


def _each_alone(step: str, what: str, articles: list[Article], token: str, work, *,
                applies=lambda article: True, rows: Claimed = ARTICLES) -> list[Article]:
    """Run `work(article)` on each article in turn, under the per-article time budget (only on
    those `applies` to; the others pass through). An article whose work raises fails alone, with
    the step named in its reason, and its chunk mates go on; a transient error propagates (the
    task retries); when the task's soft time limit fires, what is done is kept and the rest is
    handed to the sweeper. Returns the articles that came through."""
    done = []
    for index, article in enumerate(articles):
        if applies(article):
            try:
                faults.checkpoint(step, title=article.title)
                with time_budget(settings.PUBLISHER_ARTICLE_TIME_BUDGET, what=what):
                    work(article)
            except SoftTimeLimitExceeded:
                _release_rest(articles[index:], token, step, rows=rows)
                break
            except TRANSIENT_ERRORS:
                raise
            except Exception as exc:  # isolation: this article fails, its chunk mates go on
                _fail_one(article, token, step, exc, rows=rows)
                continue
        done.append(article)
    return done


def _process(articles: list[Article], token: str, rows: Claimed) -> list[int]:
    ready, prepared = [], []
    for article in articles:
        if not article.title.strip() or not article.body.strip():
            _fail_one(article, token, "process", ContentError("the article has no title or no body"), rows=rows)
        elif rows.prepared(article):
            prepared.append(article)
        else:
            ready.append(article)

    def render(article: Article) -> None:
        article.body_html, article.excerpt, article.word_count = render_body(article.body)
        # This output is not the pre-flight's: no fingerprint may vouch for it any more.
        article.preflight_fingerprint = ""

    rendered = _each_alone("process", "rendering", ready, token, render, rows=rows)
    derived = ["body_html", "excerpt", "word_count"] + (["preflight_fingerprint"] if rows.prepared_fields else [])
    written = _write(rendered, token, derived, rows=rows)
    if prepared:
        # Nothing to render: the write still says which are in flight and clears the guard's mark.
        written |= _write(prepared, token, [], rows=rows)
        logger.info("process: %d articles prepared by the pre-flight, not rendered again (claim %s)",
                    len(prepared), token)
    return sorted(a.pk for a in rendered + prepared if a.pk in written)


def step_thumbnails(*, article_ids: list[int], token: str, rows: Claimed = ARTICLES) -> list[int]:
    """A real thumbnail for each article that has an image; articles without one pass through."""
    return _guarded("thumbnail", article_ids, token, lambda articles: _thumbnails(articles, token, rows),
                    fields=("title", "image", "thumbnail", "body", *rows.prepared_fields), rows=rows)


def _thumbnails(articles: list[Article], token: str, rows: Claimed) -> list[int]:
    made: dict[int, bytes] = {}

    def thumbnail(article: Article) -> None:
        with article.image.open("rb") as source:
            check_image_pixels(source, settings.PUBLISHER_MAX_IMAGE_PIXELS)  # from the header, before decoding
            made[article.pk] = make_thumbnail(source, settings.PUBLISHER_THUMBNAIL_SIZE)

    done = _each_alone("thumbnail", "making the thumbnail", articles, token, thumbnail,
                       applies=lambda article: bool(article.image) and not rows.prepared(article), rows=rows)
    for article in done:
        if not article.image and is_preflight_thumbnail(article.thumbnail.name):
            article.thumbnail = ""  # made by a pre-flight for an image removed since
        if article.pk in made:
            name = f"thumbnails/{rows.model._meta.model_name}-{article.pk}.jpg"
            storage = article.thumbnail.storage
            storage.delete(name)  # idempotent re-runs overwrite instead of piling up copies
            article.thumbnail = storage.save(name, ContentFile(made[article.pk]))
    # Articles without an image are written too (their thumbnail as it was): the write is what
    # tells which are still in flight, and clears the guard's mark.
    written = _write(done, token, ["thumbnail"], rows=rows)
    return [a.pk for a in done if a.pk in written]


def step_make_live(*, article_ids: list[int], token: str) -> tuple[list[int], float]:
    """Flip due articles to `published` (published_at by the database clock); one whose
    unpublish time passed meanwhile becomes `expired` instead. Never early: a row not yet due by
    the database clock stays, and the second value says how long to wait before trying again
    (0 when nothing is left). The ids are all this claim published, including on a re-run, so
    the notify step after a redelivery still sees them."""
    faults.checkpoint("make_live")
    with transaction.atomic():
        mine = Article.objects.filter(pk__in=article_ids)
        mine.filter(unpublish_at__lte=Now()).transition(
            "expire_in_flight", token=token, lease_expires_at=None,
            last_error="Not published: its unpublish time passed before it could go live.",
        )
        went_live = mine.filter(publish_at__lte=Now()).transition(
            "make_live", token=token, published_at=Now(), lease_expires_at=None)
        rows = _in_flight(article_ids, token)
        webhooks.record(event="published", article_ids=article_ids)
        waiting = rows.order_by("publish_at").values_list("publish_at", flat=True).first()
    if went_live:
        logger.info("published %d articles (claim %s)", went_live, token)
    published = list(Article.objects.filter(pk__in=article_ids, claim_token=token, status=ArticleStatus.PUBLISHED)
                     .values_list("id", flat=True))
    # Normally made when scheduled; one published another way (an import) gets it now.
    articles_ensure_slugs(article_ids=published)
    wait = 0.0
    if waiting is not None:
        # This host's clock is ahead of the database's: try again shortly.
        wait = min(max((waiting - timezone.now()).total_seconds(), 0.1), 5.0)
    return published, wait


def step_notify(*, article_ids: list[int], token: str) -> int:
    """Start the fan-out for each article this claim published (idempotent downstream)."""
    if not article_ids or not Subscriber.objects.receiving().exists():
        return 0
    for article_id in article_ids:
        dispatch.fan_out(article_id=article_id)
    return len(article_ids)


def step_schedule_flips(*, article_ids: list[int], token: str, flips: list[tuple[list[int], str]]) -> int:
    """The chunk is prepared: send one make-live flip per due-time group (ids, ISO due time) of
    the articles still in flight (`article_ids`, from the step before), each waiting in the
    broker until its time. Returns how many flips were sent."""
    still = set(article_ids)
    groups = [(kept, datetime.fromisoformat(when)) for ids, when in flips if (kept := [pk for pk in ids if pk in still])]
    if groups:
        dispatch.send_flips(token=token, flips=groups)
    return len(groups)
