"""What an editor sees of the pre-flight in the admin: the at-risk flag in the article list (and
its filter), the agenda and the status panel, the findings in the Activity; and an edit saved in
the form is checked again at once."""

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone
from django.utils.html import escape

from publisher import dispatch, preflight
from publisher.models import Article, ArticleStatus
from tests import factories
from tests.factories import make_article, make_user
from tests.support.admin import CHANGELIST, change_url, errors, form_data
from tests.support.images import broken_png, png

pytestmark = pytest.mark.django_db

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture(autouse=True)
def preflight_on(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    settings.PUBLISHER_PREFLIGHT_MINUTES = 30


@pytest.fixture
def sent(monkeypatch):
    calls = []
    monkeypatch.setattr(dispatch, "preflight", lambda *, article_ids: calls.append(("preflight", article_ids)))
    monkeypatch.setattr(dispatch, "preflight_alerts", lambda *, article_ids: calls.append(("alert", article_ids)))
    return calls


@pytest.fixture
def editor_client(client):
    factories.newsroom_groups()
    client.force_login(make_user("edith", "Editors"))
    return client


def checked(title: str, image: bytes, alt: str = "A photo", minutes: float = 20) -> Article:
    article = make_article(title=title, status=ArticleStatus.SCHEDULED, image_alt=alt,
                           publish_at=timezone.now() + timedelta(minutes=minutes))
    article.image.save("photo.png", ContentFile(image), save=True)
    preflight.article_preflight(article_id=article.pk)
    return Article.objects.get(pk=article.pk)


def test_an_article_at_risk_is_flagged_in_the_list_the_agenda_the_panel_and_its_activity(sent, editor_client):
    risky = checked("Broken photo", broken_png())
    fine = checked("Fine photo", png(80, 60))
    assert risky.at_risk_reason and not fine.at_risk_reason

    listing = editor_client.get(CHANGELIST).content.decode()
    assert listing.count('<span class="at-risk">At risk</span>') == 1
    assert f'title="{escape(risky.at_risk_reason)}"' in listing
    only = editor_client.get(CHANGELIST, {"when": "at_risk"}).content.decode()
    assert "Broken photo" in only and "Fine photo" not in only

    agenda = editor_client.get("/admin/publisher/article/upcoming/").content.decode()
    assert agenda.count('class="at-risk"') == 1
    assert f'<span class="at-risk" title="{escape(risky.at_risk_reason)}">At risk</span>' in agenda

    panel = editor_client.get("/admin/").content.decode()
    assert '<table id="at-risk">' in panel
    assert "1 scheduled article is at risk: the pre-flight check found what would fail" in panel
    assert f'<a href="{change_url(risky)}">Broken photo</a>' in panel
    assert "Fine photo" not in panel.split('<table id="at-risk">')[1].split("</table>")[0]

    page = editor_client.get(change_url(risky)).content.decode()
    assert f"<td>At risk (pre-flight)</td><td>system</td><td>{escape(risky.at_risk_reason)}</td>" in page
    assert "The pre-flight check found what would fail: The image cannot be used" in page
    fine_page = editor_client.get(change_url(fine)).content.decode()
    assert "<td>Pre-flight passed</td><td>system</td><td>ready to go live " in fine_page


def test_no_panel_table_when_nothing_is_at_risk(sent, editor_client):
    checked("Fine photo", png(80, 60))
    assert '<table id="at-risk">' not in editor_client.get("/admin/").content.decode()


def test_an_edit_saved_in_the_form_clears_the_flag_and_is_checked_again_at_once(
        sent, editor_client, django_capture_on_commit_callbacks):
    risky = checked("No alt", png(80, 60), alt="")
    assert risky.at_risk_reason.startswith("The image has no alt text")
    local = timezone.localtime(risky.publish_at, PARIS)
    data = form_data(title="No alt", body=risky.body, image_alt="A red rectangle", slug=risky.slug,
                     publish=(local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")))
    with django_capture_on_commit_callbacks(execute=True):
        response = editor_client.post(change_url(risky), data)
    assert response.status_code == 302, errors(response)
    row = Article.objects.get(pk=risky.pk)
    assert (row.image_alt, row.at_risk_reason, row.preflight_checked_at) == ("A red rectangle", "", None)
    assert sent == [("preflight", [risky.pk])]  # the check made by `checked` ran outside a commit hook
