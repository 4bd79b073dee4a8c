"""The editors' admin, on its own site (`publisher.admin.site`).

site      the AdminSite instance settings/urls.py serves
display   small pieces shown in lists and pages (status badge, zoned time, lateness)
articles  the article admin: list, form, bulk actions, agenda, time zone
actions   the article page's buttons: one small POST view per state-machine action
people    subscribers, notifications, users (with their time zone) and groups
releases  releases: list, page, Schedule / Reschedule / Unschedule / rollback, *Add to a release*
"""

from . import articles, people, releases  # noqa: F401 (registers the model admins)
from .site import site

__all__ = ["site"]
