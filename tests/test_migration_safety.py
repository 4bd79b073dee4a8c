"""Migrations run while workers are up, on tables of a million rows: a new migration must not
hold a lock that blocks the pipeline's writes for longer than a moment. Measured with
scripts/migration_locks.py (docs/deployment.md, *Upgrades*); enforced here by refusing the operations
that take such locks on the big tables, unless the migration says why it is safe."""

import pytest
from django.apps import apps
from django.db import connection, migrations, models
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

from publisher import migration_operations

# Tables the pipeline writes all the time, and that grow to millions of rows.
BIG_TABLES = {("publisher", "article"), ("publisher", "notification"), ("publisher", "articleevent"),
              ("publisher", "subscriber")}
# Written while those tables were new and empty (CreateModel, and a RunPython on auth groups),
# checked by hand. Every later migration is checked below.
BASELINE = {("publisher", "0001_initial"), ("publisher", "0002_editor_profile_and_article_events"),
            ("publisher", "0003_editor_groups"), ("scheduling", "0001_initial"),
            ("scheduling", "0002_periodic_operations")}

WHY = {
    migrations.AddIndex: "CREATE INDEX blocks every write to the table while it builds (0.4 s per million rows "
                         "measured): use publisher.migration_operations.AddIndexConcurrently, atomic = False",
    migrations.RemoveIndex: "DROP INDEX waits for and then blocks every query on the table: use "
                            "publisher.migration_operations.RemoveIndexConcurrently, atomic = False",
    migrations.AddConstraint: "ADD CONSTRAINT checks every row while holding an ACCESS EXCLUSIVE lock: add it NOT "
                              "VALID and VALIDATE it in a second statement (RunSQL with state_operations), or "
                              "build a unique index concurrently first",
    migrations.AlterField: "may rewrite the whole table under an ACCESS EXCLUSIVE lock (a type change took "
                           "2.4-4.3 s per million rows measured)",
    migrations.RemoveField: "the workers still running the previous release read this column: remove it in a "
                            "later deploy (expand, then contract)",
    migrations.RenameField: "the workers still running the previous release use the old name",
    migrations.RenameModel: "the workers still running the previous release use the old table",
    migrations.DeleteModel: "the workers still running the previous release use this table",
    migrations.RunSQL: "raw SQL: say what it locks and for how long",
    migrations.RunPython: "a data migration over a big table: batch it, and say how long it holds locks",
}


def problems(migration) -> list[str]:
    """Why this migration could block the pipeline at scale (empty when it cannot), unless it
    carries `safe_at_scale = "<why>"` after a review."""
    if getattr(migration, "safe_at_scale", ""):
        return []
    found = []
    for operation in migration.operations:
        if isinstance(operation, (migration_operations.AddIndexConcurrently,
                                  migration_operations.RemoveIndexConcurrently,
                                  migration_operations.AddUniqueConstraintConcurrently)):
            if migration.atomic:
                found.append(f"{operation.describe()}: needs atomic = False on the migration")
            continue
        model = getattr(operation, "model_name", None) or getattr(operation, "name_lower", None)
        on_big_table = (migration.app_label, (model or "").lower()) in BIG_TABLES
        if isinstance(operation, (migrations.RunSQL, migrations.RunPython)) or on_big_table:
            if isinstance(operation, migrations.AddField):
                field = operation.field
                if not field.null and field.default is models.NOT_PROVIDED and field.db_default is models.NOT_PROVIDED:
                    found.append(f"{operation.describe()}: NOT NULL without a default fails on existing rows")
                continue  # with a default: PostgreSQL 11+ only writes the catalog (3-10 ms measured)
            reason = next((why for kind, why in WHY.items() if type(operation) is kind), None)
            if reason:
                found.append(f"{operation.describe()}: {reason}")
    return found


def test_no_migration_after_the_baseline_takes_a_long_lock_on_a_big_table():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    ours = {key: m for key, m in loader.disk_migrations.items() if key[0] in ("publisher", "scheduling")}
    assert BASELINE <= set(ours), "the baseline names migrations that no longer exist"
    report = {f"{app}.{name}": found for (app, name), m in sorted(ours.items())
              if (app, name) not in BASELINE and (found := problems(m))}
    assert report == {}, "\n".join(f"{name}: {'; '.join(found)}" for name, found in report.items())


def migration(*operations, atomic=True, **attrs):
    cls = type("Migration", (migrations.Migration,), {"operations": list(operations), "atomic": atomic, **attrs})
    return cls("0099_probe", "publisher")


INDEX = models.Index(fields=["published_at"], name="article_published_idx")
UNIQUE = models.UniqueConstraint(fields=["excerpt"], condition=models.Q(status="published"), name="article_probe_uq")


def test_the_check_refuses_what_locks_and_accepts_the_safe_forms():
    assert "use publisher.migration_operations.AddIndexConcurrently" in problems(
        migration(migrations.AddIndex("article", INDEX)))[0]
    assert "needs atomic = False" in problems(
        migration(migration_operations.AddIndexConcurrently("article", INDEX)))[0]
    assert problems(migration(migration_operations.AddIndexConcurrently("article", INDEX), atomic=False)) == []
    assert "needs atomic = False" in problems(
        migration(migration_operations.AddUniqueConstraintConcurrently("article", UNIQUE)))[0]
    assert problems(migration(migration_operations.AddUniqueConstraintConcurrently("article", UNIQUE),
                              atomic=False)) == []
    assert "NOT VALID" in problems(migration(migrations.AddConstraint(
        "article", models.CheckConstraint(condition=models.Q(word_count__gte=0), name="wc"))))[0]
    assert "fails on existing rows" in problems(migration(migrations.AddField(
        "article", "note", models.CharField(max_length=10))))[0]
    assert problems(migration(migrations.AddField("article", "note", models.CharField(max_length=10, default="")))) == []
    assert "expand, then contract" in problems(migration(migrations.RemoveField("article", "excerpt")))[0]
    assert problems(migration(migrations.AddIndex("dailyreport", INDEX))) == []  # small table: fine
    assert problems(migration(migrations.RemoveField("article", "excerpt"), safe_at_scale="reviewed")) == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("operation", "create"), [
    (migration_operations.AddIndexConcurrently("article", INDEX), "CREATE INDEX"),
    (migration_operations.AddUniqueConstraintConcurrently("article", UNIQUE), "CREATE UNIQUE INDEX"),
], ids=["index", "unique"])
def test_concurrent_operations_are_concurrent_on_postgresql_and_plain_elsewhere(operation, create):
    before = ProjectState.from_apps(apps)
    after = before.clone()
    operation.state_forwards("publisher", after)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        operation.database_forwards("publisher", editor, before, after)
    sql = " ".join(editor.collected_sql)
    if connection.vendor == "postgresql":
        assert f"{create} CONCURRENTLY" in sql
    else:
        assert create in sql and "CONCURRENTLY" not in sql
