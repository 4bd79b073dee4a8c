"""The scheduling models and their migrations agree (no drift)."""

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_scheduling_migrations_match_the_models():
    call_command("makemigrations", "scheduling", "--check", "--dry-run", verbosity=0)
