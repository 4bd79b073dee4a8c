"""Pre-flight: PUBLISHER_PREFLIGHT_MINUTES before an article is due, prepare it exactly as going
live will (render the body, make the thumbnail, render the subscribers' e-mail) without making
anything live, and check what would stop it (required fields, image alt text, a slug another
article answers under). What fails is marked *at risk* (Article.at_risk_reason), written to the
article's Activity and e-mailed once to whoever scheduled it, while there is still time to fix
it; what passes keeps its prepared output on the row, and the pipeline reuses it when the content
is still the one checked (Article.prepared_by_preflight), so going live is only the flip.

A result belongs to a content fingerprint (title, body, image, alt text, slug): an edit asks for a
new check (Article.save), an unchanged content is never checked or mailed twice, and a result is
written only if the content is still the one checked and the article still scheduled (a
compare-and-set on the row), so a check racing an edit or the scan's claim writes nothing.

`preflight_check` holds every check and knows nothing of articles: a scheduled change
(publisher.revision_preflight) and a release member are checked by the same function from their
own content.
"""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now
from django.utils import timezone

from . import dispatch, schedule_rules
from .budgets import time_budget
from .emails import prepare_article_mail
from .log import log_context
from .models import (PREFLIGHT_THUMBNAIL, Article, ArticleEvent, ArticleEventAction, ArticleSlugRedirect,
                     ArticleStatus, content_fingerprint, is_preflight_thumbnail)
from .rendering import check_image_pixels, make_thumbnail, render_body
from .site.services import article_ensure_slug
from .transient import TRANSIENT_ERRORS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Content:
    """What goes live: an article's content (or, later, a scheduled change's or a release
    member's). `image` is a file field's value (opened to read it) or None; `article_id` is the
    article whose address `slug` is (another article answering under it is a conflict)."""

    title: str
    body: str
    image: object | None
    image_alt: str
    slug: str
    article_id: int | None = None
    # A change to a live article: its subscribers' e-mail is the update mail.
    update: bool = False

    @property
    def fingerprint(self) -> str:
        return content_fingerprint(title=self.title, body=self.body, image=getattr(self.image, "name", "") or "",
                                   image_alt=self.image_alt, slug=self.slug)


@dataclass
class Preflight:
    """One check's outcome: what would fail (each a sentence for the editor), and what going
    live would have produced (kept when nothing fails)."""

    fingerprint: str
    problems: list[str] = field(default_factory=list)
    body_html: str = ""
    excerpt: str = ""
    word_count: int = 0
    thumbnail: bytes | None = None

    @property
    def passed(self) -> bool:
        return not self.problems

    @property
    def reason(self) -> str:
        return " ".join(self.problems)


def _slug_taken(slug: str, *, article_id: int | None) -> bool:
    return (Article.objects.filter(slug=slug).exclude(pk=article_id).exists()
            or ArticleSlugRedirect.objects.filter(old_slug=slug).exclude(article_id=article_id).exists())


def preflight_check(content: Content) -> Preflight:
    """Do to `content` everything going live would, without making anything live, and say what
    would fail: an empty title or body, a body that cannot be rendered, an image that cannot be
    read or thumbnailed (or is too large), an image without alt text, a slug another article
    answers under, a subscribers' e-mail that cannot be rendered. Each heavy step runs under the
    per-article time budget. A transient error (database, broker) propagates: retrying fixes it."""
    result = Preflight(fingerprint=content.fingerprint)
    problems = result.problems
    problems += [error.message for error in
                 schedule_rules.content_errors(title=content.title, body=content.body, scheduling=True)]
    rendered = False
    if content.body.strip():
        try:
            with time_budget(settings.PUBLISHER_ARTICLE_TIME_BUDGET, what="rendering the body"):
                result.body_html, result.excerpt, result.word_count = render_body(content.body)
            rendered = True
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:  # the content's own problem: reported, the other checks go on
            problems.append(f"The body could not be rendered: {exc}.")
    if content.image:
        if not content.image_alt.strip():
            problems.append("The image has no alt text: say what it shows, for readers who cannot see it.")
        try:
            with time_budget(settings.PUBLISHER_ARTICLE_TIME_BUDGET, what="making the thumbnail"), \
                    content.image.open("rb") as source:
                check_image_pixels(source, settings.PUBLISHER_MAX_IMAGE_PIXELS)  # from the header, before decoding
                result.thumbnail = make_thumbnail(source, settings.PUBLISHER_THUMBNAIL_SIZE)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            problems.append(f"The image cannot be used: {exc}.")
    if content.slug and _slug_taken(content.slug, article_id=content.article_id):
        problems.append(f"The address “{content.slug}” is already used by another article: change the slug.")
    if rendered:
        try:
            prepare_article_mail(Article(pk=content.article_id, title=content.title, body=content.body,
                                         body_html=result.body_html, excerpt=result.excerpt,
                                         slug=content.slug or None, image_alt=content.image_alt),
                                 update=content.update)
        except TRANSIENT_ERRORS:
            raise
        except Exception as exc:
            problems.append(f"The subscribers' e-mail could not be rendered: {type(exc).__name__}: {exc}.")
    return result


