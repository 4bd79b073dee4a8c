"""Subscribers: double opt-in (confirmed_at), unsubscribing (unsubscribed_at), where a row came
from (source), and addresses unique whatever their case.

Existing rows were added by editors: they stay confirmed (the time of the upgrade stands for
the unknown confirmation time) and come from the admin; rows already switched off count as
unsubscribed from the upgrade on. Addresses that differ only in case are merged before the
case-insensitive unique index is built: the oldest row stays, the others' notifications move to
it (one per article: a sent one wins over one not yet sent, so nobody is mailed twice) and the
merged row keeps receiving mail only if every one of them did (an unsubscribe always wins).
"""

from django.db import migrations, models, transaction
from django.db.models import Count
from django.db.models.functions import Lower, Now
import django.utils.timezone

from publisher.migration_operations import AddUniqueConstraintConcurrently

BATCH = 2000
# Which of two notifications for the same article and address survives a merge: one that was
# (or may have been) sent, then the oldest.
KEEP_FIRST = {"sent": 0, "sending": 1, "failed": 2, "pending": 3, "expired": 4}


def _normalize(email: str) -> str:
    # publisher.models.normalize_address as of this migration (migrations never import models).
    local, at, domain = email.strip().rpartition("@")
    return f"{local}@{domain.lower()}" if at else email.strip()


def merge_and_normalize(apps, schema_editor):
    Subscriber = apps.get_model("publisher", "Subscriber")
    Notification = apps.get_model("publisher", "Notification")
    db = schema_editor.connection.alias
    subscribers = Subscriber.objects.using(db)
    notifications = Notification.objects.using(db)
    duplicated = list(subscribers.annotate(address=Lower("email")).values("address").annotate(n=Count("id"))
                      .filter(n__gt=1).values_list("address", flat=True))
    for address in duplicated:
        with transaction.atomic(using=db):  # one address at a time: locks a few rows, briefly
            rows = list(subscribers.select_for_update().alias(address=Lower("email")).filter(address=address)
                        .order_by("created_at", "pk"))
            keeper, others = rows[0], rows[1:]
            ids = [row.pk for row in rows]
            winners, losers = {}, []
            for pk, article_id, status in notifications.filter(subscriber_id__in=ids).order_by("pk").values_list(
                    "pk", "article_id", "status"):
                best = winners.get(article_id)
                if best is None or KEEP_FIRST.get(status, 9) < KEEP_FIRST.get(best[1], 9):
                    if best is not None:
                        losers.append(best[0])
                    winners[article_id] = (pk, status)
                else:
                    losers.append(pk)
            notifications.filter(pk__in=losers).delete()
            notifications.filter(pk__in=[pk for pk, _ in winners.values()]).exclude(subscriber_id=keeper.pk).update(
                subscriber_id=keeper.pk)
            subscribers.filter(pk__in=[row.pk for row in others]).delete()
            if not all(row.is_active for row in rows):
                subscribers.filter(pk=keeper.pk).update(is_active=False)
    last = 0
    while True:
        batch = list(subscribers.filter(pk__gt=last).order_by("pk").values_list("pk", "email")[:BATCH])
        if not batch:
            break
        last = batch[-1][0]
        for pk, email in batch:
            if _normalize(email) != email:
                subscribers.filter(pk=pk).update(email=_normalize(email))
    subscribers.filter(is_active=False, unsubscribed_at__isnull=True).update(unsubscribed_at=Now())


class Migration(migrations.Migration):
    # Nullable columns and columns with a constant default (catalog changes on PostgreSQL 11+),
    # a data migration that commits per merged address and per batch of 2,000 rows (row locks on
    # those rows only, for milliseconds), and the unique index built CONCURRENTLY: the subscriber
    # and notification tables stay writable throughout. A duplicate written by the previous
    # release between the merge and the index makes the index build fail; run the migration again.
    atomic = False
    safe_at_scale = ("reviewed: AddField with defaults or NULL; RunPython batched, one short transaction per "
                     "address or batch; the unique index built concurrently")

    dependencies = [
        ('publisher', '0006_article_external_id_and_import_key'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='subscriber',
            options={'permissions': [('export_subscriber', 'Can export subscriber addresses')]},
        ),
        migrations.AddField(
            model_name='subscriber',
            name='confirmed_at',
            field=models.DateTimeField(blank=True, default=django.utils.timezone.now, help_text='When the address was confirmed; empty: waiting for confirmation.', null=True),
        ),
        migrations.AddField(
            model_name='subscriber',
            name='source',
            field=models.CharField(choices=[('site', 'Subscribe form on the site'), ('admin', 'Added in the admin'), ('import', 'Imported')], default='admin', max_length=16),
        ),
        migrations.AddField(
            model_name='subscriber',
            name='unsubscribed_at',
            field=models.DateTimeField(blank=True, help_text='When the reader unsubscribed; empty: subscribed.', null=True),
        ),
        migrations.RunPython(merge_and_normalize, migrations.RunPython.noop),
        AddUniqueConstraintConcurrently(
            model_name='subscriber',
            constraint=models.UniqueConstraint(Lower('email'), name='subscriber_email_ci_unique', violation_error_message='A subscriber with this address already exists.'),
        ),
    ]
