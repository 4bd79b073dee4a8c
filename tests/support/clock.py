"""Instants for the calendar tests: UTC, and wall-clock times in a zone as UTC instants."""

from datetime import datetime
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo

UTC = dt_timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: ZoneInfo, *args, fold: int = 0) -> datetime:
    """A wall-clock time in `zone` as a UTC instant (time-machine gets UTC, so it leaves the
    process's TZ alone)."""
    return datetime(*args, tzinfo=zone, fold=fold).astimezone(UTC)