def article_content(article: Article) -> Content:
    return Content(title=article.title, body=article.body, image=article.image or None,
                   image_alt=article.image_alt, slug=article.slug or "", article_id=article.pk)


# --- Which articles, and when -------------------------------------------------------------------

def _window() -> timedelta | None:
    minutes = settings.PUBLISHER_PREFLIGHT_MINUTES
    return timedelta(minutes=minutes) if minutes > 0 else None


def _by_db_clock(delta: timedelta):
    return ExpressionWrapper(Now() + delta, output_field=DateTimeField())


def due_ahead_of_the_claim(window: timedelta) -> dict:
    """The due times a pre-flight takes: within the window, and later than the claim's look-ahead.
    What is due sooner (or overdue: a burst, a backlog after downtime) the scan claims now or
    at its next run, and a check would race the claim: its result, written only while the row
    is still scheduled, would be thrown away after rendering everything once more (5,000 of a
    10,000-article burst were queued for pre-flight before this bound)."""
    return {"publish_at__lte": _by_db_clock(window),
            "publish_at__gt": _by_db_clock(timedelta(seconds=settings.PUBLISHER_LOOKAHEAD))}


def _unchecked(window: timedelta):
    """Scheduled, due within the window (not within the claim's look-ahead), not checked for its
    current content, and not handed to a pre-flight task whose lease still runs: read through
    article_preflight_due_idx."""
    return (Article.objects.filter(status=ArticleStatus.SCHEDULED, preflight_checked_at__isnull=True,
                                   **due_ahead_of_the_claim(window))
            .filter(Q(preflight_queued_until__isnull=True) | Q(preflight_queued_until__lte=Now())))


def _queue(queryset, *, limit: int, send=None) -> list[int]:
    """Take up to `limit` rows (articles, or scheduled changes) for a pre-flight task (their
    lease: PUBLISHER_LEASE_SECONDS, after which the scan hands them out again) and dispatch them
    with `send(ids)` (default: the articles' pre-flight) once this commits."""
    send = send or (lambda ids: dispatch.preflight(article_ids=ids))
    with transaction.atomic():
        rows = queryset.order_by("publish_at", "pk")
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True)
        ids = list(rows.values_list("id", flat=True)[:limit])
        if ids:
            queryset.model.objects.filter(pk__in=ids).update(
                preflight_queued_until=_by_db_clock(timedelta(seconds=settings.PUBLISHER_LEASE_SECONDS)))
            transaction.on_commit(lambda: send(ids))
    return ids


def articles_preflight_dispatch(*, limit: int | None = None) -> int:
    """The scan's part: hand the scheduled articles due within PUBLISHER_PREFLIGHT_MINUTES that
    were not checked for their current content to pre-flight tasks (in chunks, after commit).
    O(unchecked due rows), whatever the table's size. Returns how many. 0 minutes: off."""
    window = _window()
    if window is None:
        return 0
    return len(_queue(_unchecked(window), limit=limit or settings.PUBLISHER_SCAN_BATCH))


def within_window(publish_at) -> bool:
    """Whether an article due at `publish_at` is already inside the pre-flight window (off: never)."""
    window = _window()
    return window is not None and publish_at <= timezone.now() + window


def article_preflight_soon(*, article_id: int) -> bool:
    """Scheduled (or edited) closer to its time than the window: check it now rather than at the
    next scan. Call after the change committed. Returns whether a check was dispatched."""
    window = _window()
    if window is None:
        return False
    member_of = (Article.objects.filter(pk=article_id, status=ArticleStatus.IN_RELEASE)
                 .values_list("release_id", flat=True).first())
    if member_of is not None:
        # A member is checked with its release (the release-level checks too), not alone.
        # Imported here: publisher.release_preflight builds on this module.
        from .release_preflight import release_preflight_soon
        return release_preflight_soon(release_id=member_of)
    return bool(_queue(_unchecked(window).filter(pk=article_id), limit=1))


# --- The check of one article -------------------------------------------------------------------

PASSED, AT_RISK, UNCHANGED, SKIPPED = "passed", "at_risk", "unchanged", "skipped"


def articles_preflight(*, article_ids: list[int]) -> dict[str, int]:
    """Check each of these articles that is still scheduled, each alone: one article's content
    never stops its chunk mates; a transient error propagates (the task retries; what was
    written stays). When the task's soft time limit fires, the articles not reached are handed
    back to the next scan. Returns how many passed, are at risk, were unchanged or skipped."""
    return check_each(Article, article_ids, lambda pk: article_preflight(article_id=pk), noun="article",
                      log_key="article_id")


