"""Per-article budgets inside a chunk (issue 15, defect 1): the time budget helper, a body that
makes Markdown go quadratic failing alone, the soft time limit mid-chunk keeping what is done,
and images over PUBLISHER_MAX_IMAGE_PIXELS refused at upload and failing alone in the pipeline."""

import io
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from publisher import dispatch
from publisher.budgets import BudgetExceeded, time_budget
from publisher.forms import ArticleAdminForm
from publisher.models import Article, ArticleStatus
from publisher.pipeline import step_process, step_thumbnails
from publisher.rendering import ImageTooLarge, check_image_pixels, make_thumbnail
from tests.factories import make_article
from tests.support.images import huge_png

# 25,000 `[`, an `x`, 25,000 `]` takes Python-Markdown minutes; 3,000 of each already takes
# about 8 s on our machines, far past the budgets used here.
PATHOLOGICAL_BODY = "[" * 3000 + "x" + "]" * 3000


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


# --- The helper -------------------------------------------------------------------------------

@pytest.fixture
def no_outer_timer():
    """pytest-timeout arms ITIMER_REAL itself: set it aside so each test sees the timer the
    helper leaves, then put it back."""
    handler = signal.getsignal(signal.SIGALRM)
    delay, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    yield
    signal.signal(signal.SIGALRM, handler)
    if delay:
        signal.setitimer(signal.ITIMER_REAL, delay, interval)


@pytest.mark.usefixtures("no_outer_timer")
def test_a_block_over_its_budget_is_interrupted_with_a_reason_naming_it():
    started = time.monotonic()
    with pytest.raises(BudgetExceeded) as caught:
        with time_budget(0.2, what="rendering"):
            _spin(5)
    assert str(caught.value) == "rendering took longer than 0.2 s"
    assert time.monotonic() - started < 1.5
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.usefixtures("no_outer_timer")
def test_a_block_within_its_budget_runs_and_the_timer_is_cleared():
    handler = signal.getsignal(signal.SIGALRM)
    with time_budget(5, what="rendering"):
        _spin(0.05)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
    assert signal.getsignal(signal.SIGALRM) is handler
    _spin(0.1)  # nothing fires later


@pytest.mark.usefixtures("no_outer_timer")
def test_an_exception_in_the_block_clears_the_timer_and_passes_through():
    with pytest.raises(SoftTimeLimitExceeded):
        with time_budget(5, what="rendering"):
            raise SoftTimeLimitExceeded()
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


@pytest.mark.usefixtures("no_outer_timer")
def test_zero_disables_the_budget():
    with time_budget(0, what="rendering"):
        assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
        _spin(0.05)


@pytest.mark.usefixtures("no_outer_timer")
def test_a_timer_armed_before_is_rearmed_with_what_was_left():
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda signum, frame: fired.append(signum))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with time_budget(5, what="rendering"):
            _spin(0.1)
        left, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0.2 < left <= 0.4
        _spin(0.6)
        assert fired == [signal.SIGALRM]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.usefixtures("no_outer_timer")
def test_outside_the_main_thread_the_block_runs_without_a_budget():
    outcome = []

    def run():
        with time_budget(0.05, what="rendering"):
            _spin(0.2)
        outcome.append(signal.getitimer(signal.ITIMER_REAL))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert outcome == [(0.0, 0.0)]


# --- The pipeline -------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Nothing here may reach the broker: the steps are called directly."""
    monkeypatch.setattr(dispatch, "publish_claimed", lambda **kwargs: None)
    monkeypatch.setattr(dispatch, "fan_out", lambda **kwargs: None)


def _claimed(token: str, **fields) -> Article:
    now = timezone.now()
    fields.setdefault("body", "Some *body* text.")
    return make_article(status=ArticleStatus.PUBLISHING, claim_token=uuid.UUID(token), claimed_at=now,
                        lease_expires_at=now + timedelta(seconds=300), attempts=1,
                        publish_at=now - timedelta(seconds=5), **fields)


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


