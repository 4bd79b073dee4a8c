"""The admin side of the site: slug and alt text in the form, *View site* and *View on site*."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from publisher.models import Article

pytestmark = pytest.mark.django_db

def png() -> SimpleUploadedFile:
    out = io.BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="PNG")
    return SimpleUploadedFile("dot.png", out.getvalue(), content_type="image/png")


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def _add(client, **extra):
    data = {"title": "With a picture", "body": "Text.", "slug": "", "image_alt": "", "_save": "Save",
            "publish_at_0": "", "publish_at_1": "", "unpublish_at_0": "", "unpublish_at_1": "", **extra}
    return client.post("/admin/publisher/article/add/", data)


def test_an_image_needs_alt_text(superuser_client, settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path)
    response = _add(superuser_client, image=png())
    assert response.status_code == 200
    assert "Describe the image for readers who cannot see it" in response.content.decode()
    assert not Article.objects.exists()
    response = _add(superuser_client, image=png(),
                    image_alt="A red dot")
    assert response.status_code == 302
    assert Article.objects.get().image_alt == "A red dot"


def test_view_site_opens_the_public_index(superuser_client):
    page = superuser_client.get("/admin/").content.decode()
    assert '<a href="/">View site</a>' in page
    assert superuser_client.get("/").status_code == 200


def test_view_on_site_only_for_a_live_article(superuser_client, live_article):
    live = live_article("On the site")
    draft = Article.objects.create(title="Not yet", body="x", slug="not-yet")
    change = "/admin/publisher/article/{}/change/"
    assert 'href="/articles/on-the-site/"' in superuser_client.get(change.format(live.pk)).content.decode()
    assert "View on site" not in superuser_client.get(change.format(draft.pk)).content.decode()


def test_changing_a_live_articles_slug_in_the_admin_keeps_the_old_url(superuser_client, live_article, client):
    live = live_article("Renamed in admin", slug="renamed-in-admin")
    data = {"title": live.title, "body": live.body, "slug": "new-address", "image_alt": "", "_save": "Save",
            "unpublish_at_0": "", "unpublish_at_1": ""}
    response = superuser_client.post(f"/admin/publisher/article/{live.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Article.objects.get(pk=live.pk).slug == "new-address"
    assert superuser_client.get("/articles/renamed-in-admin/")["Location"] == "/articles/new-address/"
