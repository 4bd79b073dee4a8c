"""The health endpoint for load balancers and orchestrators."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from .selectors import health_check


@never_cache
@require_safe
def health(request):
    """200 when the database and the broker answer and the last scan is recent; 503 otherwise.
    The body lists each check, so the failing part is visible (without hosts or error text:
    `manage.py health` shows those)."""
    report = health_check()
    return JsonResponse(report.as_dict(public=True), status=200 if report.healthy else 503)
