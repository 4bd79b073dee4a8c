"""Update mails: a change to a live article with *Notify subscribers of this update* mails each
subscriber once for that change (Notification.revision, one per (revision, subscriber)), apart
from the article's own mail; a change without the tick mails no one. Called in-process here; the
real worker, beat and SMTP server run it in tests/integration/test_update_mails.py."""

import email
import email.header
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from publisher import dispatch, revisions, selectors
from publisher.models import ArticleRevision, ArticleStatus, Notification, NotificationClaim, NotificationStatus
from publisher.notifications import (notifications_fan_out, notifications_recover_fan_outs,
                                     notifications_resend_interrupted, notifications_send)
from publisher.states import RevisionStatus
from publisher.subscriptions import unsubscribe_url
from tests import factories
from tests.factories import make_article, make_subscriber, make_user
from tests.support.admin import change_url, form_data, texts

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("notification_settings")]


@pytest.fixture
def claimed(monkeypatch):
    """The revision services' dispatches (the claim's chain, failure alerts), not sent."""
    calls = []
    monkeypatch.setattr(dispatch, "revisions_claimed", lambda **kwargs: calls.append(("claimed", kwargs)))
    monkeypatch.setattr(dispatch, "revision_failure_alerts", lambda **kwargs: calls.append(("alert", kwargs)))
    return calls


@pytest.fixture
def live(db):
    went_live = timezone.now() - timedelta(hours=1)
    return make_article(title="Harbour at dawn", body="Old text.", status=ArticleStatus.PUBLISHED,
                        publish_at=went_live, published_at=went_live, slug="harbour-at-dawn",
                        body_html="<p>Old text.</p>", excerpt="Old text.", word_count=2)


def apply_change(article, *, notify: bool, title: str = "Harbour at dawn, corrected",
                 body: str = "Corrected text.") -> ArticleRevision:
    """Schedule a change, claim it when due, prepare and apply it as the pipeline does; the
    apply's after-commit callbacks run (dispatch is the test's)."""
    revision = revisions.revision_create(article_id=article.pk, title=title, body=body, image_alt="",
                                         publish_at=timezone.now() + timedelta(minutes=5),
                                         notify_subscribers=notify, actor=None)
    ArticleRevision.objects.filter(pk=revision.pk).update(publish_at=timezone.now() - timedelta(milliseconds=10))
    claim = revisions.revisions_claim_due(lookahead=0)
    assert claim is not None and claim.article_ids == [revision.pk]
    assert revisions.step_process(revision_ids=[revision.pk], token=claim.token) == [revision.pk]
    assert revisions.step_thumbnails(revision_ids=[revision.pk], token=claim.token) == [revision.pk]
    assert revisions.step_apply(revision_ids=[revision.pk], token=claim.token) == ([revision.pk], 0.0)
    revision.refresh_from_db()
    assert revision.status == RevisionStatus.APPLIED
    return revision


def rows(article) -> list[tuple[str, int | None, str]]:
    return sorted(Notification.objects.filter(article=article)
                  .values_list("subscriber__email", "revision_id", "status"), key=lambda row: (row[1] or 0, row[0]))


# --- the apply starts the update mail only when asked --------------------------------------------

