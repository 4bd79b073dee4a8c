"""Telling the people who scheduled an article that publishing it failed, or that the pre-flight
found it at risk: one e-mail per article (per content checked, for at risk) to the last editor
who scheduled, rescheduled, published or retried it (the audit trail says who) — for a scheduled
change, to whoever last scheduled the change, else its author — sent by a worker
after the finding committed, never inside a transaction. An article nobody scheduled (imported,
or its scheduler has no address) is logged instead."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .models import Article, ArticleEvent, ArticleEventAction, ArticleRevision, ArticleStatus, Release
from .states import ReleaseStatus, RevisionStatus
from .site.links import absolute_url
from .text import duration_text
from .zones import local_time_text

logger = logging.getLogger(__name__)

SCHEDULING_ACTIONS = (ArticleEventAction.SCHEDULED, ArticleEventAction.RESCHEDULED, ArticleEventAction.PUBLISHED_NOW,
                      ArticleEventAction.RETRIED)


def article_scheduler_email(*, article_id: int) -> str | None:
    """The address of whoever last put the article on its way, or None."""
    return (ArticleEvent.objects.filter(article_id=article_id, action__in=SCHEDULING_ACTIONS, actor__isnull=False)
            .exclude(actor__email="").order_by("-created_at", "-id")
            .values_list("actor__email", flat=True).first())


def failure_alerts_send(*, article_ids: list[int]) -> int:
    """Mail the scheduler of each of these articles that is still failed. Returns how many
    e-mails were sent. A redelivered task may send one twice (at least once)."""
    sent = 0
    # A release's member is reported by its release's own mail (publisher.releases), not here.
    for article in Article.objects.filter(pk__in=article_ids, status=ArticleStatus.FAILED,
                                          release__isnull=True).order_by("pk"):
        to = article_scheduler_email(article_id=article.pk)
        if to is None:
            logger.warning("article #%s failed and nobody who scheduled it has an e-mail address", article.pk)
            continue
        link = absolute_url(None, reverse("admin:publisher_article_change", args=[article.pk]))
        send_mail(
            subject=f"Publishing failed: {article}",
            message=(f"“{article}” could not be published.\n\nReason: {article.last_error}\n\n"
                     f"Open it to fix it, then retry or reschedule it: {link}\n\n"
                     f"— {settings.PUBLISHER_SITE_NAME}"),
            from_email=None, recipient_list=[to])
        sent += 1
    return sent


def preflight_alerts_send(*, article_ids: list[int]) -> int:
    """Mail the scheduler of each of these articles that is still scheduled and still at risk
    (fixed meanwhile: nothing to say), while there is time to fix it. Sent once per content
    checked (publisher.preflight dispatches it once); a redelivered task may send one twice."""
    sent = 0
    for article in (Article.objects.filter(pk__in=article_ids, status=ArticleStatus.SCHEDULED)
                    .exclude(at_risk_reason="").order_by("pk")):
        to = article_scheduler_email(article_id=article.pk)
        if to is None:
            logger.warning("article #%s is at risk and nobody who scheduled it has an e-mail address", article.pk)
            continue
        link = absolute_url(None, reverse("admin:publisher_article_change", args=[article.pk]))
        left = article.publish_at - timezone.now()
        when = local_time_text(article.publish_at, with_seconds=False)
        send_mail(
            subject=f"At risk: {article} (due {when})",
            message=(f"“{article}” is due to go live {when}"
                     + (f", in {duration_text(left)}" if left.total_seconds() > 0 else "")
                     + f", and would fail.\n\nWhat the pre-flight check found: {article.at_risk_reason}\n\n"
                       f"Fix it before then (saving the change checks it again at once), or reschedule it: {link}"
                       f"\n\n— {settings.PUBLISHER_SITE_NAME}"),
            from_email=None, recipient_list=[to])
        sent += 1
    return sent


# The change's own scheduling events (publisher.states, REVISION_TRANSITIONS), on its article's Activity.
CHANGE_SCHEDULING_ACTIONS = (ArticleEventAction.CHANGE_SCHEDULED, ArticleEventAction.CHANGE_RESCHEDULED)


def revision_scheduler_email(*, revision: ArticleRevision) -> str | None:
    """The address of whoever last scheduled this change (its Activity lines are "Change #N…"),
    else of its author, or None."""
    scheduled_by = (ArticleEvent.objects.filter(article_id=revision.article_id, action__in=CHANGE_SCHEDULING_ACTIONS,
                                                actor__isnull=False)
                    .filter(Q(note=f"Change #{revision.pk}") | Q(note__startswith=f"Change #{revision.pk}:"))
                    .exclude(actor__email="").order_by("-created_at", "-id")
                    .values_list("actor__email", flat=True).first())
    return scheduled_by or (revision.author.email if revision.author else "") or None


def revision_preflight_alerts_send(*, revision_ids: list[int]) -> int:
    """Mail whoever scheduled each of these changes that is still scheduled (on its own, not in a
    release: the release's mail says it) and still at risk, while there is time to fix it. Sent
    once per content checked (publisher.revision_preflight dispatches it once)."""
    sent = 0
    for revision in (ArticleRevision.objects.filter(pk__in=revision_ids, status=RevisionStatus.SCHEDULED,
                                                    release__isnull=True)
                     .exclude(at_risk_reason="").select_related("article", "author").order_by("pk")):
        to = revision_scheduler_email(revision=revision)
        if to is None:
            logger.warning("change #%s is at risk and nobody who scheduled it has an e-mail address", revision.pk)
            continue
        link = absolute_url(None, reverse("admin:publisher_article_revision", args=[revision.article_id, revision.pk]))
        left = revision.publish_at - timezone.now()
        when = local_time_text(revision.publish_at, with_seconds=False)
        send_mail(
            subject=f"At risk: change to {revision.article} (due {when})",
            message=(f"Your change #{revision.pk} to “{revision.article}” is due to go live {when}"
                     + (f", in {duration_text(left)}" if left.total_seconds() > 0 else "")
                     + f", and would fail; the live article would stay as it is.\n\n"
                       f"What the pre-flight check found: {revision.at_risk_reason}\n\n"
                       f"Fix it before then (make the change again with the fix: it replaces this one and is "
                       f"checked at once), or cancel it: {link}\n\n— {settings.PUBLISHER_SITE_NAME}"),
            from_email=None, recipient_list=[to])
        sent += 1
    return sent


def release_preflight_alert_send(*, release_id: int) -> int:
    """Mail whoever scheduled this release that it is at risk: which member, and why (the
    pre-flight's findings), while there is time to fix it. Nothing when it is no longer scheduled
    or no longer at risk (fixed meanwhile). Sent once per release state checked
    (publisher.release_preflight dispatches it once); a redelivered task may send it twice."""
    release = (Release.objects.filter(pk=release_id, status=ReleaseStatus.SCHEDULED).exclude(at_risk_reason="")
               .select_related("scheduled_by").first())
    if release is None:
        return 0
    to = release.scheduled_by.email if release.scheduled_by else ""
    if not to:
        logger.warning("release #%s is at risk and nobody who scheduled it has an e-mail address", release_id)
        return 0
    link = absolute_url(None, reverse("admin:publisher_release_change", args=[release.pk]))
    left = release.publish_at - timezone.now()
    when = local_time_text(release.publish_at, with_seconds=False)
    send_mail(
        subject=f"At risk: release {release} (due {when})",
        message=(f"The release “{release}” is due to go live {when}"
                 + (f", in {duration_text(left)}" if left.total_seconds() > 0 else "")
                 + ", and would fail: none of its articles would go live.\n\n"
                   f"What the pre-flight check found: {release.at_risk_reason}\n\n"
                   f"Fix the article (saving it checks the release again at once), remove it from the release, "
                   f"or reschedule the release: {link}\n\n— {settings.PUBLISHER_SITE_NAME}"),
        from_email=None, recipient_list=[to])
    return 1
