"""Production settings with a production-like environment: `check --deploy` passes at warning
level, HTTPS is enforced except for the health probe, and a bad switch is an error."""

import pytest

from tests.support.production import run_prod


def test_check_deploy_passes_at_warning_level():
    result = run_prod(["manage.py", "check", "--deploy", "--fail-level", "WARNING"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_when_https_is_weakened_by_accident():
    """A typo in a security switch is an error at start, never a silent `off`."""
    result = run_prod(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], DJANGO_SECURE_SSL_REDIRECT="nope")
    assert result.returncode != 0
    assert "DJANGO_SECURE_SSL_REDIRECT must be 1 or 0" in result.stderr


@pytest.mark.parametrize("variable", ["DJANGO_SECURE_SSL_REDIRECT", "DJANGO_SECURE_HSTS_SECONDS"])
def test_a_tls_proxy_that_redirects_or_sends_hsts_itself_can_turn_ours_off(variable):
    result = run_prod(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **{variable: "0"})
    assert result.returncode == 0, result.stdout + result.stderr


PROBE = """
import django; django.setup()
from django.test import Client
client = Client(HTTP_HOST="publisher.example.com")
print(client.get("/health/").status_code, client.get("/admin/").status_code,
      client.get("/admin/", headers={"X-Forwarded-Proto": "https"}).status_code)
"""


def test_plain_http_is_redirected_to_https_except_the_health_probe():
    result = run_prod(["-c", PROBE], PUBLISHER_HEALTH_BROKER_TIMEOUT="0.5")
    assert result.returncode == 0, result.stderr[-3000:]
    health, admin_http, admin_https = result.stdout.split()
    # The probe gets the real answer (the database and broker of PROD_ENV do not answer: 503),
    # not a redirect that a probe would count as success.
    assert health == "503"
    assert admin_http == "301"
    assert admin_https == "302"  # to the login page, over HTTPS