def check_each(model, ids: list[int], check, *, noun: str, log_key: str) -> dict[str, int]:
    """The batch loop of every pre-flight task (articles, changes): `check(pk)` for each row
    alone, counted by outcome; the soft time limit hands the rest back to the next scan."""
    counts = dict.fromkeys((PASSED, AT_RISK, UNCHANGED, SKIPPED), 0)
    ordered = sorted(set(ids))
    for index, pk in enumerate(ordered):
        try:
            with log_context(**{log_key: pk}):
                counts[check(pk)] += 1
        except SoftTimeLimitExceeded:
            model.objects.filter(pk__in=ordered[index:]).update(preflight_queued_until=None)
            logger.warning("pre-flight: soft time limit reached; %d %ss left to the next scan",
                           len(ordered) - index, noun)
            break
        except TRANSIENT_ERRORS:
            raise
        except Exception:  # a bug, not the content (that is a finding): the others go on
            logger.exception("pre-flight of %s #%s failed; the scan hands it out again after its lease", noun, pk)
            counts[SKIPPED] += 1
    if counts[AT_RISK] or counts[PASSED]:
        logger.info("pre-flight of %ss: %s", noun, counts)
    return counts


def article_preflight(*, article_id: int, release_id: int | None = None) -> str:
    """Check one scheduled article and record the outcome for its current content (see the
    module's docstring). Returns PASSED, AT_RISK, UNCHANGED (this content was checked before:
    nothing is done again, nobody is mailed again) or SKIPPED (no longer scheduled, or edited
    while being checked: the edit asked for its own check). With `release_id`: the article is
    checked as a member of that scheduled release (`in_release`), and is not mailed about on its
    own: the release's pre-flight (publisher.release_preflight) mails its scheduler."""
    scope = ({"status": ArticleStatus.SCHEDULED} if release_id is None
             else {"status": ArticleStatus.IN_RELEASE, "release_id": release_id})
    if not Article.objects.filter(pk=article_id, **scope).exists():
        return SKIPPED
    article_ensure_slug(article_id=article_id)  # the address it will have, checked with the rest
    article = Article.objects.filter(pk=article_id, **scope).first()
    if article is None:
        return SKIPPED
    content = article_content(article)
    fingerprint = content.fingerprint
    still = Article.objects.filter(pk=article_id, **scope, title=content.title,
                                   body=content.body, image=article.image.name or "", image_alt=content.image_alt,
                                   slug=article.slug)
    if article.preflight_fingerprint == fingerprint:
        still.filter(preflight_fingerprint=fingerprint).update(preflight_checked_at=Now(), preflight_queued_until=None)
        return UNCHANGED
    result = preflight_check(content)
    values, made = outcome_values(result, fingerprint=fingerprint,
                                  thumbnail_name=PREFLIGHT_THUMBNAIL.format(pk=article_id))
    with transaction.atomic():
        # Only for the content checked, still scheduled, and not recorded by another check.
        written = still.exclude(preflight_fingerprint=fingerprint).update(**values)
        if written:
            ArticleEvent.objects.create(
                article_id=article_id, actor=None, publish_at=article.publish_at, unpublish_at=article.unpublish_at,
                action=ArticleEventAction.PREFLIGHT_PASSED if result.passed else ArticleEventAction.AT_RISK,
                note=values["at_risk_reason"])
            if not result.passed and release_id is None:
                transaction.on_commit(lambda: dispatch.preflight_alerts(article_ids=[article_id]))
    # The previous check's, for content that changed since (never a change's, which a change
    # applied earlier put on the article: its history still names it).
    return settle(result, written=written, made=made, old=article.thumbnail.name, own_prefix="thumbnails/article-",
                  what=f"article #{article_id}")


def outcome_values(result: Preflight, *, fingerprint: str, thumbnail_name: str) -> tuple[dict, str | None]:
    """What a check writes to its row (an article's or a change's: the same pre-flight fields),
    with its prepared output when it passed; and the thumbnail it saved for that, under a name of
    its own (storage adds a suffix when taken: a check racing another never overwrites or deletes
    the file the other wrote to the row), for `settle` to delete if the row was not written."""
    values = {"preflight_fingerprint": fingerprint, "preflight_checked_at": Now(), "preflight_queued_until": None,
              "at_risk_reason": result.reason[:5000]}
    made = None
    if result.passed:
        if result.thumbnail is not None:
            made = default_storage.save(thumbnail_name, ContentFile(result.thumbnail))
        values.update(body_html=result.body_html, excerpt=result.excerpt, word_count=result.word_count,
                      thumbnail=made or "")
    return values, made


def settle(result: Preflight, *, written: bool, made: str | None, old: str, own_prefix: str, what: str) -> str:
    """After the compare-and-set: the files of the check that lost (not written), or the previous
    check's thumbnail of this row (`old`, a pre-flight file under `own_prefix`) once replaced; and
    the outcome (PASSED, AT_RISK or SKIPPED)."""
    if not written:
        if made:
            default_storage.delete(made)
        return SKIPPED
    if result.passed and is_preflight_thumbnail(old) and old.startswith(own_prefix) and old != made:
        default_storage.delete(old)
    if result.passed:
        return PASSED
    logger.warning("pre-flight: %s is at risk: %s", what, result.reason)
    return AT_RISK
