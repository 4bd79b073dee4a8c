"""The pre-flight (publisher/preflight.py), called directly (no worker): each check and its
message, the fingerprint that ties a result to one content, at risk and its clearing, the scan's
and the save's dispatch, the scheduler's e-mail, and the pipeline reusing what a passed check
prepared."""

import copy
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.checks import Warning as CheckWarning
from django.core.files.base import ContentFile
from django.utils import timezone

from publisher import alerts, checks, dispatch, preflight, services
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleSlugRedirect, ArticleStatus
from publisher.pipeline import step_process, step_thumbnails
from publisher.preflight import Content, preflight_check
from tests import factories
from tests.factories import make_article, make_user
from tests.support.images import broken_png, huge_png, png

pytestmark = pytest.mark.django_db

NO_BODY = "An article needs a body before it can be scheduled. To keep it as a draft, clear the publish time."
NO_TITLE = "An article needs a title before it can be scheduled. To keep it as a draft, clear the publish time."
NO_ALT = "The image has no alt text: say what it shows, for readers who cannot see it."


@pytest.fixture(autouse=True)
def preflight_on(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30
    settings.PUBLISHER_THUMBNAIL_SIZE = (400, 400)


@pytest.fixture
def sent(monkeypatch):
    """What would have gone to the broker: ("preflight" | "alert" | "publish", ids)."""
    calls = []
    monkeypatch.setattr(dispatch, "preflight", lambda *, article_ids: calls.append(("preflight", article_ids)))
    monkeypatch.setattr(dispatch, "preflight_alerts", lambda *, article_ids: calls.append(("alert", article_ids)))
    monkeypatch.setattr(dispatch, "publish_claimed", lambda **kwargs: calls.append(("publish", kwargs["due"])))
    return calls


def image_file(data: bytes, name: str = "photo.png"):
    article = Article(pk=0)
    article.image.save(name, ContentFile(data), save=False)
    return article.image


def content(**fields) -> Content:
    values = {"title": "Harbour at dawn", "body": "The *boats* go out.", "image": None, "image_alt": "",
              "slug": "harbour-at-dawn", "article_id": None}
    return Content(**{**values, **fields})


def scheduled(minutes: float = 10, *, image: bytes | None = None, alt: str = "Boats", **fields) -> Article:
    fields.setdefault("title", "Harbour at dawn")
    article = make_article(status=ArticleStatus.SCHEDULED, publish_at=timezone.now() + timedelta(minutes=minutes),
                           image_alt=alt if image is not None else "", **fields)
    if image is not None:
        article.image.save("photo.png", ContentFile(image), save=False)
        Article.objects.filter(pk=article.pk).update(image=article.image.name)
    return Article.objects.get(pk=article.pk)


def events(article) -> list[tuple[str, str]]:
    return list(ArticleEvent.objects.filter(article=article).order_by("id").values_list("action", "note"))


# --- The checks ---------------------------------------------------------------------------------------------

def test_good_content_passes_with_what_going_live_needs_prepared():
    image = image_file(png(1200, 800))
    result = preflight_check(content(image=image, image_alt="Boats leaving the harbour"))
    assert (result.passed, result.problems, result.reason) == (True, [], "")
    assert result.body_html == "<p>The <em>boats</em> go out.</p>"
    assert (result.excerpt, result.word_count) == ("The boats go out.", 4)
    assert result.thumbnail[:3] == b"\xff\xd8\xff"  # a JPEG
    assert result.fingerprint == content(image=image, image_alt="Boats leaving the harbour").fingerprint
    assert result.fingerprint != content(image_alt="Boats leaving the harbour").fingerprint


@pytest.mark.parametrize(("fields", "problem"), [
    ({"body": "  "}, NO_BODY),
    ({"title": ""}, NO_TITLE),
    ({"image": "broken", "image_alt": "Boats"},
     "The image cannot be used: image could not be read: cannot identify image file"),
    ({"image": "huge", "image_alt": "Boats"},
     "The image cannot be used: the image has more than 80,000,000 pixels; at most 40,000,000 are allowed."),
    ({"image": "good", "image_alt": " "}, NO_ALT),
], ids=["empty body", "empty title", "broken image", "image too large", "missing alt text"])
def test_each_failing_check_says_what_fails(fields, problem, settings):
    settings.PUBLISHER_MAX_IMAGE_PIXELS = 40_000_000
    images = {"broken": broken_png, "huge": huge_png, "good": lambda: png(50, 50)}
    if "image" in fields:
        fields["image"] = image_file(images[fields["image"]]())
    result = preflight_check(content(**fields))
    assert result.passed is False
    assert len(result.problems) == 1
    assert result.problems[0].startswith(problem)


def test_a_slug_another_article_answers_under_is_a_duplicate():
    other = make_article(title="Other", slug="harbour-at-dawn")
    mine = make_article(title="Mine", slug="mine")
    assert preflight_check(content(slug="harbour-at-dawn", article_id=mine.pk)).problems == [
        "The address “harbour-at-dawn” is already used by another article: change the slug."]
    # Its own slug is not a conflict; an old slug of another article (it redirects) is.
    assert preflight_check(content(slug="harbour-at-dawn", article_id=other.pk)).passed
    ArticleSlugRedirect.objects.create(old_slug="old-harbour", article=other)
    assert preflight_check(content(slug="old-harbour", article_id=mine.pk)).problems == [
        "The address “old-harbour” is already used by another article: change the slug."]


def test_an_e_mail_that_cannot_be_rendered_is_a_problem(settings, tmp_path):
    templates = tmp_path / "templates" / "publisher" / "email"
    templates.mkdir(parents=True)
    # An edited template that lost the unsubscribe link: the mail would be refused at fan-out.
    (templates / "new_article.txt").write_text("{{ title }}\n\n{{ excerpt }}\n")
    engine = copy.deepcopy(settings.TEMPLATES)
    engine[0]["DIRS"] = [str(tmp_path / "templates")]
    settings.TEMPLATES = engine
    assert preflight_check(content()).problems == [
        "The subscribers' e-mail could not be rendered: RuntimeError: the e-mail templates must hold the "
        "unsubscribe link once in each part."]


def test_several_problems_are_all_reported():
    result = preflight_check(content(body="", image=image_file(broken_png()), image_alt=""))
    assert [problem[:30] for problem in result.problems] == [
        NO_BODY[:30], NO_ALT[:30], "The image cannot be used: imag"]
    assert result.reason == " ".join(result.problems)


def test_the_fingerprint_changes_with_each_part_of_the_content():
    base = content(image=image_file(png(5, 5)), image_alt="a")
    variants = [content(title="x", image=base.image, image_alt="a"), content(body="x", image=base.image, image_alt="a"),
                content(image=None, image_alt="a"), content(image=base.image, image_alt="b"),
                content(slug="x", image=base.image, image_alt="a")]
    assert len({base.fingerprint, *(v.fingerprint for v in variants)}) == 6
    assert content(image=base.image, image_alt="a", article_id=7).fingerprint == base.fingerprint


def test_a_window_not_longer_than_the_look_ahead_is_warned_about(settings):
    settings.PUBLISHER_LOOKAHEAD = 120
    settings.PUBLISHER_PREFLIGHT_MINUTES = 2
    assert [p.id for p in checks.pipeline_settings(None) if isinstance(p, CheckWarning)
            and p.id == "publisher.W004"] == ["publisher.W004"]
    settings.PUBLISHER_PREFLIGHT_MINUTES = 0  # off: nothing to warn about
    assert "publisher.W004" not in [p.id for p in checks.pipeline_settings(None)]


# --- One article: at risk, passed, unchanged, cleared ------------------------------------------------------

def test_an_article_at_risk_is_flagged_recorded_and_alerted_once(sent, django_capture_on_commit_callbacks):
    article = scheduled(image=broken_png())
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.article_preflight(article_id=article.pk) == preflight.AT_RISK
    row = Article.objects.get(pk=article.pk)
    assert row.at_risk_reason.startswith("The image cannot be used: image could not be read")
    assert row.preflight_checked_at is not None and row.preflight_queued_until is None
    assert row.preflight_fingerprint == row.content_fingerprint()
    assert (row.status, row.body_html, row.thumbnail.name) == (ArticleStatus.SCHEDULED, "", "")
    assert events(article) == [(ArticleEventAction.AT_RISK, row.at_risk_reason)]
    assert sent == [("alert", [article.pk])]
    # The same content again (a redelivered task, a save that changed nothing): nothing redone,
    # recorded or mailed.
    Article.objects.filter(pk=article.pk).update(preflight_checked_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.article_preflight(article_id=article.pk) == preflight.UNCHANGED
    assert Article.objects.get(pk=article.pk).preflight_checked_at is not None
    assert len(events(article)) == 1 and sent == [("alert", [article.pk])]


def test_fixing_the_content_clears_the_flag_and_the_new_check_keeps_its_output(sent, django_capture_on_commit_callbacks):
    article = scheduled(image=broken_png())
    with django_capture_on_commit_callbacks(execute=True):
        preflight.article_preflight(article_id=article.pk)
    article = Article.objects.get(pk=article.pk)
    article.image.save("fixed.png", ContentFile(png(900, 600)), save=False)
    article.save(update_fields=["image", "updated_at"])  # as the admin saves an edit
    row = Article.objects.get(pk=article.pk)
    assert (row.at_risk_reason, row.preflight_fingerprint, row.preflight_checked_at) == ("", "", None)
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.article_preflight(article_id=article.pk) == preflight.PASSED
    row = Article.objects.get(pk=article.pk)
    assert (row.at_risk_reason, row.status, row.word_count) == ("", ArticleStatus.SCHEDULED, 3)
    assert row.body_html == "<p>Some <em>body</em> text.</p>"
    assert row.thumbnail.name.startswith(f"thumbnails/article-{row.pk}-preflight")
    assert row.thumbnail.storage.exists(row.thumbnail.name)
    assert row.prepared_by_preflight()
    assert [action for action, _ in events(article)] == [ArticleEventAction.AT_RISK, ArticleEventAction.PREFLIGHT_PASSED]
    assert sent == [("alert", [article.pk])]  # only the at-risk finding was mailed


def test_a_check_that_raced_an_edit_writes_nothing(sent, monkeypatch, settings):
    article = scheduled(image=png(300, 200))
    check = preflight.preflight_check

    def edited_meanwhile(checked):
        result = check(checked)
        Article.objects.filter(pk=article.pk).update(body="Edited while the check ran.")
        return result

    monkeypatch.setattr(preflight, "preflight_check", edited_meanwhile)
    assert preflight.article_preflight(article_id=article.pk) == preflight.SKIPPED
    row = Article.objects.get(pk=article.pk)
    assert (row.preflight_fingerprint, row.preflight_checked_at, row.body_html, row.thumbnail.name) == ("", None, "", "")
    assert events(article) == []
    thumbnails = Path(settings.MEDIA_ROOT) / "thumbnails"
    assert list(thumbnails.iterdir()) == []  # the thumbnail it made was removed again


def test_only_scheduled_articles_are_checked(sent):
    draft = make_article()
    assert preflight.article_preflight(article_id=draft.pk) == preflight.SKIPPED
    assert preflight.article_preflight(article_id=10**9) == preflight.SKIPPED


def test_a_chunk_checks_each_article_alone(sent, django_capture_on_commit_callbacks):
    good, bad = scheduled(image=png(40, 40)), scheduled(body="")
    Article.objects.filter(pk=bad.pk).update(body="")
    with django_capture_on_commit_callbacks(execute=True):
        counts = preflight.articles_preflight(article_ids=[bad.pk, good.pk, 10**9])
    assert counts == {"passed": 1, "at_risk": 1, "unchanged": 0, "skipped": 1}
    assert Article.objects.get(pk=bad.pk).at_risk_reason == NO_BODY
    assert sent == [("alert", [bad.pk])]


# --- Which articles, and when --------------------------------------------------------------------------------

def test_the_scan_hands_out_unchecked_articles_due_within_the_window_once(sent, django_capture_on_commit_callbacks,
                                                                          settings):
    soon, later = scheduled(5), scheduled(20)
    scheduled(45)  # outside the 30-minute window
    make_article(publish_at=timezone.now() + timedelta(minutes=5))  # a draft
    checked = scheduled(6)
    Article.objects.filter(pk=checked.pk).update(preflight_checked_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.articles_preflight_dispatch() == 2
    assert sent == [("preflight", [soon.pk, later.pk])]
    # Handed out: not again while its lease runs, whatever the scans.
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.articles_preflight_dispatch() == 0
    # The lease ran out (a lost message): handed out again.
    Article.objects.filter(pk=soon.pk).update(preflight_queued_until=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.articles_preflight_dispatch() == 1
    assert sent[-1] == ("preflight", [soon.pk])
    settings.PUBLISHER_PREFLIGHT_MINUTES = 0
    Article.objects.update(preflight_queued_until=None)
    assert preflight.articles_preflight_dispatch() == 0


def test_what_the_claim_takes_now_or_next_is_never_handed_to_a_preflight(sent, django_capture_on_commit_callbacks,
                                                                          settings):
    """Overdue (a burst, a backlog after downtime) or due within the claim's look-ahead: the scan
    claims it; a pre-flight would race the claim and render it twice for nothing."""
    settings.PUBLISHER_LOOKAHEAD = 5
    now = timezone.now()
    for seconds in (-3600, -1, 0, 4):
        make_article(status=ArticleStatus.SCHEDULED, publish_at=now + timedelta(seconds=seconds))
    ahead = make_article(status=ArticleStatus.SCHEDULED, publish_at=now + timedelta(seconds=30))
    with django_capture_on_commit_callbacks(execute=True):
        assert preflight.articles_preflight_dispatch() == 1
    assert sent == [("preflight", [ahead.pk])]


def test_the_scan_reads_a_fixed_number_of_queries(sent, django_assert_num_queries):
    for _ in range(5):
        scheduled(5)
    with django_assert_num_queries(4):  # savepoint, select, update, release
        assert preflight.articles_preflight_dispatch() == 5


def test_scheduling_within_the_window_checks_it_at_once(sent, django_capture_on_commit_callbacks):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors")
    near, far, imported = make_article(), make_article(), make_article()
    with django_capture_on_commit_callbacks(execute=True):
        services.article_schedule(article_id=near.pk, publish_at=timezone.now() + timedelta(minutes=3), actor=editor)
        services.article_schedule(article_id=far.pk, publish_at=timezone.now() + timedelta(hours=3), actor=editor)
        services.article_schedule(article_id=imported.pk, publish_at=timezone.now() + timedelta(minutes=3),
                                  claim_due=False)  # the importer: the scan checks them in chunks
    assert sent == [("preflight", [near.pk])]


def test_an_edit_saved_through_the_form_checks_it_at_once(sent, django_capture_on_commit_callbacks):
    article = scheduled(3)
    Article.objects.filter(pk=article.pk).update(preflight_checked_at=timezone.now())
    article.body = "A corrected body."
    with django_capture_on_commit_callbacks(execute=True):
        article.save(update_fields=["body", "updated_at"])
        services.article_update_schedule(article_id=article.pk, publish_at=article.publish_at,
                                         unpublish_at=None, actor=None)
    assert sent == [("preflight", [article.pk])]


def test_a_new_slug_asks_for_a_new_check(sent):
    from publisher.site.services import article_set_slug

    article = scheduled(3, slug="first")
    Article.objects.filter(pk=article.pk).update(preflight_checked_at=timezone.now())
    article_set_slug(article_id=article.pk, slug="second")
    assert Article.objects.get(pk=article.pk).preflight_checked_at is None


# --- The scheduler's e-mail -----------------------------------------------------------------------------------

@pytest.fixture
def smtp_settings(settings, smtp_server):
    for name, value in smtp_server.env().items():
        setattr(settings, name, {"off": False}.get(value, int(value) if value.isdigit() else value))
    return smtp_server


def test_the_scheduler_is_mailed_what_is_at_risk_while_there_is_time(sent, smtp_settings, settings):
    settings.PUBLISHER_SITE_URL = "https://news.example.com"
    settings.TIME_ZONE = "UTC"
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    article = make_article(title="Photo essay", image_alt="")
    article.image.save("broken.png", ContentFile(broken_png()), save=True)
    services.article_schedule(article_id=article.pk, publish_at=timezone.now() + timedelta(minutes=20), actor=editor)
    fixed = scheduled(20, title="Fixed meanwhile")
    preflight.article_preflight(article_id=article.pk)
    assert alerts.preflight_alerts_send(article_ids=[article.pk, fixed.pk]) == 1
    [accepted] = smtp_settings.accepted()
    assert accepted.rcpt_tos == ["edith@example.com"]
    assert accepted.message["Subject"].startswith("At risk: Photo essay (due ")
    body = accepted.message.get_content().replace("\r\n", "\n")
    assert "and would fail.\n\nWhat the pre-flight check found: The image has no alt text: say what it shows" in body
    assert "The image cannot be used: image could not be read" in body
    assert ", in 19 min" in body or ", in 20 min" in body
    assert f"https://news.example.com/admin/publisher/article/{article.pk}/change/" in body


# --- The pipeline reuses what a passed check prepared -----------------------------------------------------------

def claim(article: Article) -> str:
    token = str(uuid.uuid4())
    Article.objects.filter(pk=article.pk).update(status=ArticleStatus.PUBLISHING, claim_token=token,
                                                 claimed_at=timezone.now(), attempts=1,
                                                 lease_expires_at=timezone.now() + timedelta(minutes=5))
    return token


def test_going_live_reuses_the_prepared_output_of_the_same_content(sent):
    article = scheduled(image=png(600, 400))
    assert preflight.article_preflight(article_id=article.pk) == preflight.PASSED
    prepared = Article.objects.get(pk=article.pk)
    # A marker only the pre-flight's output holds: re-rendering would replace it.
    Article.objects.filter(pk=article.pk).update(body_html="<p>prepared ahead</p>")
    token = claim(article)
    assert step_process(article_ids=[article.pk], token=token) == [article.pk]
    assert step_thumbnails(article_ids=[article.pk], token=token) == [article.pk]
    row = Article.objects.get(pk=article.pk)
    assert (row.body_html, row.thumbnail.name, row.unfinished_runs) == (
        "<p>prepared ahead</p>", prepared.thumbnail.name, 0)


def test_content_changed_after_the_check_is_prepared_again(sent):
    article = scheduled(image=png(600, 400))
    preflight.article_preflight(article_id=article.pk)
    Article.objects.filter(pk=article.pk).update(body_html="<p>prepared ahead</p>")
    # Changed behind the model's back (no new check asked): the fingerprint still tells.
    Article.objects.filter(pk=article.pk).update(body="A **new** body.", image="")
    token = claim(article)
    assert step_process(article_ids=[article.pk], token=token) == [article.pk]
    assert step_thumbnails(article_ids=[article.pk], token=token) == [article.pk]
    row = Article.objects.get(pk=article.pk)
    assert row.body_html == "<p>A <strong>new</strong> body.</p>"
    assert row.thumbnail.name == ""  # the image was removed: the pre-flight's thumbnail is not used


def test_an_article_at_risk_is_prepared_by_the_pipeline_as_before(sent):
    article = scheduled(image=broken_png())
    preflight.article_preflight(article_id=article.pk)
    token = claim(article)
    assert step_process(article_ids=[article.pk], token=token) == [article.pk]
    assert step_thumbnails(article_ids=[article.pk], token=token) == []
    row = Article.objects.get(pk=article.pk)
    assert row.status == ArticleStatus.FAILED
    assert row.last_error.startswith("thumbnail: image could not be read")


def test_output_the_pipeline_rendered_is_never_taken_for_the_pre_flights(sent):
    article = scheduled()
    preflight.article_preflight(article_id=article.pk)
    original = Article.objects.get(pk=article.pk).body
    Article.objects.filter(pk=article.pk).update(body="Changed after the check.")
    token = claim(article)
    step_process(article_ids=[article.pk], token=token)
    assert Article.objects.get(pk=article.pk).preflight_fingerprint == ""
    # Taken back and changed back to the content that passed: the body_html on the row is the
    # pipeline's (of the other content), so it is rendered again.
    Article.objects.filter(pk=article.pk).update(status=ArticleStatus.SCHEDULED, body=original)
    token = claim(article)
    step_process(article_ids=[article.pk], token=token)
    assert Article.objects.get(pk=article.pk).body_html == "<p>Some <em>body</em> text.</p>"