def test_a_ticked_change_starts_its_update_fan_out_when_it_goes_live(live, claimed, enqueued,
                                                                     django_capture_on_commit_callbacks):
    make_subscriber("a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        revision = apply_change(live, notify=True)
    assert enqueued == [("fan_out", {"article_id": live.pk, "revision_id": revision.pk})]
    assert revision.notify_subscribers is True and revision.fanned_out_at is None


def test_a_change_without_the_tick_mails_no_one(live, claimed, enqueued, django_capture_on_commit_callbacks,
                                                mailoutbox):
    make_subscriber("a@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        revision = apply_change(live, notify=False)
    assert enqueued == []
    # Not even a stray fan-out or sweep makes rows for it.
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=live.pk, revision_id=revision.pk) == 0
    ArticleRevision.objects.filter(pk=revision.pk).update(applied_at=timezone.now() - timedelta(hours=1))
    assert notifications_recover_fan_outs(deadline=60) == 0
    assert enqueued == []
    assert Notification.objects.count() == 0
    assert mailoutbox == []


# --- fan-out and sending, keyed by (article, revision) --------------------------------------------

def test_the_update_fan_out_makes_one_row_per_subscriber_apart_from_the_articles_own(
        live, claimed, enqueued, django_capture_on_commit_callbacks):
    a, b = make_subscriber("a@example.com"), make_subscriber("b@example.com")
    make_subscriber("gone@example.com", active=False)
    # The article's own mail went out before the change.
    Notification.objects.create(article=live, subscriber=a, status=NotificationStatus.SENT,
                                expires_at=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False):
        revision = apply_change(live, notify=True)
    enqueued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_fan_out(article_id=live.pk, revision_id=revision.pk) == 2
    assert rows(live) == [("a@example.com", None, "sent"), ("a@example.com", revision.pk, "pending"),
                          ("b@example.com", revision.pk, "pending")]
    assert enqueued == [("send", {"article_id": live.pk, "revision_id": revision.pk,
                                  "first_subscriber_id": a.pk, "last_subscriber_id": b.pk})]
    revision.refresh_from_db()
    live.refresh_from_db()
    assert revision.fanned_out_at is not None
    assert live.fanned_out_at is None, "the article's own fan-out marker is not the update's"

    # Exactly once per (revision, subscriber): a re-run adds nothing and resets nothing.
    Notification.objects.filter(revision=revision).update(status=NotificationStatus.SENT)
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=live.pk, revision_id=revision.pk)
    assert Notification.objects.filter(revision=revision).count() == 2
    assert set(Notification.objects.filter(revision=revision).values_list("status", flat=True)) == {"sent"}


def test_the_database_allows_one_row_per_article_and_one_per_update_per_subscriber(live, claimed):
    subscriber = make_subscriber("a@example.com")
    first = apply_change(live, notify=True)
    second = apply_change(live, notify=True, title="Harbour at dawn, again", body="Again.")
    expires_at = timezone.now() + timedelta(hours=1)
    for revision in (None, first, second):
        Notification.objects.create(article=live, subscriber=subscriber, revision=revision, expires_at=expires_at)
    for revision in (None, first, second):
        with pytest.raises(IntegrityError), transaction.atomic():
            Notification.objects.create(article=live, subscriber=subscriber, revision=revision, expires_at=expires_at)
    assert Notification.objects.filter(article=live, subscriber=subscriber).count() == 3


def test_the_update_mail_says_so_with_the_applied_content_and_the_usual_headers(live, claimed, mailoutbox,
                                                                               django_capture_on_commit_callbacks):
    a, b = make_subscriber("a@example.com"), make_subscriber("b@example.com")
    original = Notification.objects.create(article=live, subscriber=a, expires_at=timezone.now() + timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=False):
        revision = apply_change(live, notify=True, body="Corrected *text*.")
        notifications_fan_out(article_id=live.pk, revision_id=revision.pk)

    assert notifications_send(article_id=live.pk, revision_id=revision.pk,
                              first_subscriber_id=a.pk, last_subscriber_id=b.pk) == (2, 0)
    assert sorted(message.to[0] for message in mailoutbox) == ["a@example.com", "b@example.com"]
    for message in mailoutbox:
        parsed = email.message_from_bytes(message.message().as_bytes())
        subscriber = a if message.to == ["a@example.com"] else b
        assert str(email.header.make_header(email.header.decode_header(parsed["Subject"]))) == (
            "Updated: Harbour at dawn, corrected")
        assert parsed["List-Unsubscribe"] == f"<{unsubscribe_url(subscriber.pk)}>"
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "This article was updated since we last wrote to you." in message.body
        assert "Corrected text." in message.body and "Old text." not in message.body
        assert unsubscribe_url(subscriber.pk) in message.body
        (html, _), = message.alternatives
        assert "This article was updated since we last wrote to you." in html
    # The article's own pending row is another mail: the update's sender leaves it alone.
    original.refresh_from_db()
    assert original.status == NotificationStatus.PENDING
    assert set(Notification.objects.filter(revision=revision).values_list("status", flat=True)) == {"sent"}
    assert NotificationClaim.objects.count() == 0

    # A redelivered send task mails nothing twice.
    assert notifications_send(article_id=live.pk, revision_id=revision.pk,
                              first_subscriber_id=a.pk, last_subscriber_id=b.pk) == (0, 0)
    assert len(mailoutbox) == 2


