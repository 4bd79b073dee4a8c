"""The admin: periodic tasks and their schedules are for superusers only; the daily report is
readable, with its chart."""

import re
from datetime import date, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from publisher.models import ArticleStatus
from scheduling import reports
from scheduling.services import schedules_sync
from tests.factories import make_article
from tests.support.clock import utc

BEAT_MODELS = [PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule]


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def staff(django_user_model):
    """A staff user holding every permission on django-celery-beat's models, yet no superuser."""
    user = django_user_model.objects.create_user("editor", "editor@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="django_celery_beat"))
    return user


@pytest.mark.django_db
def test_periodic_task_admin_is_invisible_to_staff_who_are_not_superusers(client, staff):
    schedules_sync()
    task = PeriodicTask.objects.first()
    client.force_login(staff)

    for model in BEAT_MODELS:
        assert client.get(url(model, "changelist")).status_code == 403, model
        assert client.get(url(model, "add")).status_code == 403, model
    assert client.get(url(PeriodicTask, "change", task.pk)).status_code == 403
    response = client.post(url(PeriodicTask, "changelist"), {"action": "run_tasks", "_selected_action": [task.pk]})
    assert response.status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert "django_celery_beat" not in index and "Periodic tasks" not in index


@pytest.mark.django_db
def test_superusers_see_and_edit_periodic_tasks(client, admin_user):
    schedules_sync()
    task = PeriodicTask.objects.get(task="scheduling.tasks.cleanup")
    client.force_login(admin_user)

    for model in BEAT_MODELS:
        assert client.get(url(model, "changelist")).status_code == 200, model
    assert "django_celery_beat" in client.get(reverse("admin:index")).content.decode()
    response = client.post(url(PeriodicTask, "changelist"), {"action": "disable_tasks", "_selected_action": [task.pk]})
    assert response.status_code == 302
    task.refresh_from_db()
    assert task.enabled is False


@pytest.mark.django_db
def test_daily_report_page_shows_the_chart_and_cannot_be_edited(client, django_user_model):
    for hour, n in ((0, 1), (9, 4), (23, 2)):
        for minute in range(n):
            at = utc(2026, 2, 3, hour, minute)
            make_article(title=f"A{hour}-{minute}", body="b", status=ArticleStatus.PUBLISHED,
                         publish_at=at, published_at=at + timedelta(seconds=1))
    report, _ = reports.daily_report_build(report_date=date(2026, 2, 3))
    reader = django_user_model.objects.create_user("reader", "r@example.com", "pw", is_staff=True)
    reader.user_permissions.add(Permission.objects.get(codename="view_dailyreport"))
    client.force_login(reader)

    page = client.get(url(type(report), "change", report.pk))

    assert page.status_code == 200
    html = page.content.decode()
    svg = re.search(r'<svg[^>]*class="hourly-chart".*?</svg>', html, re.S).group(0)
    assert svg.count('<rect class="bar"') == 24
    heights = [int(h) for h in re.findall(r'<rect class="bar" x="\d+" y="\d+" width="\d+" height="(\d+)"', svg)]
    assert heights[9] > heights[23] > heights[0] > 0 and heights[1] == 0, "bar heights follow the counts"
    assert "<title>09:00: 4</title>" in svg
    assert client.get(url(type(report), "add")).status_code == 403
    assert client.post(url(type(report), "change", report.pk), {"articles_published": 99}).status_code == 403
    changelist = client.get(url(type(report), "changelist"))
    assert changelist.status_code == 200 and "2026" in changelist.content.decode()


@pytest.mark.django_db
def test_daily_report_page_lists_failures_escaped(admin_client):
    report, _ = reports.daily_report_build(report_date=date(2026, 2, 3))
    report.worst_failures = [{"article_id": 7, "title": "<b>Bold</b>", "attempts": 3, "reason": "Gave up"}]
    report.notification_failures = [{"count": 2, "reason": "mailbox full"}]
    report.save()
    html = admin_client.get(url(type(report), "change", report.pk)).content.decode()
    assert "<ol><li><strong>#7 &lt;b&gt;Bold&lt;/b&gt;</strong> (3 attempts): Gave up</li></ol>" in html
    assert "<ul><li>2 × mailbox full</li></ul>" in html


@pytest.mark.django_db
def test_the_chart_escapes_what_it_writes():
    from scheduling.charts import hourly_svg

    svg = hourly_svg([{"label": "<script>", "zone": "x", "count": 1}], title='"><script>alert(1)</script>')
    assert "<script>" not in svg and "&lt;script&gt;" in svg
