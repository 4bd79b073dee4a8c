"""Production settings with a production-like environment: `check --deploy` passes at warning
level, HTTPS is enforced except for the health probe, and a bad switch is an error."""

import pytest

from tests.support.production import run_prod

# Subprocesses with the production settings and an environment of their own: no tier's database or broker.
pytestmark = pytest.mark.one_tier


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


MAIL_SETTINGS = """
import django; django.setup()
from django.conf import settings
print(settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT)
"""


def test_production_mail_goes_to_the_smtp_server_from_the_environment():
    result = run_prod(["-c", MAIL_SETTINGS], EMAIL_BACKEND=None, EMAIL_HOST="smtp.example.net", EMAIL_USE_TLS="1",
                      EMAIL_PORT=None, EMAIL_TIMEOUT=None)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "smtp.example.net", "587", "True",
                                     "10.0"]


def test_tls_and_ssl_together_fail_at_start_with_the_choice():
    result = run_prod(["manage.py", "check"], EMAIL_USE_TLS="1", EMAIL_USE_SSL="1")
    assert result.returncode != 0
    assert "EMAIL_USE_TLS and EMAIL_USE_SSL are both on: choose one" in result.stderr


def test_check_deploy_refuses_a_mail_backend_that_never_sends_unless_allowed():
    path = "django.core.mail.backends.filebased.EmailBackend"
    result = run_prod(["manage.py", "check", "--deploy"], EMAIL_BACKEND=path)
    assert result.returncode != 0
    assert f"publisher.E011) EMAIL_BACKEND is {path}, which writes mail to files" in result.stderr
    result = run_prod(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], EMAIL_BACKEND=path,
                      PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND="1")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("backend, refused", [("filebased", True), ("console", True), ("locmem", True), ("dummy", True),
                                              ("smtp", False)])
def test_the_mail_check_knows_every_backend_that_never_delivers(settings, backend, refused):
    from publisher.checks import email_settings

    settings.EMAIL_BACKEND = f"django.core.mail.backends.{backend}.EmailBackend"
    settings.PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND = False
    assert [error.id for error in email_settings(None)] == (["publisher.E011"] if refused else [])
    settings.PUBLISHER_EMAIL_ALLOW_LOCAL_BACKEND = True
    assert email_settings(None) == []
