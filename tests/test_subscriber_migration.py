"""Migration 0007 on a database that has subscribers: rows stay confirmed, addresses that
differ only in case are merged (their notifications with them, never two for one article), and
the case-insensitive unique index holds afterwards."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("publisher", "0006_article_external_id_and_import_key")]
AFTER = [("publisher", "0007_subscriber_confirmation")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.mark.django_db(transaction=True)
def test_existing_subscribers_stay_confirmed_and_case_duplicates_merge_into_the_oldest():
    try:
        old = migrate(BEFORE)
        Subscriber, Article, Notification = (old.get_model("publisher", name)
                                             for name in ("Subscriber", "Article", "Notification"))
        now = timezone.now()
        rows = {}
        for name, email, active, age in [("oldest", "Reader@Example.com", True, 3), ("twin", "reader@example.com", True, 2),
                                         ("off", "READER@EXAMPLE.COM", False, 1), ("other", "Other@EXAMPLE.org", True, 1),
                                         ("gone", "gone@example.com", False, 1)]:
            rows[name] = Subscriber.objects.create(email=email, is_active=active)
            Subscriber.objects.filter(pk=rows[name].pk).update(created_at=now - timedelta(days=age))
        x, y, z = (Article.objects.create(title=title) for title in "XYZ")

        def notify(article, who, status):
            return Notification.objects.create(article=article, subscriber=rows[who], status=status,
                                               expires_at=now + timedelta(days=1)).pk

        x_pending, x_sent = notify(x, "oldest", "pending"), notify(x, "twin", "sent")
        y_failed = notify(y, "off", "failed")
        z_sent, z_pending = notify(z, "oldest", "sent"), notify(z, "twin", "pending")
        other_x = notify(x, "other", "pending")

        new = migrate(AFTER)
        Subscriber, Notification = new.get_model("publisher", "Subscriber"), new.get_model("publisher", "Notification")
        after = {s.pk: s for s in Subscriber.objects.all()}
        assert sorted(after) == sorted([rows["oldest"].pk, rows["other"].pk, rows["gone"].pk])
        kept = after[rows["oldest"].pk]
        # One of the merged rows had been switched off: the merged row receives nothing.
        assert (kept.email, kept.is_active, kept.unsubscribed_at is not None) == ("Reader@example.com", False, True)
        assert after[rows["other"].pk].email == "Other@example.org"
        assert after[rows["other"].pk].unsubscribed_at is None
        assert after[rows["gone"].pk].unsubscribed_at is not None
        assert all(s.confirmed_at is not None and s.source == "admin" for s in after.values())
        # Per article one notification survives, the sent one first: nobody is mailed twice.
        assert sorted(Notification.objects.filter(subscriber_id=kept.pk).values_list("pk", "article_id", "status")) == sorted([
            (x_sent, x.pk, "sent"), (y_failed, y.pk, "failed"), (z_sent, z.pk, "sent")])
        assert not Notification.objects.filter(pk__in=[x_pending, z_pending]).exists()
        assert Notification.objects.get(pk=other_x).subscriber_id == rows["other"].pk

        with pytest.raises(IntegrityError), transaction.atomic():
            Subscriber.objects.create(email="OTHER@example.org")
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
