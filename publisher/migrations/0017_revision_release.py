"""A change (ArticleRevision) can be a member of a release (publisher.release_changes): its release,
when its release prepared it, and the article content it replaced (what a rollback restores)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    safe_at_scale = ("AddField on articlerevision (not one of the big tables): nullable columns, no default "
                     "(catalog only); the release foreign key's constraint checks only NULLs and its index is "
                     "built on the revisions table, a row per edit of a live article; AlterField only adds "
                     "choices (no SQL)")

    dependencies = [
        ('publisher', '0016_notification_revision'),
    ]

    operations = [
        migrations.AddField(
            model_name='articlerevision',
            name='previous_content',
            field=models.JSONField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='release',
            field=models.ForeignKey(blank=True, editable=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='changes', to='publisher.release'),
        ),
        migrations.AddField(
            model_name='articlerevision',
            name='release_prepared_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='articleevent',
            name='action',
            field=models.CharField(choices=[('created', 'Created'), ('scheduled', 'Scheduled'), ('rescheduled', 'Rescheduled'), ('unscheduled', 'Unscheduled'), ('published_now', 'Published now'), ('retried', 'Retried'), ('unpublish_changed', 'Changed the unpublish time'), ('unpublished_now', 'Unpublished now'), ('recorded_published', 'Recorded as published (not mailed)'), ('failed', 'Publishing failed'), ('at_risk', 'At risk (pre-flight)'), ('preflight_passed', 'Pre-flight passed'), ('added_to_release', 'Added to a release'), ('removed_from_release', 'Removed from a release'), ('change_scheduled', 'Change scheduled'), ('change_rescheduled', 'Change rescheduled'), ('change_published_now', 'Change published now'), ('change_cancelled', 'Change cancelled'), ('change_applied', 'Change went live'), ('change_abandoned', 'Change not applied (article no longer live)'), ('change_failed', 'Change failed'), ('change_rolled_back', 'Change rolled back (previous version restored)')], max_length=32),
        ),
        migrations.AlterField(
            model_name='articlerevision',
            name='status',
            field=models.CharField(choices=[('draft', 'Draft'), ('scheduled', 'Scheduled'), ('publishing', 'Publishing'), ('applied', 'Applied'), ('failed', 'Failed'), ('cancelled', 'Cancelled'), ('in_release', 'In a scheduled release'), ('rolled_back', 'Rolled back')], default='draft', max_length=16),
        ),
    ]
