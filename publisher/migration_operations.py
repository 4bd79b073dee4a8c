"""Migration operations that keep the big tables (articles, notifications) writable while a
deploy migrates them with workers running. See docs/deployment.md, *Upgrades*.

`makemigrations` writes a plain AddIndex / RemoveIndex; on a table the pipeline writes to,
change it to these in a migration with `atomic = False` (tests/test_migration_safety.py
refuses the plain ones). On PostgreSQL they run CREATE / DROP INDEX CONCURRENTLY, which never
blocks writes; elsewhere (the embedded SQLite) a plain index, where there is nobody to block.
"""

from django.contrib.postgres.operations import AddIndexConcurrently as PostgresAddIndexConcurrently
from django.contrib.postgres.operations import RemoveIndexConcurrently as PostgresRemoveIndexConcurrently
from django.db import NotSupportedError
from django.db.migrations.operations import AddConstraint, AddField, AddIndex, RemoveIndex


class _PlainOutsidePostgres:
    """Runs the concurrent form on PostgreSQL and the `plain` operation's elsewhere."""

    plain: type

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        run = super().database_forwards if _postgres(schema_editor) else self._plain_forwards
        return run(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        run = super().database_backwards if _postgres(schema_editor) else self._plain_backwards
        return run(app_label, schema_editor, from_state, to_state)

    def _plain_forwards(self, *args):
        return self.plain.database_forwards(self, *args)

    def _plain_backwards(self, *args):
        return self.plain.database_backwards(self, *args)


def _postgres(schema_editor) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexConcurrently(_PlainOutsidePostgres, PostgresAddIndexConcurrently):
    plain = AddIndex


class RemoveIndexConcurrently(_PlainOutsidePostgres, PostgresRemoveIndexConcurrently):
    plain = RemoveIndex


class AddUniqueConstraintConcurrently(AddConstraint):
    """A conditional or functional UniqueConstraint (Django builds either as a unique index) created with
    CREATE UNIQUE INDEX CONCURRENTLY on PostgreSQL, so the table stays writable while it builds;
    a plain AddConstraint elsewhere. Needs `atomic = False` on the migration."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _postgres(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        if schema_editor.connection.in_atomic_block:
            raise NotSupportedError("AddUniqueConstraintConcurrently cannot run inside a transaction: "
                                    "set atomic = False on the migration.")
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            sql = str(self.constraint.create_sql(model, schema_editor))
            if not sql.startswith("CREATE UNIQUE INDEX "):
                raise ValueError(f"{self.constraint.name}: only a conditional or functional UniqueConstraint is built as an index.")
            schema_editor.execute(sql.replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", 1))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _postgres(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(self.constraint.name)}")


class AddNullableForeignKeyNotValid(AddField):
    """A nullable foreign key added to a big table without a long lock. On PostgreSQL: the
    column alone (a catalog change), then the constraint NOT VALID (a moment's lock on both
    tables), then VALIDATE CONSTRAINT, which scans the table under a SHARE UPDATE EXCLUSIVE lock
    that lets writes through; no index (give the field db_index=False and an index of its own,
    built concurrently). Django's plain AddField checks the constraint in the ALTER TABLE, under
    ACCESS EXCLUSIVE, for the whole scan. Elsewhere a plain AddField."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _postgres(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        field = model._meta.get_field(self.name)
        if not (field.null and field.remote_field and not field.db_index):
            raise ValueError(f"{self.name}: only a nullable foreign key with db_index=False is added this way.")
        quote, table = schema_editor.quote_name, model._meta.db_table
        target = field.target_field
        column_type = field.db_parameters(connection=schema_editor.connection)["type"]
        name = schema_editor._create_index_name(table, [field.column], suffix="_fk")
        schema_editor.execute(f"ALTER TABLE {quote(table)} ADD COLUMN {quote(field.column)} {column_type} NULL")
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} FOREIGN KEY ({quote(field.column)}) "
            f"REFERENCES {quote(target.model._meta.db_table)} ({quote(target.column)}) "
            f"DEFERRABLE INITIALLY DEFERRED NOT VALID")
        schema_editor.execute(f"ALTER TABLE {quote(table)} VALIDATE CONSTRAINT {quote(name)}")
