from django.db import migrations, models

from publisher.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # Columns with a default or nullable (a catalog change on PostgreSQL), a partial index built
    # CONCURRENTLY.
    atomic = False
    safe_at_scale = ("AlterField only adds choices to articleevent.action (no SQL: sqlmigrate prints a no-op); "
                     "the rest is columns with a constant default or nullable, and a concurrent index")

    dependencies = [
        ('publisher', '0012_releases'),
    ]

    operations = [
        migrations.AddField(
            model_name='article',
            name='at_risk_reason',
            field=models.TextField(blank=True, db_default='', default='', editable=False, help_text='What the pre-flight found would fail when it goes live.'),
        ),
        migrations.AddField(
            model_name='article',
            name='preflight_checked_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='article',
            name='preflight_fingerprint',
            field=models.CharField(blank=True, db_default='', default='', editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='article',
            name='preflight_queued_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='articleevent',
            name='action',
            field=models.CharField(choices=[('created', 'Created'), ('scheduled', 'Scheduled'), ('rescheduled', 'Rescheduled'), ('unscheduled', 'Unscheduled'), ('published_now', 'Published now'), ('retried', 'Retried'), ('unpublish_changed', 'Changed the unpublish time'), ('unpublished_now', 'Unpublished now'), ('recorded_published', 'Recorded as published (not mailed)'), ('failed', 'Publishing failed'), ('at_risk', 'At risk (pre-flight)'), ('preflight_passed', 'Pre-flight passed'), ('added_to_release', 'Added to a release'), ('removed_from_release', 'Removed from a release'), ('change_scheduled', 'Change scheduled'), ('change_rescheduled', 'Change rescheduled'), ('change_published_now', 'Change published now'), ('change_cancelled', 'Change cancelled'), ('change_applied', 'Change went live'), ('change_abandoned', 'Change not applied (article no longer live)'), ('change_failed', 'Change failed')], max_length=32),
        ),
        AddIndexConcurrently(
            model_name='article',
            index=models.Index(condition=models.Q(('preflight_checked_at__isnull', True), ('status', 'scheduled')), fields=['publish_at'], name='article_preflight_due_idx'),
        ),
        AddIndexConcurrently(
            model_name='article',
            index=models.Index(condition=models.Q(('status', 'scheduled'), models.Q(('at_risk_reason', ''), _negated=True)), fields=['publish_at'], name='article_at_risk_idx'),
        ),
    ]
