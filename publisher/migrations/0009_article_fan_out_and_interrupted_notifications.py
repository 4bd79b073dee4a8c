from django.db import migrations, models

from publisher.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # Nullable columns (a catalog change on PostgreSQL), a partial index built CONCURRENTLY.
    atomic = False
    safe_at_scale = ("AlterField only adds a choice to notification.status (no SQL: sqlmigrate prints a no-op); "
                     "the rest is nullable columns and a concurrent index")

    dependencies = [
        ('publisher', "0008_article_event_actions"),
    ]

    operations = [
        migrations.AddField(
            model_name='article',
            name='fan_out_retried_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='article',
            name='fanned_out_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(
            model_name='notification',
            name='status',
            field=models.CharField(choices=[('pending', 'Pending'), ('sending', 'Sending'), ('sent', 'Sent'), ('failed', 'Failed'), ('expired', 'Expired'), ('interrupted', 'Interrupted')], default='pending', max_length=16),
        ),
        AddIndexConcurrently(
            model_name='article',
            index=models.Index(condition=models.Q(('fanned_out_at__isnull', True), ('status', 'published')), fields=['published_at'], name='article_fan_out_due_idx'),
        ),
    ]
