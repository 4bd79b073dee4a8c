"""The pre-flight of releases (publisher/release_preflight.py), called directly (no worker): a
member at risk makes its release at risk (its history, the member's Activity, one mail to whoever
scheduled the release), fixing the member clears it, the release-level checks, the scan's and the
schedule's dispatch, and the prepared output kept for the release's own preparation."""

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from publisher import alerts, dispatch, preflight, release_preflight, releases, services
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleSlugRedirect, ArticleStatus, Release, \
    ReleaseEvent
from publisher.pipeline import step_process, step_thumbnails
from publisher.release_preflight import AT_RISK, PASSED, SKIPPED, UNCHANGED
from publisher.states import ReleaseStatus
from scheduling.dashboard import pipeline_status
from tests import factories
from tests.factories import make_article, make_user
from tests.support.images import broken_png, png

pytestmark = pytest.mark.django_db

NO_TITLE = "An article needs a title before it can be scheduled. To keep it as a draft, clear the publish time."


@pytest.fixture(autouse=True)
def preflight_on(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    settings.PUBLISHER_THUMBNAIL_SIZE = (400, 400)


@pytest.fixture
def sent(monkeypatch):
    """What would have gone to the broker, in order."""
    calls = []
    monkeypatch.setattr(dispatch, "release_preflight", lambda *, release_id: calls.append(("check", release_id)))
    monkeypatch.setattr(dispatch, "release_preflight_alert",
                        lambda *, release_id: calls.append(("release_alert", release_id)))
    monkeypatch.setattr(dispatch, "preflight", lambda *, article_ids: calls.append(("article_check", article_ids)))
    monkeypatch.setattr(dispatch, "preflight_alerts", lambda *, article_ids: calls.append(("article_alert", article_ids)))
    monkeypatch.setattr(dispatch, "publish_release", lambda **kw: calls.append(("prepare", kw["article_ids"])))
    return calls


@pytest.fixture
def editor(db):
    factories.newsroom_groups()
    return make_user("edith", "Editors", email="edith@example.com")


def with_image(article: Article, data: bytes, alt: str = "Boats") -> Article:
    article.image.save("photo.png", ContentFile(data), save=False)
    Article.objects.filter(pk=article.pk).update(image=article.image.name, image_alt=alt)
    return Article.objects.get(pk=article.pk)


def a_release(editor, *, broken: bool = True, n: int = 3) -> tuple[Release, list[Article]]:
    """A draft release of `n` stories, the second with an image (broken unless told)."""
    release = releases.release_create(name="Embargo package", actor=editor)
    articles = [make_article(title=f"Story {i}") for i in range(n)]
    if n > 1:
        articles[1] = with_image(articles[1], broken_png() if broken else png(600, 400))
    releases.release_add_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    return release, articles


def schedule(release, editor, minutes: float = 10) -> Release:
    return releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(minutes=minutes),
                                     actor=editor)


def history(release) -> list[tuple[str, str]]:
    return list(ReleaseEvent.objects.filter(release=release, action__in=["at_risk", "preflight_passed"])
                .order_by("id").values_list("action", "note"))


def activity(article) -> list[str]:
    return list(ArticleEvent.objects.filter(article=article, action__in=[
        ArticleEventAction.AT_RISK, ArticleEventAction.PREFLIGHT_PASSED]).order_by("id").values_list("action", flat=True))