@pytest.mark.django_db
def test_a_body_over_the_time_budget_fails_alone_and_its_chunk_mates_go_on(settings):
    settings.PUBLISHER_ARTICLE_TIME_BUDGET = 0.5
    token = str(uuid.uuid4())
    before = _claimed(token, title="Before")
    slow = _claimed(token, title="Slow", body=PATHOLOGICAL_BODY)
    after = _claimed(token, title="After")

    started = time.monotonic()
    survivors = step_process(article_ids=[before.pk, slow.pk, after.pk], token=token)

    assert time.monotonic() - started < 5
    assert sorted(survivors) == [before.pk, after.pk]
    slow.refresh_from_db()
    assert slow.status == ArticleStatus.FAILED
    assert slow.last_error == "process: rendering took longer than 0.5 s"
    assert slow.lease_expires_at is None
    for article in (before, after):
        article.refresh_from_db()
        assert (article.status, article.body_html) == (ArticleStatus.PUBLISHING, "<p>Some <em>body</em> text.</p>")


@pytest.mark.django_db
def test_the_soft_time_limit_mid_chunk_keeps_what_is_done_and_leaves_the_rest_to_the_sweeper(monkeypatch):
    # The fault hook raises where the task's soft time limit would: while the second article renders.
    monkeypatch.setenv("PUBLISHER_FAULTS", "process:softlimit:Second")
    token = str(uuid.uuid4())
    first, second, third = (_claimed(token, title=title) for title in ("First", "Second", "Third"))

    survivors = step_process(article_ids=[first.pk, second.pk, third.pk], token=token)

    assert survivors == [first.pk]
    rows = {a.pk: a for a in Article.objects.all()}
    assert rows[first.pk].body_html == "<p>Some <em>body</em> text.</p>"
    assert rows[first.pk].lease_expires_at > timezone.now()
    for pk in (second.pk, third.pk):
        # Not failed, not rendered: still claimed, lease expired, so the next scan's sweeper
        # re-dispatches them under a new claim.
        assert (rows[pk].status, rows[pk].body_html, rows[pk].last_error) == (ArticleStatus.PUBLISHING, "", "")
        assert rows[pk].lease_expires_at <= timezone.now()
    assert set(Article.objects.stale_claims().values_list("id", flat=True)) == {second.pk, third.pk}


@pytest.mark.django_db
def test_the_soft_time_limit_outside_the_loop_leaves_the_chunk_to_the_lease_not_failed(caplog):
    from types import SimpleNamespace

    from publisher.tasks import record_chunk_failure

    token = str(uuid.uuid4())
    article = _claimed(token, title="Held")
    request = SimpleNamespace(task="publisher.tasks.process_articles")
    assert record_chunk_failure(request, SoftTimeLimitExceeded(), None, article_ids=[article.pk], token=token) == 0
    article.refresh_from_db()
    assert (article.status, article.last_error) == (ArticleStatus.PUBLISHING, "")
    assert "1 articles left to the lease and the sweeper" in caplog.text


def test_the_pixel_check_reads_the_header_of_a_144_megapixel_png_without_decoding_it():
    data = huge_png()
    assert len(data) < 1_000_000
    source = io.BytesIO(data)
    with pytest.raises(ImageTooLarge) as caught:
        check_image_pixels(source, 40_000_000)
    assert str(caught.value) == "the image has more than 80,000,000 pixels; at most 40,000,000 are allowed"
    assert source.tell() == 0
    check_image_pixels(io.BytesIO(_png(100, 100)), 10_000)  # at the limit: accepted
    with pytest.raises(ImageTooLarge):
        make_thumbnail(io.BytesIO(_png(101, 100)), (400, 400), max_pixels=10_000)


