"""The daily report as staff see it: the admin page with its chart of publications per hour,
and the HTML e-mail an opted-in staff member receives. Screenshots go to test-artifacts/browser/."""

from datetime import datetime, time, timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from publisher.models import Article, ArticleStatus
from scheduling import reports
from scheduling.models import ReportSubscription
from tests.factories import PASSWORD, make_article
from tests.support.browser import VIEWPORT, click_and_load

pytestmark = pytest.mark.integration


def test_staff_see_yesterdays_report_with_its_chart_in_the_admin_and_the_mail(browser, live_server, screenshot):
    zone = timezone.get_default_timezone()
    yesterday = timezone.localdate() - timedelta(days=1)
    for hour, count, late in ((6, 2, 0.4), (9, 5, 0.8), (13, 3, 1.5), (18, 1, 0.2)):
        for minute in range(count):
            at = datetime.combine(yesterday, time(hour, minute * 7), tzinfo=zone)
            make_article(title=f"Story {hour}:{minute}", body="Body.", status=ArticleStatus.PUBLISHED,
                         publish_at=at, published_at=at + timedelta(seconds=late))
    failed_at = datetime.combine(yesterday, time(11, 30), tzinfo=zone)
    broken = make_article(title="Broken feature", body="Body.", status=ArticleStatus.FAILED,
                          publish_at=failed_at, last_error="process: image could not be read")
    # A failure is dated by when it happened (its last update), not when the test ran.
    Article.objects.filter(pk=broken.pk).update(updated_at=failed_at + timedelta(seconds=2))
    ops = User.objects.create_superuser("ops", "ops@example.com", PASSWORD)
    ReportSubscription.objects.create(user=ops, daily_report=True)

    report, created = reports.daily_report_build(report_date=yesterday)
    assert created and report.articles_published == 11 and report.articles_failed == 1
    assert reports.daily_report_email(report_id=report.pk) == "sent"

    page = browser.new_context(viewport={**VIEWPORT, "height": 1200}).new_page()
    page.set_default_timeout(20_000)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", PASSWORD)
    click_and_load(page, "input[type=submit]")
    page.goto(f"{live_server.url}/admin/scheduling/dailyreport/{report.pk}/change/")
    chart = page.locator("svg.hourly-chart")
    chart.wait_for()
    assert chart.locator("rect.bar").count() == 24
    box = chart.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 100, "the chart is drawn at a readable size"
    assert "image could not be read" in page.content()
    screenshot(page, "report-in-admin")

    message, = mail.outbox
    assert message.to == ["ops@example.com"]
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    page.set_content(html)
    assert "Broken feature" in page.content()
    screenshot(page, "report-email")