def test_the_articles_own_mail_is_still_new_and_leaves_update_rows_alone(live, claimed, mailoutbox,
                                                                         django_capture_on_commit_callbacks):
    a = make_subscriber("a@example.com")
    with django_capture_on_commit_callbacks(execute=False):
        revision = apply_change(live, notify=True)
        notifications_fan_out(article_id=live.pk, revision_id=revision.pk)
    Notification.objects.create(article=live, subscriber=a, expires_at=timezone.now() + timedelta(hours=1))

    assert notifications_send(article_id=live.pk, first_subscriber_id=a.pk, last_subscriber_id=a.pk) == (1, 0)
    assert [message.subject for message in mailoutbox] == ["New: Harbour at dawn, corrected"]
    assert rows(live) == [("a@example.com", None, "sent"), ("a@example.com", revision.pk, "pending")]


# --- the sweeper, resend and the delivery panel ----------------------------------------------------

def test_the_sweeper_re_dispatches_an_update_fan_out_that_did_not_finish(live, claimed, enqueued, settings,
                                                                          django_capture_on_commit_callbacks):
    make_subscriber("a@example.com")
    with django_capture_on_commit_callbacks(execute=False):  # the fan-out message is lost
        revision = apply_change(live, notify=True)
    Notification.objects.all().delete()
    live.__class__.objects.filter(pk=live.pk).update(fanned_out_at=timezone.now())  # the article's own is done

    assert notifications_recover_fan_outs(deadline=60) == 0, "not yet past the deadline"
    ArticleRevision.objects.filter(pk=revision.pk).update(applied_at=timezone.now() - timedelta(seconds=120))
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_fan_outs(deadline=60) == 1
    assert enqueued == [("fan_out", {"article_id": live.pk, "revision_id": revision.pk})]
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_recover_fan_outs(deadline=60) == 0, "once per deadline"

    # Once the fan-out finished, the sweeper leaves it alone for good.
    with django_capture_on_commit_callbacks(execute=True):
        notifications_fan_out(article_id=live.pk, revision_id=revision.pk)
    ArticleRevision.objects.filter(pk=revision.pk).update(fan_out_retried_at=timezone.now() - timedelta(hours=1))
    assert notifications_recover_fan_outs(deadline=60) == 0


def test_the_delivery_panel_counts_the_articles_mail_and_each_update_apart(live, claimed, enqueued,
                                                                          django_capture_on_commit_callbacks):
    a, b = make_subscriber("a@example.com"), make_subscriber("b@example.com")
    revision = apply_change(live, notify=True)
    expires_at = timezone.now() + timedelta(hours=1)
    Notification.objects.create(article=live, subscriber=a, status=NotificationStatus.SENT, expires_at=expires_at)
    Notification.objects.create(article=live, subscriber=b, status=NotificationStatus.SENT, expires_at=expires_at)
    Notification.objects.create(article=live, subscriber=a, revision=revision, status=NotificationStatus.SENT,
                                expires_at=expires_at)
    Notification.objects.create(article=live, subscriber=b, revision=revision, status=NotificationStatus.INTERRUPTED,
                                last_error="cut", expires_at=expires_at)

    delivery = selectors.article_delivery(article_id=live.pk)
    assert (delivery.total, delivery.counts["sent"], delivery.counts["interrupted"]) == (2, 2, 0)
    (update,) = delivery.updates
    assert (update.revision_id, update.total, update.counts["sent"], update.counts["interrupted"]) == (
        revision.pk, 2, 1, 1)
    assert delivery.interrupted == 1
    assert delivery.problems == [(f"Update (change #{revision.pk})", "b@example.com", "interrupted", "cut")]
    assert delivery.more_problems == 0

    # Resend takes the update's interrupted row back to its own sender.
    enqueued.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_resend_interrupted(article_id=live.pk) == 1
    assert Notification.objects.get(revision=revision, subscriber=b).status == NotificationStatus.PENDING
    assert enqueued == [("send", {"article_id": live.pk, "revision_id": revision.pk,
                                  "first_subscriber_id": b.pk, "last_subscriber_id": b.pk})]


