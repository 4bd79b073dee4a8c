from django.conf import settings
from django.conf.urls.static import static
from django.urls import include, path

from publisher.admin import site as admin_site
from scheduling.views import health, metrics

urlpatterns = [
    path("admin/", admin_site.urls),
    path("health/", health, name="health"),
    path("metrics/", metrics, name="metrics"),
    path("", include("publisher.site.urls")),
] + static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
