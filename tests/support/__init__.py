"""Plain helpers for the tests (no fixtures here: those are in tests/fixtures/, registered by
tests/conftest.py). Test modules import from here and from tests/factories.py, never from
another test module or a conftest."""
