from django.db import migrations, models

from publisher.migration_operations import AddUniqueConstraintConcurrently


class Migration(migrations.Migration):
    # Nullable columns (a catalog change on PostgreSQL) and partial unique indexes built
    # CONCURRENTLY: the article table stays writable throughout.
    atomic = False

    dependencies = [
        ('publisher', '0005_article_slug_image_alt_slug_redirects'),
    ]

    operations = [
        migrations.AddField(
            model_name='article',
            name='external_id',
            field=models.CharField(blank=True, editable=False, help_text="The importing file's id for this article (import_articles).", max_length=200, null=True),
        ),
        migrations.AddField(
            model_name='article',
            name='import_key',
            field=models.CharField(blank=True, editable=False, max_length=64, null=True),
        ),
        AddUniqueConstraintConcurrently(
            model_name='article',
            constraint=models.UniqueConstraint(condition=models.Q(('external_id__isnull', False)), fields=('external_id',), name='article_external_id_unique'),
        ),
        AddUniqueConstraintConcurrently(
            model_name='article',
            constraint=models.UniqueConstraint(condition=models.Q(('import_key__isnull', False)), fields=('import_key',), name='article_import_key_unique'),
        ),
    ]
