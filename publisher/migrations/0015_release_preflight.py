from django.db import migrations, models


class Migration(migrations.Migration):
    # Columns with a constant default or nullable on the (small) release table: catalog changes.

    dependencies = [
        ('publisher', '0014_notification_claims'),
    ]

    operations = [
        migrations.AddField(
            model_name='release',
            name='at_risk_reason',
            field=models.TextField(blank=True, default='', editable=False, help_text='What the pre-flight found would fail when it goes live.'),
        ),
        migrations.AddField(
            model_name='release',
            name='preflight_checked_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='release',
            name='preflight_fingerprint',
            field=models.CharField(blank=True, default='', editable=False, max_length=64),
        ),
        migrations.AddField(
            model_name='release',
            name='preflight_queued_until',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
