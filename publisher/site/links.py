"""Absolute links: PUBLISHER_SITE_URL when set (production: required), else the request's host
(without a request, e.g. in a webhook sent by a worker: the path alone)."""

from django.conf import settings


def absolute_url(request, path: str) -> str:
    if settings.PUBLISHER_SITE_URL:
        return settings.PUBLISHER_SITE_URL + path
    return request.build_absolute_uri(path) if request is not None else path