def test_a_member_at_risk_makes_the_release_at_risk_recorded_and_mailed_once(editor, sent,
                                                                           django_capture_on_commit_callbacks):
    release, (first, broken, third) = a_release(editor)
    with django_capture_on_commit_callbacks(execute=True):
        schedule(release, editor)
    assert sent == [("check", release.pk)]  # closer than the window: checked at once
    assert Release.objects.get(pk=release.pk).preflight_queued_until is not None

    with django_capture_on_commit_callbacks(execute=True):
        assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    row = Release.objects.get(pk=release.pk)
    member = Article.objects.get(pk=broken.pk)
    assert member.at_risk_reason.startswith("The image cannot be used: image could not be read")
    assert row.at_risk_reason == f"“Story 1” (#{broken.pk}): {member.at_risk_reason}"
    assert (row.status, row.preflight_queued_until) == (ReleaseStatus.SCHEDULED, None)
    assert row.preflight_checked_at is not None and len(row.preflight_fingerprint) == 64
    assert history(release) == [("at_risk", row.at_risk_reason)]
    assert activity(broken) == [ArticleEventAction.AT_RISK]
    assert activity(first) == activity(third) == [ArticleEventAction.PREFLIGHT_PASSED]
    # One mail, the release's (a member is not mailed about on its own); members stay in the release.
    assert sent == [("check", release.pk), ("release_alert", release.pk)]
    assert sorted(Article.objects.filter(release=release).values_list("status", flat=True)) == [
        ArticleStatus.IN_RELEASE] * 3

    # The same state again (a redelivered task, the scan after a lease ran out): nothing recorded or mailed.
    Release.objects.filter(pk=release.pk).update(preflight_checked_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert release_preflight.release_preflight(release_id=release.pk) == UNCHANGED
    assert len(history(release)) == 1 and len(sent) == 2 and activity(broken) == [ArticleEventAction.AT_RISK]

    # Shown where an editor looks: the status panel warns, naming the member.
    assert [w for w in pipeline_status().warnings if "Embargo" in w] == [
        "Release “Embargo package” is at risk: the pre-flight check found what would fail when it goes live. "
        + row.at_risk_reason]


def test_fixing_the_member_clears_the_release_at_once(editor, sent, django_capture_on_commit_callbacks):
    release, (_, broken, _) = a_release(editor)
    with django_capture_on_commit_callbacks(execute=True):
        schedule(release, editor)
        release_preflight.release_preflight(release_id=release.pk)
    del sent[:]
    # The editor saves a new image through the article form: the release is checked again at once.
    article = Article.objects.get(pk=broken.pk)
    article.image.save("fixed.png", ContentFile(png(900, 600)), save=False)
    with django_capture_on_commit_callbacks(execute=True):
        article.save(update_fields=["image", "updated_at"])
        services.article_update_schedule(article_id=article.pk, publish_at=article.publish_at,
                                         unpublish_at=article.unpublish_at, actor=editor)
    assert sent == [("check", release.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        assert release_preflight.release_preflight(release_id=release.pk) == PASSED
    row = Release.objects.get(pk=release.pk)
    assert row.at_risk_reason == ""
    assert [action for action, _ in history(release)] == ["at_risk", "preflight_passed"]
    assert history(release)[-1][1] == "Every article (3) is ready to go live."
    assert activity(broken) == [ArticleEventAction.AT_RISK, ArticleEventAction.PREFLIGHT_PASSED]
    assert sent == [("check", release.pk)]  # nothing mailed for a pass
    assert [w for w in pipeline_status().warnings if "Embargo" in w] == []


def test_the_scheduler_of_the_release_is_mailed_the_member_and_the_reason(editor, sent, smtp_server, settings):
    for name, value in smtp_server.env().items():
        setattr(settings, name, {"off": False}.get(value, int(value) if value.isdigit() else value))
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    settings.TIME_ZONE = "UTC"
    release, (_, broken, _) = a_release(editor)
    schedule(release, editor, minutes=20)
    release_preflight.release_preflight(release_id=release.pk)
    assert alerts.release_preflight_alert_send(release_id=release.pk) == 1
    [accepted] = smtp_server.accepted()
    assert accepted.rcpt_tos == ["edith@example.com"]
    assert accepted.message["Subject"].startswith("At risk: release Embargo package (due ")
    body = accepted.message.get_content().replace("\r\n", "\n")
    assert ("and would fail: none of its articles would go live.\n\nWhat the pre-flight check found: "
            f"“Story 1” (#{broken.pk}): The image cannot be used: image could not be read") in body
    assert ", in 19 min" in body or ", in 20 min" in body
    assert f"https://news.example.com/admin/publisher/release/{release.pk}/change/" in body
    # Fixed (or unscheduled) before the mail goes out: nothing to say.
    Release.objects.filter(pk=release.pk).update(at_risk_reason="")
    assert alerts.release_preflight_alert_send(release_id=release.pk) == 0
    assert len(smtp_server.accepted()) == 1


def test_a_release_without_members_is_at_risk(editor, sent, django_capture_on_commit_callbacks):
    release, articles = a_release(editor, broken=False)
    schedule(release, editor)
    with django_capture_on_commit_callbacks(execute=True):
        releases.release_remove_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    assert sent[-1] == ("check", release.pk)  # a change inside the window: checked again at once
    assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    assert Release.objects.get(pk=release.pk).at_risk_reason == (
        "The release has no articles: add some, or unschedule it.")


def test_a_member_without_a_title_is_named(editor, sent):
    release, (first, _, _) = a_release(editor, broken=False)
    schedule(release, editor)
    article = Article.objects.get(pk=first.pk)
    article.title = ""
    article.save(update_fields=["title", "updated_at"])
    assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    assert Release.objects.get(pk=release.pk).at_risk_reason == f"Article #{first.pk}: {NO_TITLE}"


def test_two_members_answering_under_one_address_are_named(editor, sent):
    release, (first, second, _) = a_release(editor, broken=False)
    schedule(release, editor)
    first_slug = Article.objects.get(pk=first.pk).slug
    # The second member's old address (a redirect) is the first member's address.
    ArticleSlugRedirect.objects.create(old_slug=first_slug, article_id=second.pk)
    assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    reason = Release.objects.get(pk=release.pk).at_risk_reason
    taken = f"The address “{first_slug}” is already used by another article: change the slug."
    assert reason == (f"“Story 0” (#{first.pk}): {taken} “Story 0” (#{first.pk}) and “Story 1” (#{second.pk}) "
                      f"share the address “{first_slug}”: change one of the slugs.")


def test_the_scan_hands_out_releases_due_within_the_window_once(editor, sent, django_capture_on_commit_callbacks):
    soon, _ = a_release(editor, broken=False)
    schedule(soon, editor, minutes=10)
    later = releases.release_create(name="Later", actor=editor)
    releases.release_add_members(release_id=later.pk, article_ids=[make_article(title="Later").pk], actor=editor)
    schedule(later, editor, minutes=90)
    Release.objects.update(preflight_queued_until=None)
    del sent[:]
    with django_capture_on_commit_callbacks(execute=True):
        assert release_preflight.releases_preflight_dispatch() == 1
        assert release_preflight.releases_preflight_dispatch() == 0  # leased: not handed out twice
    assert sent == [("check", soon.pk)]
    assert release_preflight.release_preflight(release_id=soon.pk) == PASSED
    assert release_preflight.releases_preflight_dispatch() == 0  # checked
    # A member's content changes: the scan hands the release out again.
    member = Article.objects.filter(release=soon).first()
    member.body = "A corrected body."
    member.save(update_fields=["body", "updated_at"])
    with django_capture_on_commit_callbacks(execute=True):
        assert release_preflight.releases_preflight_dispatch() == 1
    assert sent[-1] == ("check", soon.pk)


def test_a_release_scheduled_beyond_the_window_waits_for_the_scan(editor, sent, django_capture_on_commit_callbacks,
                                                                 settings):
    release, _ = a_release(editor, broken=False)
    with django_capture_on_commit_callbacks(execute=True):
        schedule(release, editor, minutes=45)
    assert sent == []
    settings.PUBLISHER_PREFLIGHT_MINUTES = 0  # off: nothing is checked, at once or by the scan
    with django_capture_on_commit_callbacks(execute=True):
        schedule(release, editor, minutes=10)
        assert release_preflight.releases_preflight_dispatch() == 0
    assert sent == []


def test_an_unscheduled_release_is_not_checked(editor, sent):
    release, _ = a_release(editor, broken=False)
    assert release_preflight.release_preflight(release_id=release.pk) == SKIPPED
    assert history(release) == []


def test_the_release_preparation_reuses_the_members_prepared_output(editor, sent, settings):
    release, (_, pictured, _) = a_release(editor, broken=False)
    schedule(release, editor, minutes=20)
    assert release_preflight.release_preflight(release_id=release.pk) == PASSED
    settings.PUBLISHER_RELEASE_LOOKAHEAD = 60 * 60  # its look-ahead comes
    prepared = Article.objects.get(pk=pictured.pk)
    assert prepared.prepared_by_preflight() and prepared.thumbnail.name.startswith(
        f"thumbnails/article-{pictured.pk}-preflight")
    [claimed] = releases.releases_claim_due(release_ids=[release.pk])
    token = str(Release.objects.get(pk=claimed).claim_token)
    # A marker only the pre-flight's output holds: re-rendering would replace it.
    Article.objects.filter(pk=pictured.pk).update(body_html="<p>prepared ahead</p>")
    ids = list(Article.objects.filter(release=release).order_by("pk").values_list("id", flat=True))
    assert step_process(article_ids=ids, token=token) == ids
    assert step_thumbnails(article_ids=ids, token=token) == ids
    after = Article.objects.get(pk=pictured.pk)
    assert (after.status, after.thumbnail.name, after.body_html) == (
        ArticleStatus.PUBLISHING, prepared.thumbnail.name, "<p>prepared ahead</p>")


def test_removing_the_member_at_risk_drops_the_finding_and_the_check_passes(editor, sent,
                                                                          django_capture_on_commit_callbacks):
    release, (_, broken, _) = a_release(editor)
    schedule(release, editor)
    assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    with django_capture_on_commit_callbacks(execute=True):
        releases.release_remove_members(release_id=release.pk, article_ids=[broken.pk], actor=editor)
    row = Release.objects.get(pk=release.pk)
    assert (row.at_risk_reason, row.preflight_checked_at) == ("", None)
    assert sent[-1] == ("check", release.pk)
    assert release_preflight.release_preflight(release_id=release.pk) == PASSED
    assert history(release)[-1] == ("preflight_passed", "Every article (2) is ready to go live.")


def test_a_soft_time_limit_leaves_the_rest_to_the_next_scan(editor, sent, monkeypatch):
    release, (first, second, _) = a_release(editor, broken=False)
    schedule(release, editor)
    real = preflight.article_preflight

    def slow(*, article_id, release_id):
        if article_id == second.pk:
            raise SoftTimeLimitExceeded()
        return real(article_id=article_id, release_id=release_id)

    monkeypatch.setattr(preflight, "article_preflight", slow)
    assert release_preflight.release_preflight(release_id=release.pk) == SKIPPED
    row = Release.objects.get(pk=release.pk)
    assert (row.preflight_queued_until, row.preflight_checked_at, history(release)) == (None, None, [])
    assert Article.objects.get(pk=first.pk).preflight_checked_at is not None  # kept: unchanged next time
    assert release_preflight.releases_preflight_dispatch() == 1  # handed out again at once


# --- Release-level findings block the release at its time ------------------------------------------------------

def flip_now(release) -> "releases.Flip":
    """Claim the release, its members prepared by the pipeline's steps, and flip it at its time."""
    past = timezone.now() - timedelta(seconds=1)
    Release.objects.filter(pk=release.pk).update(publish_at=past)
    Article.objects.filter(release=release).update(publish_at=past)
    [claimed] = releases.releases_claim_due(release_ids=[release.pk])
    token = str(Release.objects.get(pk=claimed).claim_token)
    ids = list(Article.objects.filter(release=release).order_by("pk").values_list("id", flat=True))
    if ids:
        ids = step_thumbnails(article_ids=step_process(article_ids=ids, token=token), token=token)
        assert releases.release_members_prepared(release_id=release.pk, token=token, article_ids=ids) is True
    return releases.release_flip(release_id=release.pk, token=token)


@pytest.fixture
def flips(sent, monkeypatch, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    monkeypatch.setattr(dispatch, "release_flip", lambda **kw: sent.append(("flip", kw["release_id"])))
    monkeypatch.setattr(dispatch, "release_alert", lambda **kw: sent.append(("blocked_alert", kw["release_id"])))
    return sent


def test_a_release_left_without_members_is_blocked_at_its_time(editor, flips, django_capture_on_commit_callbacks):
    from django.core import mail

    release, articles = a_release(editor, broken=False)
    schedule(release, editor)
    releases.release_remove_members(release_id=release.pk, article_ids=[a.pk for a in articles], actor=editor)
    assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    with django_capture_on_commit_callbacks(execute=True):
        assert flip_now(release).outcome == "blocked"
    release.refresh_from_db()
    assert release.status == ReleaseStatus.BLOCKED and release.blocked_article_id is None
    assert release.last_error == "Not published: The release has no articles: add some, or unschedule it."
    assert release.published_at is None
    assert ("blocked_alert", release.pk) in flips
    assert releases.release_alert_send(release_id=release.pk) == 1
    [message] = mail.outbox
    assert (message.to, message.subject) == (["edith@example.com"], "Release blocked: Embargo package")
    assert "Reason: Not published: The release has no articles: add some, or unschedule it." in message.body


def test_two_members_sharing_an_address_block_the_release_at_its_time(editor, flips,
                                                                      django_capture_on_commit_callbacks):
    release, (first, second, third) = a_release(editor, broken=False)
    schedule(release, editor)
    first_slug = Article.objects.get(pk=first.pk).slug
    ArticleSlugRedirect.objects.create(old_slug=first_slug, article_id=second.pk)
    assert release_preflight.release_preflight(release_id=release.pk) == AT_RISK
    with django_capture_on_commit_callbacks(execute=True):
        assert flip_now(release).outcome == "blocked"
    release.refresh_from_db()
    assert release.status == ReleaseStatus.BLOCKED
    assert release.last_error == (f"Not published: “Story 0” (#{first.pk}) and “Story 1” (#{second.pk}) share the "
                                  f"address “{first_slug}”: change one of the slugs.")
    # None of it went live: every member is held with its release.
    assert set(Article.objects.filter(release=release).values_list("status", flat=True)) == {ArticleStatus.IN_RELEASE}
    assert not Article.objects.visible().exists()
    assert ("blocked_alert", release.pk) in flips
    # The release page says why.
    client = Client()
    client.force_login(editor)
    page = client.get(reverse("admin:publisher_release_change", args=[release.pk])).content.decode()
    assert "share the address" in page and "Blocked" in page


def test_a_release_without_release_level_findings_still_goes_live(editor, flips):
    release, _ = a_release(editor, broken=False)
    schedule(release, editor)
    assert release_preflight.release_preflight(release_id=release.pk) == PASSED
    assert flip_now(release).outcome == "published"
