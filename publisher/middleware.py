"""Activates the signed-in editor's own time zone for the request, so every time the admin shows
or reads is in that zone (Django converts at the form and template boundary)."""

from django.utils import timezone

from .models import EditorProfile
from .zones import UnknownZoneError, zone_named


class EditorTimezoneMiddleware:
    """Place after AuthenticationMiddleware. Without a profile (or with a blank zone) the site's
    TIME_ZONE applies."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = None
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            name = EditorProfile.objects.filter(user_id=user.pk).values_list("time_zone", flat=True).first()
            if name:
                try:
                    zone = zone_named(name)
                except UnknownZoneError:
                    zone = None  # a zone the tz database dropped: fall back rather than fail every page
        if zone is not None:
            timezone.activate(zone)
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
