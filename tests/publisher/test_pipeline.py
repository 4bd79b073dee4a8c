"""The publishing steps, called directly (no worker): each works only on rows its claim still
holds, one article's bad content fails that article alone, and re-running a step is harmless."""

import io
import uuid
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest
import time_machine
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from publisher import dispatch, services
from publisher.dispatch import chunks, plan
from publisher.models import Article, ArticleStatus
from publisher.pipeline import step_make_live, step_process, step_schedule_flips, step_thumbnails
from tests.factories import make_article

pytestmark = pytest.mark.django_db

UTC = dt_timezone.utc


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLISHER_THUMBNAIL_SIZE = (400, 400)
    return tmp_path / "media"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    """Nothing here may reach the broker: the steps are called directly."""
    sent = []
    monkeypatch.setattr(dispatch, "publish_claimed", lambda **kwargs: sent.append(kwargs))
    monkeypatch.setattr(dispatch, "fan_out", lambda **kwargs: sent.append(kwargs))
    return sent


def claimed(token: str, *, offset: float = -5, unpublish: float | None = None, **fields) -> Article:
    """An article `publishing` under `token`, due `offset` seconds from now."""
    now = timezone.now()
    fields.setdefault("title", "A title")
    fields.setdefault("body", "Some *body* text.")
    return make_article(
        status=ArticleStatus.PUBLISHING, claim_token=uuid.UUID(token), claimed_at=now,
        lease_expires_at=now + timedelta(seconds=300), attempts=1,
        publish_at=now + timedelta(seconds=offset),
        unpublish_at=None if unpublish is None else now + timedelta(seconds=unpublish),
        **fields,
    )


def new_token() -> str:
    return str(uuid.uuid4())


def fresh(article: Article) -> Article:
    return Article.objects.get(pk=article.pk)


