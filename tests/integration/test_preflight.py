"""The pre-flight with real processes: beat's scan hands the articles entering the window
(shortened to 105 s here) to the worker, which marks a broken image *at risk* well before its
time and mails whoever scheduled it once; a good article's prepared output is what goes live.
Scheduled (or fixed) closer than the window, an article is checked at once on save. Scheduled
changes to live articles are checked the same way (a 45 s window, to keep the test short)."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from publisher import revisions, services
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleRevision, ArticleStatus
from publisher.states import RevisionStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.images import broken_png, png
from tests.support.mail import read_mailbox
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MINUTES = "0.75"  # the worker's and beat's pre-flight window (shortened from 30)
WINDOW = timedelta(minutes=float(MINUTES))


def with_image(title: str, data: bytes, alt: str) -> Article:
    article = make_article(title=title, body=f"*{title}*, the story.", image_alt=alt)
    article.image.save(f"{title.lower().replace(' ', '-')}.png", ContentFile(data), save=True)
    return article


def actions(article) -> list[str]:
    return list(ArticleEvent.objects.filter(article=article).order_by("id").values_list("action", flat=True))


def at_risk_mails(mailbox, title: str) -> list[tuple[str, str]]:
    return [(to, subject) for to, subject in read_mailbox(mailbox) if subject.startswith(f"At risk: {title} (due ")]


def test_the_scan_marks_a_broken_image_at_risk_ahead_and_a_good_article_goes_live_as_prepared(
        processes, mailbox):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    call_command("sync_schedules")
    processes.worker(PUBLISHER_PREFLIGHT_MINUTES=MINUTES)
    processes.beat(PUBLISHER_PREFLIGHT_MINUTES=MINUTES)

    # This process's window is 0 (settings.test): scheduling here dispatches no check, the
    # worker's scan finds each article as it enters its window.
    now = timezone.now()
    good = with_image("Harbour", png(1200, 800), alt="Boats leaving the harbour")
    broken = with_image("Broken photo", broken_png(), alt="A photo")
    far = make_article(title="Next week")
    services.article_schedule(article_id=good.pk, publish_at=now + timedelta(seconds=25), actor=editor)
    services.article_schedule(article_id=broken.pk, publish_at=now + timedelta(seconds=55), actor=editor)
    services.article_schedule(article_id=far.pk, publish_at=now + timedelta(minutes=10), actor=editor)

    wait_for(lambda: ArticleEventAction.PREFLIGHT_PASSED in actions(good), timeout=30,
             message="the good article to pass its pre-flight")
    prepared = Article.objects.get(pk=good.pk)
    assert prepared.status == ArticleStatus.SCHEDULED and prepared.at_risk_reason == ""
    assert prepared.body_html == "<p><em>Harbour</em>, the story.</p>"
    assert prepared.thumbnail.name.startswith(f"thumbnails/article-{good.pk}-preflight")
    # A marker only the prepared output holds: rendering again at the due time would replace it.
    Article.objects.filter(pk=good.pk).update(body_html="<p>Prepared ahead</p>")

    wait_for(lambda: Article.objects.get(pk=broken.pk).at_risk_reason, timeout=60,
             message="the broken image to be marked at risk")
    risky = Article.objects.get(pk=broken.pk)
    assert risky.status == ArticleStatus.SCHEDULED
    assert risky.at_risk_reason.startswith("The image cannot be used: image could not be read: cannot identify image")
    found = ArticleEvent.objects.get(article=broken, action=ArticleEventAction.AT_RISK)
    assert found.actor is None and found.note == risky.at_risk_reason
    # Not before it entered the window (one scan interval and a second of slack), and well
    # before its time.
    assert found.created_at >= risky.publish_at - WINDOW - timedelta(seconds=2)
    assert risky.publish_at - found.created_at > timedelta(seconds=30)
    wait_for(lambda: at_risk_mails(mailbox, "Broken photo"), timeout=30, message="the scheduler's at-risk e-mail")
    assert [to for to, _ in at_risk_mails(mailbox, "Broken photo")] == ["edith@example.com"]

    wait_for(lambda: Article.objects.get(pk=good.pk).status == ArticleStatus.PUBLISHED, timeout=60,
             message="the good article to go live")
    live = Article.objects.get(pk=good.pk)
    assert live.published_at >= live.publish_at
    assert (live.body_html, live.thumbnail.name) == ("<p>Prepared ahead</p>", prepared.thumbnail.name)
    assert live.thumbnail.storage.exists(live.thumbnail.name)
    assert "process: 1 articles prepared by the pre-flight, not rendered again" in processes.log("worker")
    assert actions(good) == [ArticleEventAction.SCHEDULED, ArticleEventAction.PREFLIGHT_PASSED]

    # Scans went on meanwhile: the same content was neither checked nor mailed again.
    assert len(at_risk_mails(mailbox, "Broken photo")) == 1
    assert actions(broken) == [ArticleEventAction.SCHEDULED, ArticleEventAction.AT_RISK]
    # Fixed (a new image, saved as the admin saves an edit): the flag is gone at once, the next
    # scan checks the new content.
    risky.image.save("fixed.png", ContentFile(png(640, 480)), save=False)
    risky.save(update_fields=["image", "updated_at"])
    assert Article.objects.get(pk=broken.pk).at_risk_reason == ""
    wait_for(lambda: ArticleEventAction.PREFLIGHT_PASSED in actions(broken), timeout=30,
             message="the fixed article to pass")
    assert Article.objects.get(pk=broken.pk).at_risk_reason == ""
    assert len(at_risk_mails(mailbox, "Broken photo")) == 1
    # Outside the window: untouched.
    assert Article.objects.get(pk=far.pk).preflight_checked_at is None
    assert actions(far) == [ArticleEventAction.SCHEDULED]


def test_scheduled_closer_than_the_window_it_is_checked_at_once_on_save(processes, mailbox, settings):
    # The worker's scan checks nothing ahead (window 0 there): only the save's dispatch can.
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    call_command("sync_schedules")
    processes.worker()
    processes.beat()

    article = with_image("No alt", png(300, 200), alt="")
    services.article_schedule(article_id=article.pk, publish_at=timezone.now() + timedelta(minutes=5), actor=editor)
    wait_for(lambda: Article.objects.get(pk=article.pk).at_risk_reason, timeout=30,
             message="the article to be checked on save")
    assert Article.objects.get(pk=article.pk).at_risk_reason == (
        "The image has no alt text: say what it shows, for readers who cannot see it.")
    wait_for(lambda: at_risk_mails(mailbox, "No alt"), timeout=30, message="the at-risk e-mail")

    # Fixed through the form's path: saved, then its schedule (unchanged) handed to the service.
    with transaction.atomic():
        article = Article.objects.get(pk=article.pk)
        article.image_alt = "A red square"
        article.save(update_fields=["image_alt", "updated_at"])
        services.article_update_schedule(article_id=article.pk, publish_at=article.publish_at,
                                         unpublish_at=None, actor=editor)
    wait_for(lambda: ArticleEventAction.PREFLIGHT_PASSED in actions(article), timeout=30,
             message="the fixed article to be checked again at once")
    assert Article.objects.get(pk=article.pk).at_risk_reason == ""
    assert actions(article) == [ArticleEventAction.SCHEDULED, ArticleEventAction.AT_RISK,
                                ArticleEventAction.PREFLIGHT_PASSED]
    assert len(at_risk_mails(mailbox, "No alt")) == 1


CHANGE_WINDOW = timedelta(minutes=0.75)


def live(title: str) -> Article:
    now = timezone.now()
    return make_article(title=title, body="Old text.", slug=title.lower().replace(" ", "-"),
                        status=ArticleStatus.PUBLISHED, publish_at=now - timedelta(hours=1),
                        published_at=now - timedelta(hours=1), body_html="<p>Old text.</p>",
                        fanned_out_at=now - timedelta(hours=1))


def change_events(revision) -> list[tuple[str, str]]:
    return list(ArticleEvent.objects.filter(article_id=revision.article_id, action__in=[
        ArticleEventAction.AT_RISK, ArticleEventAction.PREFLIGHT_PASSED]).order_by("id").values_list("action", "note"))


def test_a_scheduled_change_is_checked_ahead_marked_at_risk_once_and_a_good_one_applies_as_prepared(
        processes, mailbox):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    call_command("sync_schedules")
    processes.worker(PUBLISHER_PREFLIGHT_MINUTES=MINUTES)
    processes.beat(PUBLISHER_PREFLIGHT_MINUTES=MINUTES)

    # This process's window is 0: no check on save, the worker's scan finds each change as it
    # enters its window (the good one at once, the broken one 10 s later).
    now = timezone.now()
    good = revisions.revision_create(
        article_id=live("Harbour").pk, title="Harbour", body="*Harbour*, corrected.", image_alt="Boats",
        image=SimpleUploadedFile("harbour.png", png(1200, 800)), publish_at=now + timedelta(seconds=25), actor=editor)
    broken = revisions.revision_create(
        article_id=live("Broken photo").pk, title="Broken photo", body="A photo, corrected.", image_alt="A photo",
        image=SimpleUploadedFile("broken.png", broken_png()), publish_at=now + timedelta(seconds=55), actor=editor)
    assert {good.status, broken.status} == {RevisionStatus.SCHEDULED}

    wait_for(lambda: change_events(good), timeout=30, message="the good change to pass its pre-flight")
    assert change_events(good) == [(ArticleEventAction.PREFLIGHT_PASSED, f"Change #{good.pk}")]
    prepared = ArticleRevision.objects.get(pk=good.pk)
    assert prepared.status == RevisionStatus.SCHEDULED and prepared.at_risk_reason == ""
    assert prepared.body_html == "<p><em>Harbour</em>, corrected.</p>"
    assert prepared.thumbnail.name.startswith(f"thumbnails/articlerevision-{good.pk}-preflight")
    # A marker only the prepared output holds: rendering again at the due time would replace it.
    ArticleRevision.objects.filter(pk=good.pk).update(body_html="<p>Prepared ahead</p>")

    wait_for(lambda: ArticleRevision.objects.get(pk=broken.pk).at_risk_reason, timeout=40,
             message="the broken change to be marked at risk")
    risky = ArticleRevision.objects.get(pk=broken.pk)
    assert risky.status == RevisionStatus.SCHEDULED
    assert risky.at_risk_reason.startswith("The image cannot be used: image could not be read: cannot identify image")
    found = ArticleEvent.objects.get(article_id=broken.article_id, action=ArticleEventAction.AT_RISK)
    assert found.actor is None and found.note == f"Change #{broken.pk}: {risky.at_risk_reason}"
    # Not before it entered the window (a scan interval and a second of slack), well before its time.
    assert found.created_at >= risky.publish_at - CHANGE_WINDOW - timedelta(seconds=2)
    assert risky.publish_at - found.created_at > timedelta(seconds=25)
    wait_for(lambda: at_risk_mails(mailbox, "change to Broken photo"), timeout=20, message="the author's e-mail")

    wait_for(lambda: ArticleRevision.objects.get(pk=good.pk).status == RevisionStatus.APPLIED, timeout=40,
             message="the good change to go live")
    applied = ArticleRevision.objects.get(pk=good.pk)
    article = Article.objects.get(pk=good.article_id)
    assert applied.applied_at >= applied.publish_at
    assert (article.title, article.body_html, article.thumbnail.name) == (
        "Harbour", "<p>Prepared ahead</p>", prepared.thumbnail.name)
    assert article.thumbnail.storage.exists(article.thumbnail.name)
    assert "process: 1 articles prepared by the pre-flight, not rendered again" in processes.log("worker")
    # Scans went on meanwhile: the broken change was neither checked nor mailed again.
    assert [to for to, _ in at_risk_mails(mailbox, "change to Broken photo")] == ["edith@example.com"]
    assert [action for action, _ in change_events(broken)] == [ArticleEventAction.AT_RISK]
