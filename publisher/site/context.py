from django.conf import settings


def site(request):
    return {"site_name": settings.PUBLISHER_SITE_NAME}
