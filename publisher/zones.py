"""Time zones for people: reading a wall-clock time in a zone (a time the clocks skip or show
twice is refused with what happened and what to pick), naming zones, and showing times and
durations the way editors read them. No forms, no models: the admin's forms, the commands, the
importer and the schedule rules all read and show times through this module."""

import functools
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo
from importlib import resources
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils import timezone

from .text import duration_text


class UnknownZoneError(ValueError):
    """A zone name that is not in the time-zone database."""


def available_time_zones() -> frozenset[str]:
    """Every zone name this machine's tz database knows."""
    # Read at call time, not in a field's choices: a tzdata upgrade must not make migrations drift.
    return frozenset(zoneinfo.available_timezones())


def _tzdata_zi() -> str:
    """The tz database's own compact source (tzdata.zi): from the system's zoneinfo directory
    that zoneinfo reads, else from the tzdata package."""
    for directory in zoneinfo.TZPATH:
        path = Path(directory) / "tzdata.zi"
        if path.is_file():
            return path.read_text(encoding="utf-8")
    return resources.files("tzdata").joinpath("zoneinfo", "tzdata.zi").read_text(encoding="utf-8")


@functools.cache
def _zones_and_links() -> tuple[frozenset[str], dict[str, str]]:
    zones, links = set(), {}
    for line in _tzdata_zi().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "Z":
            zones.add(parts[1])
        elif len(parts) >= 3 and parts[0] == "L":
            links[parts[2]] = parts[1]  # L <target> <alias>
    return frozenset(zones), links


def current_time_zones() -> frozenset[str]:
    """The zones an editor may pick: the tz database's own zones, without its links (the
    deprecated aliases US/Eastern, Asia/Calcutta, Europe/Kiev, GMT, ...), that this machine
    can load."""
    zones, _ = _zones_and_links()
    return zones & available_time_zones()


def zone_alias_target(name: str) -> str | None:
    """The current name for a deprecated alias ('Asia/Calcutta' -> 'Asia/Kolkata'), else None."""
    _, links = _zones_and_links()
    target = links.get(name)
    while target in links:  # a link to a link
        target = links[target]
    return target


def zone_named(name: str) -> tzinfo:
    """The zone called `name` ('Europe/Paris'); the site's zone for an empty name. Raises
    UnknownZoneError for a name the time-zone database does not know."""
    if not name:
        return timezone.get_default_timezone()
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise UnknownZoneError(f"{name!r} is not a known time zone (expected a name such as Europe/Paris).") from None


def zone_from_name(name: str) -> tzinfo:
    """Like zone_named, but a name that is no longer known (a stored preference after a tzdata
    update) falls back to the site's zone."""
    try:
        return zone_named(name)
    except UnknownZoneError:
        return timezone.get_default_timezone()


# --- Showing times ------------------------------------------------------------------------------

def utc_offset(value: timedelta | None) -> str:
    minutes = int((value or timedelta()).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def zone_label(zone: tzinfo | None = None, *, at: datetime | None = None) -> str:
    """'Europe/Paris (CET, UTC+01:00)': the zone's name, and its abbreviation and offset now."""
    zone = zone or timezone.get_current_timezone()
    moment = timezone.localtime(at or timezone.now(), zone)
    name = getattr(zone, "key", None) or str(zone)
    abbreviation = moment.tzname()
    offset = utc_offset(moment.utcoffset())
    if abbreviation and abbreviation != name and not abbreviation.startswith(("+", "-")):
        return f"{name} ({abbreviation}, {offset})"
    return f"{name} ({offset})"


def local_time_text(value: datetime | None, *, zone: tzinfo | None = None, with_seconds: bool | None = None,
                    short: bool = False) -> str:
    """'Mon 23 Nov 2026, 14:05 CET' in the editor's zone (seconds only when not zero; `short`
    leaves out the year when it is this year's)."""
    if value is None:
        return "—"
    zone = zone or timezone.get_current_timezone()
    local = timezone.localtime(value, zone)
    clock = "%H:%M:%S" if (with_seconds or (with_seconds is None and local.second)) else "%H:%M"
    abbreviation = local.tzname() or ""
    if abbreviation.startswith(("+", "-")):
        abbreviation = utc_offset(local.utcoffset())
    year = "" if short and local.year == timezone.localtime(timezone.now(), zone).year else f" {local.year}"
    return f"{local:%a} {local.day} {local:%b}{year}, {local.strftime(clock)} {abbreviation}".strip()




# --- Reading local times ------------------------------------------------------------------------

def exists_locally(naive: datetime, aware: datetime, zone: tzinfo) -> bool:
    """Whether `aware` (naive read in `zone`) is a time the zone's clocks actually show."""
    return aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None, fold=0) == naive.replace(fold=0)


def is_ambiguous(naive: datetime, zone: tzinfo) -> bool:
    """Whether the clocks in `zone` show `naive` twice (a DST fold)."""
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    return (first.utcoffset() != second.utcoffset() and exists_locally(naive, first, zone)
            and exists_locally(naive, second, zone))


def local_time_resolve(*, naive: datetime, zone: tzinfo, fold: int | None = None) -> datetime:
    """The aware datetime an editor meant by a wall-clock time in `zone`. Raises ValidationError
    (code `nonexistent` or `ambiguous`) for a time the clocks skip or show twice, unless `fold`
    (0: the first occurrence, 1: the second) says which of two is meant."""
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return first
    name = getattr(zone, "key", str(zone))
    when = f"{naive:%H:%M} on {naive:%a} {naive.day} {naive:%b %Y}"
    jump = duration_text(abs(second.utcoffset() - first.utcoffset()))
    if exists_locally(naive, first, zone) and exists_locally(naive, second, zone):
        if fold in (0, 1):
            return naive.replace(tzinfo=zone, fold=fold)
        raise ValidationError(
            f"{when} happens twice in {name}: the clocks go back {jump} that night "
            f"({first.tzname()} → {second.tzname()}). Choose which {naive:%H:%M} you mean below: the first "
            f"({first.tzname()}, {utc_offset(first.utcoffset())}) or the second "
            f"({second.tzname()}, {utc_offset(second.utcoffset())}).",
            code="ambiguous")
    start = naive.replace(second=0, microsecond=0)
    for _ in range(24 * 60):  # walk back to the first skipped minute (gaps are at most hours)
        earlier = start - timedelta(minutes=1)
        if exists_locally(earlier, earlier.replace(tzinfo=zone), zone):
            break
        start = earlier
    end = start + abs(second.utcoffset() - first.utcoffset())
    raise ValidationError(
        f"{when} does not exist in {name}: the clocks go forward {jump} at {start:%H:%M} "
        f"({first.tzname()} → {second.tzname()}) and jump straight to {end:%H:%M}. "
        f"Choose a time before {start:%H:%M} or from {end:%H:%M} on.",
        code="nonexistent")
