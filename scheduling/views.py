"""The health endpoint for load balancers and orchestrators, and the Prometheus metrics."""

import hmac

from django.conf import settings
from django.http import Http404, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from .metrics import metrics_text
from .health import health_check


@never_cache
@require_safe
def health(request):
    """200 when the database and the broker answer and the last scan is fresh (health.py); 503 otherwise.
    The body lists each check, so the failing part is visible (without hosts or error text:
    `manage.py health` shows those)."""
    report = health_check()
    return JsonResponse(report.as_dict(public=True), status=200 if report.healthy else 503)


@never_cache
@require_safe
def metrics(request):
    """Prometheus metrics, from the database at scrape time. Bearer token when one is set;
    otherwise open only where PUBLISHER_METRICS_OPEN allows (404 in production by default)."""
    token = settings.PUBLISHER_METRICS_TOKEN
    if token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), token.encode()):
            response = HttpResponse("A valid bearer token is required.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = "Bearer"
            return response
    elif not settings.PUBLISHER_METRICS_OPEN:
        raise Http404("metrics are off: set PUBLISHER_METRICS_TOKEN")
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_LATEST)
