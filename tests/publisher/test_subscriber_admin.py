"""Subscribers in the admin: editors see them and the counts; managing addresses (add, change,
delete, export) needs permissions editors do not have."""

import csv
import io

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from publisher.models import Subscriber, SubscriberSource
from tests import factories

CHANGELIST = "/admin/publisher/subscriber/"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def newsroom_groups(db):
    factories.newsroom_groups()


@pytest.fixture
def some_subscribers():
    now = timezone.now()
    Subscriber.objects.create(email="a@example.com")
    Subscriber.objects.create(email="b@example.com")
    Subscriber.objects.create(email="=cmd@example.com", source=SubscriberSource.SITE, confirmed_at=None)
    Subscriber.objects.create(email="gone@example.com", is_active=False, unsubscribed_at=now)
    Subscriber.objects.create(email="off@example.com", is_active=False)


def login(client, role, *permissions):
    user = factories.make_user(f"{role or 'staff'}-user", role)
    user.user_permissions.add(*(Permission.objects.get(codename=codename) for codename in permissions))
    client.force_login(user)
    return client


@pytest.mark.parametrize("role", factories.ROLES)
def test_editors_and_publishers_see_the_list_and_its_counts_but_cannot_manage(client, role, some_subscribers):
    login(client, role)
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    text = page.content.decode()
    for count in ("<strong>2</strong> confirmed (receiving mail)", "<strong>1</strong> pending confirmation",
                  "<strong>1</strong> unsubscribed", "<strong>1</strong> switched off in the admin"):
        assert count in text
    assert "gone@example.com" in text and "Pending confirmation" in text
    assert 'value="export_csv"' not in text
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    subscriber = Subscriber.objects.get(email="a@example.com")
    assert client.post(f"{CHANGELIST}{subscriber.pk}/change/", {"email": "x@example.com"}).status_code == 403
    assert client.post(f"{CHANGELIST}{subscriber.pk}/delete/", {"post": "yes"}).status_code == 403
    refused = client.post(CHANGELIST, {"action": "export_csv", "_selected_action": [subscriber.pk]})
    assert refused.status_code == 200 and refused["Content-Type"] == "text/html; charset=utf-8"  # the list again
    assert Subscriber.objects.get(pk=subscriber.pk).email == "a@example.com"


def test_the_state_filter_shows_one_state(client, some_subscribers):
    login(client, "Editors")
    text = client.get(CHANGELIST, {"state": "pending"}).content.decode()
    assert "=cmd@example.com" in text and "a@example.com" not in text


def test_export_needs_its_permission_and_writes_no_formulas(client, some_subscribers):
    login(client, "Editors", "export_subscriber")
    ids = list(Subscriber.objects.order_by("pk").values_list("pk", flat=True))
    response = client.post(CHANGELIST, {"action": "export_csv", "_selected_action": ids})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["email", "state", "source", "created_at", "confirmed_at", "unsubscribed_at"]
    assert [row[:3] for row in rows[1:]] == [
        ["a@example.com", "Confirmed", "admin"], ["b@example.com", "Confirmed", "admin"],
        ["'=cmd@example.com", "Pending confirmation", "site"], ["gone@example.com", "Unsubscribed", "admin"],
        ["off@example.com", "Switched off", "admin"]]


def test_adding_in_the_admin_lowercases_the_domain_and_refuses_a_case_twin(client):
    login(client, None, "add_subscriber", "view_subscriber")
    response = client.post(f"{CHANGELIST}add/", {"email": "Reader@EXAMPLE.com", "is_active": "on", "_save": "Save"})
    assert response.status_code == 302
    added = Subscriber.objects.get()
    assert (added.email, added.source, added.receiving) == ("Reader@example.com", "admin", True)
    twin = client.post(f"{CHANGELIST}add/", {"email": "reader@example.COM", "is_active": "on", "_save": "Save"})
    assert twin.status_code == 200
    assert "A subscriber with this address already exists." in twin.content.decode()
    assert Subscriber.objects.count() == 1