@pytest.mark.django_db
def test_a_big_image_that_got_in_fails_alone_in_the_thumbnail_step(media):
    token = str(uuid.uuid4())
    big, good = _claimed(token, title="Big"), _claimed(token, title="Good")
    big.image.save("big.png", ContentFile(huge_png()), save=True)
    good.image.save("good.png", ContentFile(_png(900, 900)), save=True)

    assert step_thumbnails(article_ids=[big.pk, good.pk], token=token) == [good.pk]

    big.refresh_from_db()
    good.refresh_from_db()
    assert big.status == ArticleStatus.FAILED
    assert big.last_error == "thumbnail: the image has more than 80,000,000 pixels; at most 40,000,000 are allowed"
    assert not big.thumbnail
    assert good.thumbnail.name == f"thumbnails/article-{good.pk}.jpg"


def test_pillow_limit_matches_the_setting():
    from django.conf import settings

    assert Image.MAX_IMAGE_PIXELS == settings.PUBLISHER_MAX_IMAGE_PIXELS == 40_000_000


# --- The upload ---------------------------------------------------------------------------------

def _form(image: bytes, name: str = "big.png") -> ArticleAdminForm:
    return ArticleAdminForm(data={"title": "A title", "body": "Body.", "image_alt": "A black square"},
                            files={"image": SimpleUploadedFile(name, image, content_type="image/png")})


@pytest.mark.django_db
def test_the_admin_form_refuses_an_image_over_the_pixel_limit_with_a_clear_message():
    form = _form(huge_png())
    assert not form.is_valid()
    assert form.errors["image"] == [
        "The image is too large: the image has more than 80,000,000 pixels; at most 40,000,000 are "
        "allowed (PUBLISHER_MAX_IMAGE_PIXELS). Upload a smaller version."]


@pytest.mark.django_db
def test_the_admin_form_names_the_size_of_an_image_between_the_limit_and_twice_it(settings):
    settings.PUBLISHER_MAX_IMAGE_PIXELS = 10_000
    form = _form(_png(200, 100))
    assert not form.is_valid()
    assert form.errors["image"] == [
        "The image is too large: the image is 200 x 100 = 20,000 pixels; at most 10,000 are allowed "
        "(PUBLISHER_MAX_IMAGE_PIXELS). Upload a smaller version."]


@pytest.mark.django_db
def test_the_admin_form_accepts_an_image_within_the_limit_and_still_refuses_a_non_image():
    assert _form(_png(300, 200), "ok.png").is_valid()
    form = _form(b"not an image at all", "fake.png")
    assert not form.is_valid()
    assert "Upload a valid image" in form.errors["image"][0]


# --- The settings -------------------------------------------------------------------------------

def test_a_budget_not_below_the_soft_time_limit_is_flagged(settings):
    from publisher.checks import pipeline_settings

    settings.CELERY_TASK_SOFT_TIME_LIMIT = 120
    assert "publisher.W003" not in [p.id for p in pipeline_settings(None)]
    settings.PUBLISHER_ARTICLE_TIME_BUDGET = 120
    assert "publisher.W003" in [p.id for p in pipeline_settings(None)]
    settings.PUBLISHER_ARTICLE_TIME_BUDGET = 0  # off
    assert "publisher.W003" not in [p.id for p in pipeline_settings(None)]


@pytest.mark.one_tier
@pytest.mark.parametrize(("variable", "value", "message"), [
    ("PUBLISHER_ARTICLE_TIME_BUDGET", "ten", "PUBLISHER_ARTICLE_TIME_BUDGET must be a number, got 'ten'."),
    ("PUBLISHER_MAX_IMAGE_PIXELS", "0", "PUBLISHER_MAX_IMAGE_PIXELS must be at least 1, got 0."),
])
def test_the_settings_refuse_bad_values_at_boot(variable, value, message):
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_", "DATABASE_"))}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=root, capture_output=True, text=True,
                            timeout=120, env={**env, "DJANGO_SETTINGS_MODULE": "settings.dev", variable: value})
    assert result.returncode != 0
    assert message in result.stderr
