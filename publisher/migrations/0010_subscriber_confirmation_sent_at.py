"""Subscriber.confirmation_sent_at: when the newest confirmation mail went out. The cleanup keeps
a pending row while that mail's link still works (PUBLISHER_CONFIRM_DAYS). A nullable column
with no default: catalog-only on PostgreSQL and SQLite; the previous release's workers neither
read nor write it."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("publisher", "0009_article_fan_out_and_interrupted_notifications"),
    ]

    operations = [
        migrations.AddField(
            model_name="subscriber",
            name="confirmation_sent_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
    ]
