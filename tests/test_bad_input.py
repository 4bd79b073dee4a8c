"""Garbage at every door: admin forms, model validation, services, management commands,
environment variables. Each gets one clear message where it enters, and nothing is written.
(Task arguments: row 16 of the fault suite, tests/faults/test_broker.py.)"""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from publisher import services
from publisher.models import Article, ArticleStatus, Subscriber
from settings import env
from tests.factories import GROUPS_MIGRATION, make_user
from tests.support.admin import ADD, errors, form_data
from tests.support.production import run_prod

HUGE = "x" * 100_000


@pytest.fixture
def client_in(client, db):
    """A logged-in editor whose admin zone is `zone`."""
    from django.apps import apps

    GROUPS_MIGRATION.create_groups(apps, None)

    def login(zone: str):
        client.force_login(make_user(f"editor-{zone.replace('/', '-').lower()}", "Editors", zone=zone))
        return client

    return login


# --- Admin forms -----------------------------------------------------------------------------

@pytest.mark.parametrize("zone, day, clock", [
    ("America/New_York", "9999-12-31", "23:30"),  # after UTC conversion: year 10000
    ("Europe/Paris", "0001-01-01", "00:30"),      # after UTC conversion: year 0
    ("UTC", "9999-12-31", "12:00"),
    ("UTC", "0001-01-01", "12:00"),
])
def test_admin_refuses_years_1_and_9999_with_a_message(client_in, zone, day, clock):
    response = client_in(zone).post(ADD, form_data(publish=(day, clock)))
    assert response.status_code == 200
    (message,) = errors(response)["publish_at"]
    assert "out of range" in message
    assert not Article.objects.exists()


def test_admin_refuses_an_unpublish_time_at_the_end_of_time(client_in):
    response = client_in("America/New_York").post(
        ADD, form_data(publish=("2030-01-01", "10:00"), unpublish=("9999-12-31", "23:59")))
    assert response.status_code == 200
    assert "out of range" in errors(response)["unpublish_at"][0]
    assert not Article.objects.exists()


@pytest.mark.parametrize("title, field, expected", [
    ("", "title", "needs a title"),
    ("   ", "title", "needs a title"),
    (HUGE, "title", "at most 300 characters"),
])
def test_admin_refuses_empty_and_huge_titles(client_in, title, field, expected):
    response = client_in("Europe/Paris").post(ADD, form_data(title=title, publish=("2030-01-01", "10:00")))
    assert response.status_code == 200
    assert any(expected in m for m in errors(response)[field]), errors(response)
    assert not Article.objects.exists()


def test_admin_refuses_a_nonexistent_local_time(client_in):
    response = client_in("America/New_York").post(ADD, form_data(publish=("2027-03-14", "02:30")))
    assert response.status_code == 200
    assert "does not exist in America/New_York" in errors(response)["publish_at"][0]
    assert not Article.objects.exists()


