"""Plain builders: the one way the tests make an article, a subscriber, and a user of each role.
Each writes to the database (the test asks for `db` or `transactional_db`); keyword arguments
override the defaults and go to the model as they are."""

import importlib

from django.apps import apps
from django.contrib.auth.models import Group, User

from publisher.models import Article, ArticleStatus, EditorProfile, Subscriber

# Every user the builders make logs in with this password.
PASSWORD = "correct horse battery staple"
# The roles the data migration makes: editors schedule, publishers also publish now and retry.
ROLES = ("Editors", "Publishers")
GROUPS_MIGRATION = importlib.import_module("publisher.migrations.0003_editor_groups")


def make_article(**fields) -> Article:
    """A draft with a title and a body unless told otherwise."""
    fields.setdefault("title", "A title")
    fields.setdefault("body", "Some *body* text.")
    return Article.objects.create(**fields)


def schedule_batch(titles, publish_at, **fields):
    """Scheduled articles written in one go, as an import would: the next scan claims them
    together, so they travel in one chunk (the admin/service path claims near-due ones one by one)."""
    fields.setdefault("body", "Body.")
    return Article.objects.bulk_create([
        Article(title=title, status=ArticleStatus.SCHEDULED, publish_at=publish_at, **fields) for title in titles
    ])


def make_subscriber(email: str, *, active: bool = True) -> Subscriber:
    return Subscriber.objects.create(email=email, is_active=active)


def make_subscribers(n: int, prefix: str) -> list[Subscriber]:
    """`n` active subscribers and one inactive one (who must never be mailed)."""
    subscribers = [make_subscriber(f"{prefix}{i}@example.com") for i in range(n)]
    make_subscriber(f"{prefix}-inactive@example.com", active=False)
    return subscribers


def newsroom_groups() -> None:
    """The Editors and Publishers groups, made the data migration's own way (a transactional
    test flushes every table, migration data included; this puts them back)."""
    GROUPS_MIGRATION.create_groups(apps, None)


def make_user(username: str, group: str | None, zone: str | None = "Europe/Paris", **extra) -> User:
    """A staff user in `group` (one of ROLES; None: staff without a role) with an admin time
    zone (None: no profile, the site's zone applies). The groups must exist (newsroom_groups)."""
    extra.setdefault("password", PASSWORD)
    user = User.objects.create_user(username=username, is_staff=True, **extra)
    if group:
        user.groups.add(Group.objects.get(name=group))
    if zone:
        EditorProfile.objects.create(user=user, time_zone=zone)
    return user
