"""The two newsroom roles as groups: Editors write and schedule; Publishers may also publish
now and retry failures (the custom `publish_article` permission).

Permissions are normally created after all migrations ran (post_migrate), too late for a fresh
database, so the rows this needs are made here the same way Django makes them (same content
type, codename and name): post_migrate then finds them and adds nothing twice.
"""

from django.db import migrations

ARTICLE_PERMISSIONS = {
    "add_article": "Can add article",
    "change_article": "Can change article",
    "view_article": "Can view article",
    "delete_article": "Can delete article",
    "publish_article": "Can publish articles now and retry failed ones",
}
READ_ONLY = {
    "subscriber": {"view_subscriber": "Can view subscriber"},
    "notification": {"view_notification": "Can view notification"},
}
GROUPS = {
    "Editors": [("article", "add_article"), ("article", "change_article"), ("article", "view_article"),
                ("subscriber", "view_subscriber"), ("notification", "view_notification")],
    "Publishers": [("article", "add_article"), ("article", "change_article"), ("article", "view_article"),
                   ("article", "delete_article"), ("article", "publish_article"),
                   ("subscriber", "view_subscriber"), ("notification", "view_notification")],
}


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    wanted = {"article": ARTICLE_PERMISSIONS, **READ_ONLY}
    permissions = {}
    for model, codenames in wanted.items():
        content_type, _ = ContentType.objects.get_or_create(app_label="publisher", model=model)
        for codename, name in codenames.items():
            permissions[(model, codename)], _ = Permission.objects.get_or_create(
                content_type=content_type, codename=codename, defaults={"name": name})
    for group_name, keys in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(permissions[key] for key in keys))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("publisher", "0002_editor_profile_and_article_events"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
