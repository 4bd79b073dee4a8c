"""Every app's migrations match its models: no drift for `makemigrations` to find."""

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_migrations_are_missing():
    out = io.StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out, verbosity=1)
    except SystemExit:  # --check exits 1 when a migration is missing
        pytest.fail(f"makemigrations --check found model changes without a migration:\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()
