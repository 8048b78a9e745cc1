"""Cron expressions: parsing, matching, the next firing, and the Vixie day rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from berg_controller.cron import CronError, CronSchedule

pytestmark = pytest.mark.unit


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_every_minute() -> None:
    schedule = CronSchedule.parse("* * * * *")
    assert schedule.matches(at(2026, 3, 1, 12, 34))
    assert schedule.next_after(at(2026, 3, 1, 12, 34, 20)) == at(2026, 3, 1, 12, 35)


def test_nightly_at_three_thirty() -> None:
    schedule = CronSchedule.parse("30 3 * * *")
    assert schedule.matches(at(2026, 3, 1, 3, 30, 59))
    assert not schedule.matches(at(2026, 3, 1, 3, 31))
    assert schedule.next_after(at(2026, 3, 1, 3, 30)) == at(2026, 3, 2, 3, 30)
    assert schedule.next_after(at(2026, 3, 1, 3, 29, 59)) == at(2026, 3, 1, 3, 30)


@pytest.mark.parametrize(
    ("expression", "minutes", "hours"),
    [
        ("*/15 * * * *", {0, 15, 30, 45}, set(range(24))),
        ("0,30 9-17/4 * * *", {0, 30}, {9, 13, 17}),
        ("5/20 0 * * *", {5, 25, 45}, {0}),
        ("@hourly", {0}, set(range(24))),
        ("@daily", {0}, {0}),
    ],
)
def test_lists_ranges_steps_and_macros(expression: str, minutes: set[int], hours: set[int]) -> None:
    schedule = CronSchedule.parse(expression)
    assert schedule.minutes == minutes
    assert schedule.hours == hours


def test_names_and_sunday_as_seven() -> None:
    schedule = CronSchedule.parse("0 12 * JAN-mar sun,7")
    assert schedule.months == {1, 2, 3}
    assert schedule.weekdays == {0}
    assert schedule.matches(at(2026, 1, 4, 12, 0))  # a Sunday
    assert not schedule.matches(at(2026, 1, 5, 12, 0))  # a Monday
    assert not schedule.matches(at(2026, 4, 5, 12, 0))  # a Sunday in April


def test_restricted_day_fields_match_either() -> None:
    # The 13th of the month or any Friday (Vixie cron's rule), not only Friday the 13th.
    schedule = CronSchedule.parse("0 0 13 * 5")
    assert schedule.matches(at(2026, 1, 13))  # a Tuesday
    assert schedule.matches(at(2026, 1, 16))  # a Friday
    assert not schedule.matches(at(2026, 1, 14))
    # With one day field a star, both must match.
    weekdays_only = CronSchedule.parse("0 0 * * 1-5")
    assert weekdays_only.matches(at(2026, 1, 16))
    assert not weekdays_only.matches(at(2026, 1, 17))


def test_times_in_other_zones_are_read_in_utc() -> None:
    schedule = CronSchedule.parse("0 3 * * *")
    assert schedule.matches(datetime(2026, 1, 1, 4, 0, tzinfo=timezone(timedelta(hours=1))))


def test_fired_between_is_half_open() -> None:
    schedule = CronSchedule.parse("0 3 * * *")
    assert schedule.fired_between(at(2026, 1, 1, 2, 59, 59), at(2026, 1, 1, 3, 0)) == at(2026, 1, 1, 3, 0)
    assert schedule.fired_between(at(2026, 1, 1, 3, 0), at(2026, 1, 1, 3, 0, 30)) is None
    assert schedule.fired_between(at(2026, 1, 1, 3, 1), at(2026, 1, 2, 2, 59)) is None
    # Several slots in the window: one answer, the first.
    assert CronSchedule.parse("* * * * *").fired_between(at(2026, 1, 1), at(2026, 1, 1, 1)) == at(2026, 1, 1, 0, 1)


def test_leap_day_and_never() -> None:
    assert CronSchedule.parse("0 0 29 2 *").next_after(at(2026, 3, 1)) == at(2028, 2, 29)
    assert CronSchedule.parse("0 0 30 2 *").next_after(at(2026, 1, 1)) is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("* * * *", "has 4 fields"),
        ("* * * * * *", "has 6 fields"),
        ("60 * * * *", "minute: 60 is outside 0-59"),
        ("* 24 * * *", "hour: 24 is outside 0-23"),
        ("* * 0 * *", "day of month: 0 is outside 1-31"),
        ("* * * 13 *", "month: 13 is outside 1-12"),
        ("* * * * 8", "day of week: 8 is outside 0-7"),
        ("*/0 * * * *", "step '0' must be a positive number"),
        ("5-1 * * * *", "runs backwards"),
        ("a * * * *", "minute: 'a' is not a number"),
        ("* * * foo *", "is not a number or a name"),
        ("1,,2 * * * *", "empty item"),
        ("@reboot", "has 1 fields"),
    ],
)
def test_invalid_expressions_name_the_field(expression: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        CronSchedule.parse(expression)


@settings(max_examples=200, deadline=None)
@given(
    minute=st.sampled_from(["*", "*/7", "0", "13,47", "10-20/3"]),
    hour=st.sampled_from(["*", "3", "*/6", "8-18"]),
    day=st.sampled_from(["*", "1", "15", "28-31"]),
    weekday=st.sampled_from(["*", "0", "1-5", "6"]),
    moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
)
def test_next_after_is_the_first_matching_minute(
    minute: str, hour: str, day: str, weekday: str, moment: datetime
) -> None:
    schedule = CronSchedule.parse(f"{minute} {hour} {day} * {weekday}")
    found = schedule.next_after(moment)
    assert found is not None
    assert found > moment
    assert schedule.matches(found)
    assert found.second == 0
    assert found.microsecond == 0
    # No matching minute in between (checked over the first two days of the gap, minute by minute).
    probe = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while probe < found and probe < moment + timedelta(days=2):
        assert not schedule.matches(probe)
        probe += timedelta(minutes=1)
