"""Pre-flight of scheduled changes (publisher.revision_preflight): the content last checked, when,
and what would fail, on the change, as on the article (0013)."""

from django.db import migrations, models

from publisher.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # Columns with a constant default or nullable (a catalog change on PostgreSQL), a partial index
    # built CONCURRENTLY.
    atomic = False

    dependencies = [
        ('publisher', '0017_revision_release'),
    ]

    operations = [
        migrations.AddField(
            model_name='articlerevision',
            name='at_risk_reason',
            field=models.TextField(blank=True, db_default='', default='', editable=False, help_text='What the pre-flight found would fail when the change goes live.'),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='preflight_checked_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='preflight_fingerprint',
            field=models.CharField(blank=True, db_default='', default='', editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='preflight_queued_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        AddIndexConcurrently(
            model_name='articlerevision',
            index=models.Index(condition=models.Q(('preflight_checked_at__isnull', True), ('status', 'scheduled')), fields=['publish_at'], name='revision_preflight_due_idx'),
        ),
    ]
