"""{% pipeline_status_panel %}: the pipeline status panel, for users who may see articles."""

from django import template
from django.urls import reverse
from django.utils import timezone

from publisher.models import ArticleStatus

from ..dashboard import STATUS_ORDER, pipeline_status

register = template.Library()


@register.inclusion_tag("scheduling/pipeline_panel.html", takes_context=True)
def pipeline_status_panel(context):
    request = context.get("request")
    if request is None or not request.user.has_perm("publisher.view_article"):
        return {"visible": False}
    status = pipeline_status()
    changelist = reverse("admin:publisher_article_changelist")
    return {
        "visible": True,
        "zone_name": timezone.get_current_timezone_name(),
        "status": status,
        "rows": [(ArticleStatus(value).label, status.counts.get(value, 0), f"{changelist}?status__exact={value}", value)
                 for value in STATUS_ORDER],
        "changelist": changelist,
        "failures": [(article, reverse("admin:publisher_article_change", args=[article.pk]))
                     for article in status.failures],
        "at_risk": [(article, reverse("admin:publisher_article_change", args=[article.pk]))
                    for article in status.at_risk],
        # A change's own page (publisher.admin.revisions), under its article.
        "changes_at_risk": [(change, reverse("admin:publisher_article_revision", args=[change.article_id, change.pk]))
                            for change in status.changes_at_risk],
        "change_failures": [(change, reverse("admin:publisher_article_revision", args=[change.article_id, change.pk]))
                            for change in status.change_failures],
        "can_retry": request.user.has_perm("publisher.publish_article"),
    }
