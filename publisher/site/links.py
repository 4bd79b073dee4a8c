"""Absolute links: PUBLISHER_SITE_URL when set (production: required), else the request's host."""

from django.conf import settings


def absolute_url(request, path: str) -> str:
    if settings.PUBLISHER_SITE_URL:
        return settings.PUBLISHER_SITE_URL + path
    return request.build_absolute_uri(path)
