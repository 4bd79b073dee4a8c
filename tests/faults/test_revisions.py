"""Row 29: a change to a live article (publisher.revisions) survives its worker dying between
the preparation and the apply: applied exactly once."""

import signal
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone

from publisher import revisions
from publisher.models import Article, ArticleEvent, ArticleRevision, ArticleStatus
from publisher.states import RevisionStatus
from publisher.webhooks.models import Delivery, Endpoint
from tests.support.waiting import wait_for


def test_sigkill_worker_after_a_change_is_prepared_before_it_is_applied(processes, tmp_path, short_lease):
    Endpoint.objects.create(url="https://hooks.example.com/in", events=["updated"])
    editor = get_user_model().objects.create_user("ed", email="ed@example.com", password="x")
    now = timezone.now()
    article = Article.objects.create(title="Old", body="Old text.", slug="old", status=ArticleStatus.PUBLISHED,
                                     publish_at=now - timedelta(hours=1), published_at=now - timedelta(hours=1),
                                     fanned_out_at=now - timedelta(hours=1), body_html="<p>Old text.</p>")
    hold = tmp_path / "hold-apply"
    hold.touch()
    call_command("sync_schedules")
    processes.worker("worker", PUBLISHER_FAULTS=f"apply_revision:hold:{hold}", **short_lease)
    processes.beat(**short_lease)

    revision = revisions.revision_create(article_id=article.pk, title="New", body="New *text*.", image_alt="",
                                         publish_at=timezone.now() + timedelta(seconds=2), actor=editor)
    first_token = ArticleRevision.objects.get(pk=revision.pk).claim_token
    # Prepared (rendered into the revision), and the apply step held at its barrier.
    wait_for(lambda: hold.with_name(hold.name + ".pid").exists(), timeout=60, message="the apply step to be held")
    held = ArticleRevision.objects.get(pk=revision.pk)
    assert held.status == RevisionStatus.PUBLISHING and held.body_html == "<p>New <em>text</em>.</p>"
    assert Article.objects.get(pk=article.pk).title == "Old"

    processes.stop("worker", signal.SIGKILL)  # main process and pool children
    hold.unlink()
    assert Article.objects.get(pk=article.pk).title == "Old", "nothing applied by the dead worker"
    processes.worker("worker-2", **short_lease)

    wait_for(lambda: ArticleRevision.objects.get(pk=revision.pk).status == RevisionStatus.APPLIED, timeout=90,
             message="the change applied after the crash")
    revision.refresh_from_db()
    article.refresh_from_db()
    assert (article.title, article.body_html, article.revised_at) == ("New", "<p>New <em>text</em>.</p>",
                                                                      revision.applied_at)
    assert revision.applied_at >= revision.publish_at
    # Exactly once: one audit event, one webhook, whichever claim applied it.
    assert ArticleEvent.objects.filter(article=article, action="change_applied").count() == 1
    assert list(Delivery.objects.values_list("event", "article_id")) == [("updated", article.pk)]
    if revision.attempts >= 2:
        assert revision.claim_token != first_token  # the sweeper's claim (Redis: after the lease)
    else:
        assert revision.claim_token == first_token  # RabbitMQ handed the message back at once