def png(width: int, height: int, mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    color = (200, 30, 30, 128) if mode == "RGBA" else (200, 30, 30)
    Image.new(mode, (width, height), color).save(out, format="PNG")
    return out.getvalue()


# --- step_process ----------------------------------------------------------------------------------------

def test_process_renders_markdown_and_fills_the_derived_fields():
    token = new_token()
    article = claimed(token, body="# Heading\n\nSome **bold** words and a [link](https://example.com).\n\n- one\n- two")

    assert step_process(article_ids=[article.pk], token=token) == [article.pk]

    row = fresh(article)
    assert "<h1>Heading</h1>" in row.body_html
    assert "<strong>bold</strong>" in row.body_html
    assert '<a href="https://example.com"' in row.body_html
    assert "<li>one</li>" in row.body_html
    assert row.excerpt.startswith("Heading Some bold words and a link")
    assert row.excerpt.endswith("one two")
    assert "<" not in row.excerpt and "**" not in row.excerpt
    assert (row.status, row.unfinished_runs) == (ArticleStatus.PUBLISHING, 0)


def test_process_strips_scripts_and_event_handlers():
    token = new_token()
    article = claimed(token, body='Hello <script>alert("x")</script> <img src="a.png" onerror="alert(1)"> '
                                  '<a href="javascript:alert(1)">click</a>')

    step_process(article_ids=[article.pk], token=token)

    html = fresh(article).body_html
    assert "<script" not in html.lower()
    assert "onerror" not in html.lower()
    assert "javascript:" not in html.lower()
    assert "Hello" in html
    assert 'alert("x")' not in fresh(article).excerpt


def test_process_cuts_a_long_excerpt_on_a_word_boundary():
    token = new_token()
    article = claimed(token, body=" ".join(f"word{i}" for i in range(200)))
    step_process(article_ids=[article.pk], token=token)
    row = fresh(article)
    assert row.word_count == 200
    assert len(row.excerpt) <= 280
    assert row.excerpt.endswith("…")
    assert row.excerpt[:-1].split()[-1].startswith("word")  # no word cut in half
    assert row.excerpt[:-1].split() == [f"word{i}" for i in range(len(row.excerpt[:-1].split()))]


def test_the_excerpt_is_plain_text_not_html_entities():
    token = new_token()
    article = claimed(token, body="Tom & Jerry <3 cats")
    step_process(article_ids=[article.pk], token=token)
    row = fresh(article)
    assert "&amp;" in row.body_html  # the HTML is escaped, as it must be
    assert row.excerpt == "Tom & Jerry <3 cats"


def test_inline_markup_does_not_change_the_excerpt_or_the_word_count():
    token = new_token()
    article = claimed(token, body="Hello **world**. Read *this*, then `that`!")
    step_process(article_ids=[article.pk], token=token)
    row = fresh(article)
    assert row.excerpt == "Hello world. Read this, then that!"
    assert row.word_count == 6


@pytest.mark.parametrize("fields", [{"body": ""}, {"body": "  \n "}, {"title": ""}])
def test_an_article_without_body_or_title_fails_alone(fields):
    token = new_token()
    good, bad, also_good = claimed(token, title="Good"), claimed(token, **fields), claimed(token, title="Also good")

    assert sorted(step_process(article_ids=[good.pk, bad.pk, also_good.pk], token=token)) == [good.pk, also_good.pk]

    failed = fresh(bad)
    assert failed.status == ArticleStatus.FAILED
    assert failed.last_error == "process: the article has no title or no body"
    assert failed.body_html == ""
    for article in (good, also_good):
        row = fresh(article)
        assert row.status == ArticleStatus.PUBLISHING and row.body_html and row.last_error == ""


def test_process_skips_rows_held_by_another_claim_or_no_longer_publishing():
    token = new_token()
    mine = claimed(token)
    other = claimed(new_token())
    released = claimed(token)
    services.article_unschedule(article_id=released.pk)

    assert step_process(article_ids=[mine.pk, other.pk, released.pk], token=token) == [mine.pk]
    assert fresh(other).body_html == ""
    assert fresh(released).body_html == "" and fresh(released).status == ArticleStatus.DRAFT


def test_an_editor_taking_the_article_back_while_it_renders_keeps_the_render_out(monkeypatch):
    """The write-back is conditioned on the claim too, not only the read."""
    from publisher import pipeline, rendering

    token = new_token()
    taken_back, kept = claimed(token, title="Taken back"), claimed(token, title="Kept")
    seen_runs = []

    def render_while_the_editor_acts(body):
        seen_runs.append(fresh(kept).unfinished_runs)
        if Article.objects.filter(pk=taken_back.pk, status=ArticleStatus.PUBLISHING).exists():
            services.article_unschedule(article_id=taken_back.pk)
        return rendering.render_body(body)

    monkeypatch.setattr(pipeline, "render_body", render_while_the_editor_acts)
    result = step_process(article_ids=[taken_back.pk, kept.pk], token=token)

    assert kept.pk in result
    assert fresh(taken_back).status == ArticleStatus.DRAFT
    assert fresh(taken_back).body_html == ""
    assert fresh(kept).body_html != ""
    assert seen_runs and set(seen_runs) == {1}  # marked as started while the step runs...
    assert fresh(kept).unfinished_runs == 0  # ...and cleared when it finishes


def test_process_twice_gives_the_same_result():
    token = new_token()
    article = claimed(token)
    first = step_process(article_ids=[article.pk], token=token)
    html = fresh(article).body_html
    assert step_process(article_ids=[article.pk], token=token) == first == [article.pk]
    assert fresh(article).body_html == html


def test_a_chunk_that_keeps_killing_its_worker_is_split_for_the_sweeper():
    token = new_token()
    suspect = claimed(token, unfinished_runs=3)
    mate = claimed(token)
    assert step_process(article_ids=[suspect.pk, mate.pk], token=token) == []
    for article in (suspect, mate):
        row = fresh(article)
        assert row.status == ArticleStatus.PUBLISHING and row.unfinished_runs == 0
        assert row.lease_expires_at <= timezone.now()  # handed to the sweeper at once


def test_a_single_article_that_keeps_killing_its_worker_fails_as_poison():
    token = new_token()
    poison = claimed(token, unfinished_runs=3)
    assert step_process(article_ids=[poison.pk], token=token) == []
    row = fresh(poison)
    assert row.status == ArticleStatus.FAILED
    assert "killed the worker process 3 times" in row.last_error


# --- step_thumbnails -----------------------------------------------------------------------------------------

def test_thumbnail_is_a_jpeg_within_400_by_400(media):
    token = new_token()
    article = claimed(token)
    article.image.save("photo.png", ContentFile(png(1000, 600)), save=True)

    assert step_thumbnails(article_ids=[article.pk], token=token) == [article.pk]

    row = fresh(article)
    assert row.thumbnail.name == f"thumbnails/article-{article.pk}.jpg"
    assert (media / row.thumbnail.name).is_file()
    with row.thumbnail.open("rb") as f, Image.open(f) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (400, 240)  # aspect ratio kept


def test_thumbnail_of_a_transparent_png_and_a_small_image(media):
    token = new_token()
    transparent, small = claimed(token), claimed(token)
    transparent.image.save("alpha.png", ContentFile(png(500, 800, "RGBA")), save=True)
    small.image.save("small.png", ContentFile(png(40, 30)), save=True)

    assert sorted(step_thumbnails(article_ids=[transparent.pk, small.pk], token=token)) == [transparent.pk, small.pk]

    with fresh(transparent).thumbnail.open("rb") as f, Image.open(f) as thumb:
        assert (thumb.format, thumb.mode) == ("JPEG", "RGB")
        assert thumb.size[0] <= 400 and thumb.size[1] == 400
    with fresh(small).thumbnail.open("rb") as f, Image.open(f) as thumb:
        assert thumb.size == (40, 30)  # never enlarged


def test_a_rerun_overwrites_the_thumbnail_instead_of_piling_up_copies(media):
    token = new_token()
    article = claimed(token)
    article.image.save("photo.png", ContentFile(png(800, 800)), save=True)
    step_thumbnails(article_ids=[article.pk], token=token)
    step_thumbnails(article_ids=[article.pk], token=token)
    assert fresh(article).thumbnail.name == f"thumbnails/article-{article.pk}.jpg"
    assert [p.name for p in (media / "thumbnails").iterdir()] == [f"article-{article.pk}.jpg"]


def test_an_editor_taking_the_article_back_while_its_thumbnail_is_made(monkeypatch, media):
    from publisher import pipeline, rendering

    token = new_token()
    article = claimed(token)
    article.image.save("photo.png", ContentFile(png(100, 100)), save=True)

    def thumbnail_while_the_editor_acts(source, size):
        services.article_unschedule(article_id=article.pk)
        return rendering.make_thumbnail(source, size)

    monkeypatch.setattr(pipeline, "make_thumbnail", thumbnail_while_the_editor_acts)
    assert step_thumbnails(article_ids=[article.pk], token=token) == []
    row = fresh(article)
    assert row.status == ArticleStatus.DRAFT and not row.thumbnail


def test_articles_without_an_image_pass_through():
    token = new_token()
    article = claimed(token)
    assert step_thumbnails(article_ids=[article.pk], token=token) == [article.pk]
    assert not fresh(article).thumbnail


def test_a_corrupt_image_fails_only_that_article(media):
    token = new_token()
    corrupt, good, plain = claimed(token, title="Corrupt"), claimed(token, title="Good"), claimed(token, title="Plain")
    corrupt.image.save("broken.png", ContentFile(b"\x89PNG\r\n\x1a\n this is not really a png"), save=True)
    good.image.save("good.png", ContentFile(png(900, 900)), save=True)

    assert sorted(step_thumbnails(article_ids=[corrupt.pk, good.pk, plain.pk], token=token)) == [good.pk, plain.pk]

    row = fresh(corrupt)
    assert row.status == ArticleStatus.FAILED
    assert row.last_error.startswith("thumbnail: image could not be read:")
    assert not row.thumbnail
    assert fresh(good).status == ArticleStatus.PUBLISHING and fresh(good).thumbnail
    assert fresh(plain).status == ArticleStatus.PUBLISHING


def test_an_image_missing_from_storage_fails_only_that_article(media):
    token = new_token()
    missing, good = claimed(token), claimed(token)
    missing.image.save("gone.png", ContentFile(png(10, 10)), save=True)
    default_storage.delete(missing.image.name)

    assert step_thumbnails(article_ids=[missing.pk, good.pk], token=token) == [good.pk]
    row = fresh(missing)
    assert row.status == ArticleStatus.FAILED and row.last_error.startswith("thumbnail: ")


def taken_back_with_an_image(token: str) -> Article:
    """An article claimed under `token`, with an image, that an editor then unscheduled."""
    article = claimed(token)
    article.image.save("photo.png", ContentFile(png(100, 100)), save=True)
    services.article_unschedule(article_id=article.pk)
    return article


def test_thumbnails_skip_rows_this_claim_no_longer_holds(media):
    token = new_token()
    article = taken_back_with_an_image(token)
    assert step_thumbnails(article_ids=[article.pk], token=token) == []
    assert not fresh(article).thumbnail


# --- step_make_live -------------------------------------------------------------------------------------------

def test_make_live_flips_only_rows_under_the_token():
    token = new_token()
    mine = claimed(token)
    other = claimed(new_token())
    scheduled = make_article(title="S", body="B", status=ArticleStatus.SCHEDULED,
                             publish_at=timezone.now() - timedelta(seconds=5))

    published, wait = step_make_live(article_ids=[mine.pk, other.pk, scheduled.pk], token=token)

    assert (published, wait) == ([mine.pk], 0.0)
    row = fresh(mine)
    assert row.status == ArticleStatus.PUBLISHED
    assert row.published_at >= row.publish_at
    assert row.published_at <= timezone.now() + timedelta(seconds=1)
    assert row.lease_expires_at is None
    assert fresh(other).status == ArticleStatus.PUBLISHING and fresh(other).published_at is None
    assert fresh(scheduled).status == ArticleStatus.SCHEDULED


def test_make_live_twice_returns_the_same_ids_and_changes_nothing():
    token = new_token()
    a, b = claimed(token), claimed(token, offset=-2)
    first = step_make_live(article_ids=[a.pk, b.pk], token=token)
    stamps = {pk: fresh(Article(pk=pk)).published_at for pk in (a.pk, b.pk)}
    updated = {pk: fresh(Article(pk=pk)).updated_at for pk in (a.pk, b.pk)}

    second = step_make_live(article_ids=[a.pk, b.pk], token=token)

    assert sorted(first[0]) == sorted(second[0]) == sorted([a.pk, b.pk])
    assert second[1] == 0.0
    assert {pk: fresh(Article(pk=pk)).published_at for pk in (a.pk, b.pk)} == stamps
    assert {pk: fresh(Article(pk=pk)).updated_at for pk in (a.pk, b.pk)} == updated


def test_lateness_is_recorded_when_going_live_late():
    token = new_token()
    late = claimed(token, offset=-120)
    step_make_live(article_ids=[late.pk], token=token)
    assert fresh(late).lateness >= timedelta(seconds=120)


def test_an_editor_taking_the_article_back_mid_flight_makes_every_step_a_no_op(media):
    token = new_token()
    article = taken_back_with_an_image(token)

    assert step_process(article_ids=[article.pk], token=token) == []
    assert step_thumbnails(article_ids=[article.pk], token=token) == []
    assert step_make_live(article_ids=[article.pk], token=token) == ([], 0.0)

    row = fresh(article)
    assert row.status == ArticleStatus.DRAFT
    assert (row.body_html, row.published_at, row.last_error) == ("", None, "")
    assert not row.thumbnail


def test_a_reschedule_mid_flight_leaves_the_new_claim_alone(no_broker, django_capture_on_commit_callbacks):
    token = new_token()
    article = claimed(token)
    with django_capture_on_commit_callbacks(execute=True):
        services.article_schedule(article_id=article.pk, publish_at=timezone.now() + timedelta(seconds=2))
    new = fresh(article)
    assert new.status == ArticleStatus.PUBLISHING and str(new.claim_token) != token  # claimed again at once

    assert step_make_live(article_ids=[article.pk], token=token) == ([], 0.0)
    assert fresh(article).status == ArticleStatus.PUBLISHING
    assert fresh(article).published_at is None


def test_an_unpublish_time_that_passed_before_going_live_expires_the_article():
    token = new_token()
    gone = claimed(token, offset=-60, unpublish=-1)
    live = claimed(token, offset=-60, unpublish=3600)

    published, wait = step_make_live(article_ids=[gone.pk, live.pk], token=token)

    assert (published, wait) == ([live.pk], 0.0)
    row = fresh(gone)
    assert row.status == ArticleStatus.EXPIRED
    assert row.published_at is None
    assert row.last_error == "Not published: its unpublish time passed before it could go live."
    assert fresh(live).status == ArticleStatus.PUBLISHED


def test_a_row_not_yet_due_is_left_and_a_positive_wait_returned():
    token = new_token()
    due = claimed(token, offset=-5)
    not_yet = claimed(token, offset=3)

    published, wait = step_make_live(article_ids=[due.pk, not_yet.pk], token=token)

    assert published == [due.pk]
    assert 0 < wait <= 5.0
    assert wait <= 3.0
    row = fresh(not_yet)
    assert (row.status, row.published_at) == (ArticleStatus.PUBLISHING, None)
    assert row.lease_expires_at is not None


def test_the_wait_is_capped_and_floored():
    token = new_token()
    far = claimed(token, offset=60)
    assert step_make_live(article_ids=[far.pk], token=token) == ([], 5.0)

    # Due by this host's clock but not by the database's (the host runs ahead): retry shortly.
    token = new_token()
    skewed = claimed(token, offset=30)
    with time_machine.travel(timezone.now() + timedelta(seconds=60), tick=True):
        assert step_make_live(article_ids=[skewed.pk], token=token) == ([], 0.1)
    assert fresh(skewed).status == ArticleStatus.PUBLISHING


# --- dispatch.chunks ------------------------------------------------------------------------------------------

BASE = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def at(ms: float) -> datetime:
    return BASE + timedelta(milliseconds=ms)


def ids(parts):
    return [[pk for pk, _ in part] for part in parts]


def test_chunks_of_at_most_size():
    due = [(i, at(0)) for i in range(7)]
    assert ids(chunks(due, size=3, window=1.0)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert ids(chunks(due, size=1, window=1.0)) == [[i] for i in range(7)]
    assert ids(chunks(due, size=50, window=1.0)) == [list(range(7))]


def test_chunks_split_on_the_window_measured_from_the_chunk_start():
    due = [(1, at(0)), (2, at(10)), (3, at(20)), (4, at(25)), (5, at(40)), (6, at(1000))]
    # 25 ms is beyond 20 ms of the first (0 ms) although only 5 ms after its neighbour.
    assert ids(chunks(due, size=50, window=0.02)) == [[1, 2, 3], [4, 5], [6]]


def test_chunks_with_a_zero_window_group_only_equal_times():
    due = [(1, at(0)), (2, at(0)), (3, at(1)), (4, at(1))]
    assert ids(chunks(due, size=50, window=0)) == [[1, 2], [3, 4]]


def test_chunks_keep_every_item_in_order_and_pairs_intact():
    due = [(i, at(i * 7)) for i in range(100)]
    parts = chunks(due, size=4, window=0.02)
    assert [item for part in parts for item in part] == due
    assert all(len(part) <= 4 for part in parts)
    assert all((part[-1][1] - part[0][1]).total_seconds() <= 0.02 for part in parts)


def test_chunks_of_nothing():
    assert chunks([], size=50, window=0.02) == []


def test_a_short_notice_wave_is_prepared_in_full_chunks_and_flipped_per_due_time():
    # One every 50 ms: each due time its own flip, the chunks full whatever the times.
    due = [(i, at(50 * i)) for i in range(7)]
    assert [ids(part) for part in plan(due, size=3, window=0.02)] == [
        [[0], [1], [2]], [[3], [4], [5]], [[6]]]


def test_a_plan_groups_flips_within_the_window_inside_each_chunk():
    due = [(1, at(0)), (2, at(10)), (3, at(20)), (4, at(25)), (5, at(40)), (6, at(1000)), (7, at(1000))]
    assert [ids(part) for part in plan(due, size=4, window=0.02)] == [[[1, 2, 3], [4]], [[5], [6, 7]]]
    # A flip group never spans two chunks: 3 and 4 share a due time but not a chunk.
    same = [(1, at(0)), (2, at(0)), (3, at(0)), (4, at(0)), (5, at(5))]
    assert [ids(part) for part in plan(same, size=3, window=0.02)] == [[[1, 2, 3]], [[4, 5]]]


def test_a_plan_of_one_article_chunks_and_of_nothing():
    due = [(1, at(0)), (2, at(0)), (3, at(100))]
    assert [ids(part) for part in plan(due, size=1, window=0.02)] == [[[1]], [[2]], [[3]]]
    assert plan([], size=50, window=0.02) == []


def test_scheduling_the_flips_sends_one_per_group_of_the_articles_still_in_flight(monkeypatch):
    sent = []
    monkeypatch.setattr(dispatch, "send_flips", lambda **kwargs: sent.append(kwargs))
    flips = [[[1, 2], at(0).isoformat()], [[3], at(50).isoformat()], [[4], at(100).isoformat()]]
    # 2 and 3 failed or were taken back by the step before: 3's group is not sent at all.
    assert step_schedule_flips(article_ids=[1, 4], token="t", flips=flips) == 2
    assert sent == [{"token": "t", "flips": [([1], at(0)), ([4], at(100))]}]
    assert step_schedule_flips(article_ids=[], token="t", flips=flips) == 0
    assert len(sent) == 1


def test_the_reused_markdown_converter_carries_nothing_from_one_article_to_the_next():
    from publisher.rendering import render_body

    with_note, _, _ = render_body("Claim[^1].\n\n[^1]: The source.")
    plain, excerpt, words = render_body("Just text.")
    assert "footnote" in with_note and "The source." in with_note
    assert plain == "<p>Just text.</p>" and excerpt == "Just text." and words == 2
