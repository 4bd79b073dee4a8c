from django.db import migrations, models

from publisher.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    # CREATE INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("publisher", "0003_editor_groups"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="notification",
            index=models.Index(condition=models.Q(("sent_at__isnull", False)), fields=["sent_at"],
                               name="notification_sent_idx"),
        ),
    ]