# --- the admin: the box on a live article's change ------------------------------------------------

@pytest.mark.parametrize("ticked", [True, False])
def test_the_live_article_form_stores_the_notify_box_and_the_history_shows_it(client, live, claimed, ticked):
    factories.newsroom_groups()
    client.force_login(make_user("edith", "Publishers"))
    page = client.get(change_url(live)).content.decode()
    assert "Notify subscribers of this update" in page
    assert 'name="change_notify"' in page and 'name="change_notify" checked' not in page, "off by default"

    when = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    local = timezone.localtime(when)
    data = dict(title="Harbour at dawn, corrected", body="Corrected text.", slug="harbour-at-dawn",
                change_when="schedule",
                change_publish_at_0=local.strftime("%Y-%m-%d"), change_publish_at_1=local.strftime("%H:%M:%S"),
                change_publish_at_2="")
    if ticked:
        data["change_notify"] = "on"
    response = client.post(change_url(live), form_data(**data), follow=True)
    assert response.redirect_chain, (texts(response), response.context and response.context.get("errors"))
    revision = ArticleRevision.objects.get()
    assert (revision.status, revision.notify_subscribers) == (RevisionStatus.SCHEDULED, ticked)
    page = client.get(change_url(live)).content.decode()
    assert ("Subscribers will be notified" if ticked else "Subscribers not notified") in page


def test_the_notifications_list_says_which_mail_each_row_is(admin_client, live, claimed):
    subscriber = make_subscriber("a@example.com")
    revision = apply_change(live, notify=True)
    expires_at = timezone.now() + timedelta(hours=1)
    Notification.objects.create(article=live, subscriber=subscriber, expires_at=expires_at)
    Notification.objects.create(article=live, subscriber=subscriber, revision=revision, expires_at=expires_at)
    page = admin_client.get(reverse("admin:publisher_notification_changelist")).content.decode()
    assert '<td class="field-mail_column">Article</td>' in page
    assert f'<td class="field-mail_column">Update (change #{revision.pk})</td>' in page


def test_the_migration_left_a_validated_foreign_key_and_two_valid_partial_unique_indexes(db):
    """0015 builds them without long locks (NOT VALID then VALIDATE, CONCURRENTLY): check that
    what it left is whole — a failed concurrent build leaves an INVALID index behind."""
    if connection.vendor != "postgresql":
        pytest.skip("constraint validity and index validity: PostgreSQL catalogs")
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.convalidated, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                       "WHERE c.conrelid = 'publisher_notification'::regclass AND c.contype = 'f' "
                       "AND pg_get_constraintdef(c.oid) LIKE 'FOREIGN KEY (revision_id)%%'")
        (validated, definition), = cursor.fetchall()
        cursor.execute("SELECT i.relname, x.indisunique, x.indisvalid, pg_get_expr(x.indpred, x.indrelid) "
                       "FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid "
                       "WHERE x.indrelid = 'publisher_notification'::regclass AND i.relname LIKE 'notification_once%%' "
                       "ORDER BY i.relname")
        indexes = cursor.fetchall()
    assert validated is True and "REFERENCES publisher_articlerevision(id)" in definition
    assert indexes == [("notification_once_per_article", True, True, "(revision_id IS NULL)"),
                       ("notification_once_per_update", True, True, "(revision_id IS NOT NULL)")]
