"""Migration operations that stay safe while workers run on big tables."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db.migrations.operations import AddIndex


class AddIndexWithoutLocking(AddIndex):
    """AddIndex that builds the index CONCURRENTLY on PostgreSQL, so inserts and updates keep
    going while it builds (a plain CREATE INDEX blocks writes on the table for the whole build).
    Other databases get a plain CREATE INDEX. The migration must set `atomic = False`."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            AddIndexConcurrently(self.model_name, self.index).database_forwards(
                app_label, schema_editor, from_state, to_state)
        else:
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            AddIndexConcurrently(self.model_name, self.index).database_backwards(
                app_label, schema_editor, from_state, to_state)
        else:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
