"""NotificationClaim: a sender's claim on the notifications it is mailing, so the notification rows
are written twice (insert, outcome) instead of three times. A new, empty table (its foreign key
takes a moment's lock on publisher_article); the previous release's workers neither read nor
write it, and the rows they leave `sending` are still made `interrupted` by the sweeper."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('publisher', '0013_article_preflight'),
    ]

    operations = [
        migrations.CreateModel(
            name='NotificationClaim',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('first_subscriber_id', models.BigIntegerField()),
                ('last_subscriber_id', models.BigIntegerField()),
                ('sending_first_id', models.BigIntegerField(null=True)),
                ('sending_last_id', models.BigIntegerField(null=True)),
                ('claimed_at', models.DateTimeField()),
                ('article', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='notification_claims', to='publisher.article')),
            ],
        ),
    ]
