"""Five-field cron expressions (pure): parse once, then ask when they fire.

No cron library is installed in Berg's environment, and the controller needs
only matching, so this is the classic Vixie cron syntax, in UTC::

    ┌ minute (0-59)
    │ ┌ hour (0-23)
    │ │ ┌ day of month (1-31)
    │ │ │ ┌ month (1-12 or jan-dec)
    │ │ │ │ ┌ day of week (0-7 or sun-sat; 0 and 7 are Sunday)
    * * * * *

Each field is a comma-separated list of ``*``, ``N``, ``N-M``, each optionally
followed by ``/STEP`` (``N/STEP`` runs from N to the field's end). The macros
``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly`` and
``@yearly`` (``@annually``) stand for their usual expressions. As in Vixie cron,
when both day fields are restricted (neither starts with ``*``) a day matches
either of them; otherwise both must match.

Example:
    >>> nightly = CronSchedule.parse("30 3 * * *")
    >>> nightly.next_after(datetime(2026, 1, 1, 12, 0, tzinfo=UTC))
    datetime.datetime(2026, 1, 2, 3, 30, tzinfo=datetime.timezone.utc)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

__all__ = ["CronError", "CronSchedule"]

_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_WEEKDAYS = {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_SEARCH_DAYS = 366 * 5
"""How far ``next_after`` looks: past any leap day; an expression that never fires (``0 0 30 2 *``) gives None."""


class CronError(ValueError):
    """The expression is not valid cron; the message says which field and why."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


_FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, _MONTHS),
    _Field("day of week", 0, 7, _WEEKDAYS),
)


def _value(text: str, field: _Field) -> int:
    lowered = text.lower()
    if lowered in field.names:
        return field.names[lowered]
    if not text.isdigit():
        raise CronError(f"{field.name}: {text!r} is not a number" + (" or a name" if field.names else ""))
    number = int(text)
    if not field.low <= number <= field.high:
        raise CronError(f"{field.name}: {number} is outside {field.low}-{field.high}")
    return number


def _parse_item(item: str, field: _Field) -> set[int]:
    body, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{field.name}: step {step_text!r} must be a positive number")
        step = int(step_text)
    if body == "*":
        low, high = field.low, field.high
    elif "-" in body:
        start, _, end = body.partition("-")
        low, high = _value(start, field), _value(end, field)
        if low > high:
            raise CronError(f"{field.name}: range {body!r} runs backwards")
    else:
        low = _value(body, field)
        high = field.high if step_text else low
    return set(range(low, high + 1, step))


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    if not text:
        raise CronError(f"{field.name}: empty")
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise CronError(f"{field.name}: empty item in {text!r}")
        values |= _parse_item(item, field)
    return frozenset(values)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed cron expression; times are UTC and matched to the minute."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 is Sunday (a 7 in the expression is stored as 0)."""
    either_day: bool
    """Both day fields are restricted: a day matches when either does."""

    @classmethod
    def parse(cls, expression: str) -> CronSchedule:
        """Parse five fields (or a macro).

        Raises:
            CronError: the expression is not valid; the message names the field.
        """
        text = _MACROS.get(expression.strip().lower(), expression.strip())
        parts = text.split()
        if len(parts) != len(_FIELDS):
            raise CronError(
                f"{expression!r} has {len(parts)} fields; cron needs 5 (minute hour day-of-month month day-of-week), "
                "e.g. '0 3 * * *'"
            )
        minutes, hours, days, months, weekdays = (
            _parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)
        )
        return cls(
            expression=expression.strip(),
            minutes=minutes,
            hours=hours,
            days=days,
            months=months,
            weekdays=frozenset(day % 7 for day in weekdays),
            either_day=not parts[2].startswith("*") and not parts[4].startswith("*"),
        )

    def _day_matches(self, moment: datetime) -> bool:
        if moment.month not in self.months:
            return False
        in_days = moment.day in self.days
        # isoweekday: Monday 1 .. Sunday 7; cron: Sunday 0.
        in_weekdays = moment.isoweekday() % 7 in self.weekdays
        return (in_days or in_weekdays) if self.either_day else (in_days and in_weekdays)

    def matches(self, moment: datetime) -> bool:
        """Whether the schedule fires in the minute of ``moment`` (converted to UTC)."""
        moment = moment.astimezone(UTC)
        return moment.minute in self.minutes and moment.hour in self.hours and self._day_matches(moment)

    def next_after(self, moment: datetime) -> datetime | None:
        """The first minute strictly after ``moment`` at which the schedule fires (UTC), or None within 5 years."""
        moment = moment.astimezone(UTC)
        start = moment.replace(second=0, microsecond=0)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        day = start.replace(hour=0, minute=0)
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in hours:
                    for minute in minutes:
                        candidate = day.replace(hour=hour, minute=minute)
                        if candidate > moment:
                            return candidate
            day += timedelta(days=1)
        return None

    def fired_between(self, after: datetime, until: datetime) -> datetime | None:
        """The first firing in ``(after, until]``, or None: what a poller asks once per tick."""
        first = self.next_after(after)
        return first if first is not None and first <= until.astimezone(UTC) else None
