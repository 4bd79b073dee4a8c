"""The month calendar's releases and warnings as the admin shows them: each release at its time
in the editor's zone (the zone named), its status, its number of articles and the articles
inside it; each warning a sentence whose items link to their pages. The rules are
publisher.conflicts'; this only draws them."""

from datetime import date

from django.utils import timezone

from ..models import ArticleStatus
from ..selectors import MonthCalendar
from ..zones import utc_offset
from .conflicts import conflict_html  # noqa: F401 (the view draws warnings through this module)
from .display import status_badge
from .releases import release_badge


def clock_text(value, zone) -> str:
    """'09:00 CET': the time of day in `zone`, the zone named (its offset where it has no abbreviation)."""
    local = timezone.localtime(value, zone)
    name = local.tzname() or ""
    if not name or name.startswith(("+", "-")):
        name = utc_offset(local.utcoffset())
    return f"{local:%H:%M} {name}"


def release_cells(calendar: MonthCalendar, zone) -> dict[date, list[dict]]:
    """Each day's releases, ready for the template."""
    return {day: [{"release": item.release, "when": clock_text(item.release.publish_at, zone),
                   "badge": release_badge(item.release.status), "at_risk": item.at_risk,
                   # A member's badge only when it says more than "in the release".
                   "members": [(m, "" if m.status == ArticleStatus.IN_RELEASE else status_badge(m.status))
                               for m in item.members]} for item in items]
            for day, items in calendar.releases.items()}


def with_releases(weeks: list, calendar: MonthCalendar, zone) -> list:
    """The view's weeks of (day, rows) cells with each day's releases as a third element."""
    cells = release_cells(calendar, zone)
    return [[(cell[0], cell[1], cells.get(cell[0], [])) if cell else None for cell in week] for week in weeks]
