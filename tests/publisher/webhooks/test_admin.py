"""Endpoints are managed in the admin; the delivery log is read-only with *Redeliver*."""

from django.urls import reverse
from django.utils import timezone

from publisher import revisions
from publisher.models import ArticleRevision, ArticleStatus
from publisher.states import RevisionStatus
from publisher.webhooks import services as webhooks
from publisher.webhooks.models import Delivery, DeliveryStatus, Endpoint


def test_an_endpoint_is_added_with_its_events_and_a_generated_secret(admin_client):
    page = admin_client.get(reverse("admin:webhooks_endpoint_add"))
    secret = page.context["adminform"].form["secret"].value()
    assert secret.startswith("whsec_") and len(secret) > 30
    response = admin_client.post(reverse("admin:webhooks_endpoint_add"), {
        "url": "https://search.example/hooks/publisher", "description": "Search index",
        "events": ["published", "unpublished"], "enabled": "on", "secret": secret})
    assert response.status_code == 302, response.context["adminform"].form.errors
    endpoint = Endpoint.objects.get()
    assert (endpoint.events, endpoint.secret, endpoint.enabled) == (["published", "unpublished"], secret, True)


def test_an_endpoint_needs_an_http_url_and_an_event(admin_client):
    response = admin_client.post(reverse("admin:webhooks_endpoint_add"), {
        "url": "ftp://files.example/x", "events": [], "secret": "s"})
    errors = response.context["adminform"].form.errors
    assert "url" in errors and "events" in errors
    assert not Endpoint.objects.exists()


def test_the_delivery_log_shows_status_code_attempts_and_error_and_redelivers_a_failed_one(
        admin_client, article_factory):
    endpoint = Endpoint.objects.create(url="https://a.example/hook", events=["published"])
    article = article_factory(title="Logged", status=ArticleStatus.PUBLISHED, published_at=timezone.now())
    webhooks.record(event="published", article_ids=[article.pk])
    Delivery.objects.update(status=DeliveryStatus.FAILED, attempts=7, last_status_code=503,
                            last_error="HTTP 503: upstream down")
    row = Delivery.objects.get()
    changelist = reverse("admin:webhooks_delivery_changelist")
    page = admin_client.get(changelist + f"?endpoint__id__exact={endpoint.pk}")
    assert page.status_code == 200
    html = page.content.decode()
    assert "HTTP 503: upstream down" in html and "503" in html and str(row.pk) in html
    response = admin_client.post(changelist, {"action": "redeliver", "_selected_action": [str(row.pk)]}, follow=True)
    assert "1 deliveries will be sent again now" in response.content.decode()
    row.refresh_from_db()
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 7)
    Delivery.objects.update(status=DeliveryStatus.DELIVERED)
    response = admin_client.post(changelist, {"action": "redeliver", "_selected_action": [str(row.pk)]}, follow=True)
    assert "it was delivered (got a 2xx): it is never sent again" in response.content.decode()


def test_editing_a_live_articles_content_in_the_admin_records_one_updated_event(admin_client, article_factory):
    Endpoint.objects.create(url="https://a.example/hook", events=["updated"])
    live = article_factory(title="Live", body="Old text.", status=ArticleStatus.PUBLISHED,
                           publish_at=timezone.now(), published_at=timezone.now())
    draft = article_factory(title="Draft", body="Old text.")
    for article in (live, draft):
        response = admin_client.post(reverse("admin:publisher_article_change", args=[article.pk]), {
            "title": article.title, "body": "New text.", "_save": "Save",
            "publish_at_0": "", "publish_at_1": "", "publish_at_2": "",
            "unpublish_at_0": "", "unpublish_at_1": "", "unpublish_at_2": ""})
        assert response.status_code == 302
    # The live article's edit is a change (publisher.revisions), published now through the
    # pipeline: its `updated` event is recorded when it goes live, once.
    assert not Delivery.objects.exists()
    revision = ArticleRevision.objects.get()
    assert (revision.article_id, revision.status) == (live.pk, RevisionStatus.PUBLISHING)
    token = str(revision.claim_token)
    revisions.step_process(revision_ids=[revision.pk], token=token)
    revisions.step_thumbnails(revision_ids=[revision.pk], token=token)
    assert revisions.step_apply(revision_ids=[revision.pk], token=token) == ([revision.pk], 0.0)
    assert revisions.step_apply(revision_ids=[revision.pk], token=token) == ([], 0.0)
    row = Delivery.objects.get()
    assert (row.event, row.article_id) == ("updated", live.pk)
