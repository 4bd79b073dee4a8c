"""The pre-flight of a release with real processes: beat's scan hands the release to the worker
as it enters the window (shortened to 105 s here); a member with a broken image makes it *at risk*
well before its time and its scheduler gets one e-mail; the member fixed, the release passes and
goes live at its time with the output the pre-flight prepared."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.utils import timezone

from publisher import releases
from publisher.models import Article, ArticleEvent, ArticleEventAction, ArticleStatus, Release, ReleaseEvent
from publisher.states import ReleaseStatus
from scheduling.models import Heartbeat
from tests import factories
from tests.factories import make_article, make_user
from tests.support.images import broken_png, png
from tests.support.mail import read_mailbox
from tests.support.waiting import wait_for

pytestmark = pytest.mark.integration

MINUTES = "0.75"  # the pre-flight window of the worker and beat (shortened from 30)
WINDOW = timedelta(minutes=float(MINUTES))
LOOKAHEAD = 3  # the release is claimed this far ahead (the test process and the subprocesses agree)


def history(release) -> list[str]:
    return list(ReleaseEvent.objects.filter(release=release, action__in=["at_risk", "preflight_passed"])
                .order_by("id").values_list("action", flat=True))


def at_risk_mails(mailbox) -> list[tuple[str, str]]:
    return [(to, subject) for to, subject in read_mailbox(mailbox)
            if subject.startswith("At risk: release Embargo package (due ")]


def test_a_release_with_a_broken_image_is_at_risk_ahead_and_its_scheduler_mailed_once(processes, mailbox, settings):
    factories.newsroom_groups()
    editor = make_user("edith", "Editors", email="edith@example.com")
    settings.PUBLISHER_RELEASE_LOOKAHEAD = LOOKAHEAD
    processes.env.update({"PUBLISHER_RELEASE_LOOKAHEAD": str(LOOKAHEAD), "PUBLISHER_PREFLIGHT_MINUTES": MINUTES})
    call_command("sync_schedules")
    processes.worker()
    processes.beat()

    # This process's window is 0 (settings.test): scheduling here dispatches no check; the
    # worker's scan finds the release as it enters its window.
    release = releases.release_create(name="Embargo package", actor=editor)
    good = make_article(title="Harbour", body="*Harbour*, the story.", image_alt="Boats leaving the harbour")
    good.image.save("harbour.png", ContentFile(png(1200, 800)), save=True)
    broken = make_article(title="Broken photo", body="The story.", image_alt="A photo")
    broken.image.save("broken.png", ContentFile(broken_png()), save=True)
    releases.release_add_members(release_id=release.pk, article_ids=[good.pk, broken.pk], actor=editor)
    release = releases.release_schedule(release_id=release.pk, publish_at=timezone.now() + timedelta(seconds=55),
                                        actor=editor)

    wait_for(lambda: Release.objects.get(pk=release.pk).at_risk_reason, timeout=60,
             message="the release to be marked at risk")
    risky = Release.objects.get(pk=release.pk)
    member = Article.objects.get(pk=broken.pk)
    assert risky.status == ReleaseStatus.SCHEDULED and member.status == ArticleStatus.IN_RELEASE
    assert member.at_risk_reason.startswith("The image cannot be used: image could not be read: cannot identify image")
    assert risky.at_risk_reason == f"“Broken photo” (#{broken.pk}): {member.at_risk_reason}"
    found = ReleaseEvent.objects.get(release=release, action="at_risk")
    assert found.actor is None and found.note == risky.at_risk_reason
    # Not before it entered the window (a scan interval and a second of slack), and well before its time.
    assert found.created_at >= risky.publish_at - WINDOW - timedelta(seconds=2)
    assert risky.publish_at - found.created_at > timedelta(seconds=30)
    assert ArticleEvent.objects.filter(article=broken, action=ArticleEventAction.AT_RISK).count() == 1
    wait_for(lambda: at_risk_mails(mailbox), timeout=30, message="the scheduler's at-risk e-mail")
    # Scans go on meanwhile (every second): the same state is neither recorded nor mailed again.
    later = timezone.now() + timedelta(seconds=3)
    wait_for(lambda: Heartbeat.objects.get(name="scan").last_seen_at > later, timeout=30,
             message="a few more scans")
    assert at_risk_mails(mailbox) == [("edith@example.com", at_risk_mails(mailbox)[0][1])]
    assert history(release) == ["at_risk"]

    # Fixed (a new image, saved as the admin saves an edit): the next scan checks the release again.
    member.image.save("fixed.png", ContentFile(png(640, 480)), save=False)
    member.save(update_fields=["image", "updated_at"])
    wait_for(lambda: history(release) == ["at_risk", "preflight_passed"], timeout=30,
             message="the fixed release to pass")
    assert Release.objects.get(pk=release.pk).at_risk_reason == ""
    # A marker only the prepared output holds: rendering again at the release's preparation would replace it.
    Article.objects.filter(pk=good.pk).update(body_html="<p>Prepared ahead</p>")

    wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PUBLISHED, timeout=90,
             message="the release to go live")
    live = {a.pk: a for a in Article.objects.filter(release=release)}
    assert {a.status for a in live.values()} == {ArticleStatus.PUBLISHED}
    assert live[good.pk].body_html == "<p>Prepared ahead</p>"
    assert live[good.pk].thumbnail.name.startswith(f"thumbnails/article-{good.pk}-preflight")
    assert "process: 2 articles prepared by the pre-flight, not rendered again" in processes.log("worker")
    assert len(at_risk_mails(mailbox)) == 1
    assert not [s for _, s in read_mailbox(mailbox) if s.startswith("Release blocked")]