@pytest.mark.parametrize("day, clock", [("2026-02-30", "10:00"), ("tomorrow", "10:00"), ("2030-01-01", "25:61")])
def test_admin_refuses_unparseable_dates_and_times(client_in, day, clock):
    response = client_in("Europe/Paris").post(ADD, form_data(publish=(day, clock)))
    assert response.status_code == 200
    assert errors(response)["publish_at"]
    assert not Article.objects.exists()


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "two@@example.com", "x" * 300 + "@example.com", ""])
def test_subscriber_admin_refuses_invalid_emails(admin_client, email):
    response = admin_client.post("/admin/publisher/subscriber/add/", {"email": email, "is_active": "on"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["email"]
    assert not Subscriber.objects.exists()


def test_an_unknown_status_in_the_admin_list_filter_is_not_a_server_error(admin_client):
    response = admin_client.get("/admin/publisher/article/?status__exact=bogus")
    assert response.status_code in (200, 302)


# --- Models and services ---------------------------------------------------------------------

def test_model_validation_refuses_unknown_status_huge_title_and_bad_email(db):
    with pytest.raises(ValidationError) as caught:
        Article(title=HUGE, body="b", status="bogus").full_clean()
    assert set(caught.value.message_dict) == {"title", "status"}
    with pytest.raises(ValidationError) as caught:
        Subscriber(email="not-an-email").full_clean()
    assert "email" in caught.value.message_dict


@pytest.mark.parametrize("publish_at, expected", [
    (datetime(2030, 1, 1, 10, 0), "naive"),
    (datetime(1, 1, 1, tzinfo=ZoneInfo("UTC")), "out of range"),
    (datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("UTC")), "out of range"),
    (datetime(9999, 12, 31, 23, 59, tzinfo=ZoneInfo("America/New_York")), "out of range"),
    ("2030-01-01T10:00:00Z", "Expected a date and time"),
    (None, "required"),
])
def test_schedule_service_refuses_bad_times_and_writes_nothing(article_factory, publish_at, expected):
    article = article_factory(title="T")
    with pytest.raises(ValidationError) as caught:
        services.article_schedule(article_id=article.pk, publish_at=publish_at)
    assert expected in " ".join(caught.value.messages)
    article.refresh_from_db()
    assert article.status == ArticleStatus.DRAFT and article.publish_at is None


def test_schedule_service_refuses_an_empty_title_and_a_deleted_article(article_factory):
    empty = article_factory(title="")
    with pytest.raises(ValidationError, match="needs a title"):
        services.article_schedule(article_id=empty.pk, publish_at=timezone.now() + timedelta(hours=1))
    with pytest.raises(services.TransitionError, match="no longer exists"):
        services.article_schedule(article_id=10**9, publish_at=timezone.now() + timedelta(hours=1))
    assert Article.objects.get(pk=empty.pk).status == ArticleStatus.DRAFT


# --- Management commands ---------------------------------------------------------------------

@pytest.mark.parametrize("argument, expected", [
    ("2026-02-30", "is not a date"),
    ("not-a-date", "is not a date"),
    ("9999-12-31", "out of range"),
    ("2999-12-31", "has not ended yet"),
    ("0001-01-01", "out of range"),
    ("", "is not a date"),
])
def test_daily_report_refuses_bad_dates_with_one_message(db, argument, expected, settings):
    settings.TIME_ZONE = "Europe/Paris"
    with pytest.raises(CommandError, match=expected):
        call_command("daily_report", argument, "--dry-run")


@pytest.mark.parametrize("argv", [["health", "--max-scan-age", "abc"], ["health", "--max-scan-age", "-5"],
                                  ["cleanup", "--no-such-flag"], ["sync_schedules", "extra"]])
def test_commands_refuse_bad_arguments(db, argv):
    with pytest.raises(CommandError):
        call_command(*argv)


# --- Environment variables -------------------------------------------------------------------

@pytest.mark.parametrize("url", ["nonsense", "postgres://user@host:notaport/db", "mysql+wat://x/y",
                                 "postgres://[::1/db"])
def test_a_malformed_database_url_is_one_clear_error(monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.database_from_env("sqlite:///x.sqlite3")


@pytest.mark.parametrize("url", ["http://broker:80/", "redis://[::1", "rediss//nocolon", "://"])
def test_a_malformed_broker_url_is_one_clear_error(monkeypatch, url):
    monkeypatch.setenv("CELERY_BROKER_URL", url)
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
        env.broker_url_from_env(None)


@pytest.mark.parametrize("name, value, expected", [
    ("PUBLISHER_LEASE_SECONDS", "abc", "whole number"),
    ("PUBLISHER_LEASE_SECONDS", "0", "at least 1"),
    ("PUBLISHER_SCAN_INTERVAL", "-1", "at least"),
    ("PUBLISHER_SCAN_INTERVAL", "nan", "a number"),
    ("PUBLISHER_SCAN_INTERVAL", "inf", "a number"),
])
def test_bad_numeric_settings_are_one_clear_error(monkeypatch, name, value, expected):
    monkeypatch.setenv(name, value)
    read = env.env_float if name == "PUBLISHER_SCAN_INTERVAL" else env.env_int
    with pytest.raises(ImproperlyConfigured, match=expected):
        read(name, 1, minimum=1)


@pytest.mark.parametrize("overrides, expected", [
    ({"DJANGO_SECRET_KEY": None}, "DJANGO_SECRET_KEY is required"),
    ({"DJANGO_SECRET_KEY": "short"}, "at least 50 characters"),
    ({"DATABASE_URL": None}, "DATABASE_URL is required"),
    ({"DATABASE_URL": "nonsense"}, "DATABASE_URL"),
    ({"CELERY_BROKER_URL": None}, "CELERY_BROKER_URL is required"),
    ({"CELERY_BROKER_URL": "http://x/"}, "CELERY_BROKER_URL has an unsupported scheme"),
    ({"DJANGO_SECURE_HSTS_PRELOAD": "maybe"}, "DJANGO_SECURE_HSTS_PRELOAD must be 1 or 0"),
])
def test_production_settings_refuse_to_start_with_a_missing_or_bad_variable(overrides, expected):
    result = run_prod(["-c", "import django; django.setup()"], **overrides)
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("django.core.exceptions.ImproperlyConfigured:") and expected in last_line, \
        result.stderr[-2000:]


def test_production_settings_start_with_a_complete_environment():
    result = run_prod(["-c", "import django; django.setup()"])
    assert result.returncode == 0, result.stderr[-2000:]
