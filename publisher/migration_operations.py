"""Migration operations that keep the big tables (articles, notifications) writable while a
deploy migrates them with workers running. See docs/deployment.md, *Upgrades*.

`makemigrations` writes a plain AddIndex / RemoveIndex; on a table the pipeline writes to,
change it to these in a migration with `atomic = False` (tests/test_migration_safety.py
refuses the plain ones). On PostgreSQL they run CREATE / DROP INDEX CONCURRENTLY, which never
blocks writes; elsewhere (the embedded SQLite) a plain index, where there is nobody to block.
"""

from django.contrib.postgres.operations import AddIndexConcurrently as PostgresAddIndexConcurrently
from django.contrib.postgres.operations import RemoveIndexConcurrently as PostgresRemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex


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
