"""Update mails: a notification may be about a change to the live article (`revision`), one per
(revision, subscriber). The uniqueness is split in two partial unique indexes, each built
CONCURRENTLY (writes go on); the old (article, subscriber) constraint is dropped only after its
replacement exists, so no moment is left without one. The previous release's workers insert
rows without a revision, which the (article, subscriber) WHERE revision IS NULL index keeps
unique. The column is added without a long lock (AddNullableForeignKeyNotValid: NOT VALID, then
VALIDATE, which lets writes through); the claim and the revision get plain columns and an index
on their own small tables."""

import django.db.models.deletion
from django.db import migrations, models

from publisher.migration_operations import AddNullableForeignKeyNotValid, AddUniqueConstraintConcurrently


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('publisher', '0015_release_preflight'),
    ]

    operations = [
        AddNullableForeignKeyNotValid(
            model_name='notification',
            name='revision',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='notifications', to='publisher.articlerevision'),
        ),
        AddUniqueConstraintConcurrently(
            model_name='notification',
            constraint=models.UniqueConstraint(condition=models.Q(('revision__isnull', True)), fields=('article', 'subscriber'), name='notification_once_per_article'),
        ),
        AddUniqueConstraintConcurrently(
            model_name='notification',
            constraint=models.UniqueConstraint(condition=models.Q(('revision__isnull', False)), fields=('revision', 'subscriber'), name='notification_once_per_update'),
        ),
        # A moment's ACCESS EXCLUSIVE lock to drop it (no scan): notification_once_per_article
        # already holds the previous release's rows unique.
        migrations.RemoveConstraint(
            model_name='notification',
            name='notification_once_per_subscriber',
        ),
        migrations.AddField(
            model_name='notificationclaim',
            name='revision',
            field=models.ForeignKey(null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='publisher.articlerevision'),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='fanned_out_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='fan_out_retried_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddIndex(
            model_name='articlerevision',
            index=models.Index(condition=models.Q(('fanned_out_at__isnull', True), ('notify_subscribers', True), ('status', 'applied')), fields=['applied_at'], name='revision_unfanned_idx'),
        ),
    ]
