"""Reading and showing local times for editors: DST gaps and folds in several zones, zone names
and offsets, durations. Pure functions; no database."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from publisher.zones import duration_text, local_time_resolve, local_time_text, zone_label


def resolve_error(naive, zone, fold=None) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        local_time_resolve(naive=naive, zone=ZoneInfo(zone), fold=fold)
    return info.value


def test_an_ordinary_time_is_read_in_the_zone():
    aware = local_time_resolve(naive=datetime(2026, 7, 1, 12, 0), zone=ZoneInfo("Europe/Paris"))
    assert aware.astimezone(UTC) == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)


def test_new_york_spring_gap_says_when_the_clocks_jump():
    error = resolve_error(datetime(2026, 3, 8, 2, 30), "America/New_York")
    assert error.code == "nonexistent"
    assert error.message == (
        "02:30 on Sun 8 Mar 2026 does not exist in America/New_York: the clocks go forward 1 h at 02:00 "
        "(EST → EDT) and jump straight to 03:00. Choose a time before 02:00 or from 03:00 on.")


def test_lord_howe_half_hour_gap_and_fold():
    gap = resolve_error(datetime(2026, 10, 4, 2, 15), "Australia/Lord_Howe")
    assert gap.code == "nonexistent"
    assert "the clocks go forward 30 min at 02:00" in gap.message and "jump straight to 02:30" in gap.message
    fold = resolve_error(datetime(2026, 4, 5, 1, 45), "Australia/Lord_Howe")
    assert fold.code == "ambiguous" and "the clocks go back 30 min" in fold.message
    first = local_time_resolve(naive=datetime(2026, 4, 5, 1, 45), zone=ZoneInfo("Australia/Lord_Howe"), fold=0)
    second = local_time_resolve(naive=datetime(2026, 4, 5, 1, 45), zone=ZoneInfo("Australia/Lord_Howe"), fold=1)
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(minutes=30)


def test_a_fold_needs_a_choice_and_takes_either():
    error = resolve_error(datetime(2026, 11, 1, 1, 30), "America/New_York")
    assert error.code == "ambiguous"
    assert "the first (EDT, UTC-04:00) or the second (EST, UTC-05:00)" in error.message
    zone = ZoneInfo("America/New_York")
    first = local_time_resolve(naive=datetime(2026, 11, 1, 1, 30), zone=zone, fold=0)
    second = local_time_resolve(naive=datetime(2026, 11, 1, 1, 30), zone=zone, fold=1)
    assert first.astimezone(UTC) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert second.astimezone(UTC) == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def test_zone_labels_name_the_zone_and_spell_numeric_abbreviations_as_offsets():
    july = datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert zone_label(ZoneInfo("Europe/Paris"), at=july) == "Europe/Paris (CEST, UTC+02:00)"
    assert zone_label(ZoneInfo("Asia/Dubai"), at=july) == "Asia/Dubai (UTC+04:00)"
    assert zone_label(ZoneInfo("America/St_Johns"), at=july) == "America/St_Johns (NDT, UTC-02:30)"
    assert local_time_text(july, zone=ZoneInfo("Asia/Dubai")) == "Wed 1 Jul 2026, 14:00 UTC+04:00"
    with timezone.override(ZoneInfo("Asia/Kolkata")):
        assert local_time_text(july) == "Wed 1 Jul 2026, 15:30 IST"
    assert local_time_text(None) == "—"


def test_durations_read_naturally():
    assert duration_text(timedelta(seconds=0.3)) == "0.3 s"
    assert duration_text(timedelta(seconds=42)) == "42 s"
    assert duration_text(timedelta(minutes=3, seconds=5)) == "3 min 5 s"
    assert duration_text(timedelta(hours=2, minutes=1, seconds=9)) == "2 h 1 min"
    assert duration_text(timedelta(days=3, hours=4)) == "3 d 4 h"
