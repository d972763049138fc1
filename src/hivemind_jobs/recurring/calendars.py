"""Calendars: the wall-clock times in which a recurring schedule may run (pure, no I/O).

A calendar reads *wall-clock time*: ``contains(local)`` and ``next_change(local)`` take a naive
``datetime`` holding the time as a clock on the wall of the schedule's zone shows it (the schedule
converts each instant before asking). The built-ins refuse aware datetimes rather than guess which
zone was meant.

``next_change(local)`` returns the earliest wall time after ``local`` at which ``contains`` may give
a different answer (the schedule jumps there instead of testing every run time in between), or
``None`` when the calendar cannot tell; the schedule then tests the next run time (cron) or the next
minute (interval). A calendar that never changes again may return any later time, even
``datetime.max``; the schedule stops searching at its horizon.

Schedules refer to calendars inline (a :class:`Calendar`) or by name (resolved through a
:class:`CalendarRegistry` when the next run is computed). Built-in calendars are stored in JSON as a
``kind`` tag plus parameters; a user calendar is stored by the name it is registered under.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from calendar import monthrange
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, date, datetime, time, timedelta
from types import MappingProxyType

from hivemind_jobs.errors import ScheduleError

__all__ = [
    "BUILTIN_CALENDARS",
    "CALENDAR_NAME_PATTERN",
    "Calendar",
    "CalendarRegistry",
    "DailyTimeFrame",
    "DayCalendar",
    "WeekdayCalendar",
    "check_calendar_name",
]

#: names of registered calendars (also how a schedule's JSON refers to them)
CALENDAR_NAME_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,100}")

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTH_LABELS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_JSON_TIME = re.compile(r"\d{2}:\d{2}:\d{2}")


class Calendar(ABC):
    """Which wall-clock times are in the calendar. Subclass it for your own calendars (make them
    hashable values if schedules holding them are compared or hashed) and register them by name."""

    @abstractmethod
    def contains(self, local: datetime) -> bool:
        """Whether the naive wall-clock time ``local`` is in the calendar."""

    def next_change(self, local: datetime) -> datetime | None:
        """The earliest wall time after ``local`` where :meth:`contains` may change, or ``None``."""
        return None

    def describe(self) -> str:
        """A short human-readable description (used by ``Schedule.explain``)."""
        return type(self).__name__

    def to_json(self) -> dict[str, object]:
        """The calendar as ``{"kind": ..., params}``; only built-in calendars can be stored inline."""
        raise ScheduleError(
            f"calendar {self.describe()!r} ({type(self).__name__}) cannot be stored inline in JSON; "
            "register it in a CalendarRegistry and refer to it by its name"
        )

    @staticmethod
    def from_json(data: object) -> Calendar:
        """A built-in calendar from its JSON (strictly validated: anything malformed is a ScheduleError)."""
        if not isinstance(data, dict):
            raise ScheduleError(f"calendar JSON must be an object with a 'kind', got {type(data).__name__}")
        kind = data.get("kind")
        loader = _LOADERS.get(kind) if isinstance(kind, str) else None
        if loader is None:
            raise ScheduleError(f"calendar JSON has unknown kind {kind!r}; expected one of {sorted(_LOADERS)}")
        return loader(data)


def _require_naive(local: datetime) -> None:
    if not isinstance(local, datetime):
        raise ScheduleError(f"calendars read a datetime (wall-clock time), got {type(local).__name__}")
    if local.tzinfo is not None:
        raise ScheduleError(
            f"calendars read naive wall-clock time, got the aware {local.isoformat()}; "
            "pass instant.astimezone(zone).replace(tzinfo=None)"
        )


def _next_midnight(local: datetime, days: int = 1) -> datetime:
    return datetime.combine(local.date() + timedelta(days=days), time())


def _parse_weekday(value: object) -> int:
    if isinstance(value, str) and value.lower() in _DAY_NAMES:
        return _DAY_NAMES.index(value.lower())
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 6:
        return value
    raise ScheduleError(f"weekday {value!r} is not valid; use 0 (Monday) to 6 (Sunday) or one of {list(_DAY_NAMES)}")


@dataclass(frozen=True, init=False)
class WeekdayCalendar(Calendar):
    """Whole days of the week, Monday = 0 … Sunday = 6 (or the names ``"mon"`` … ``"sun"``)."""

    days: frozenset[int]

    def __init__(self, days: Iterable[int | str] | int | str) -> None:
        values: Iterable[object] = (days,) if isinstance(days, int | str) else days
        parsed = frozenset(_parse_weekday(value) for value in values)
        if not parsed:
            raise ScheduleError("WeekdayCalendar needs at least one weekday, e.g. WeekdayCalendar(['mon', 'tue'])")
        if len(parsed) == 7:
            raise ScheduleError("WeekdayCalendar with all seven weekdays matches every time; use no calendar instead")
        object.__setattr__(self, "days", parsed)

    def contains(self, local: datetime) -> bool:
        _require_naive(local)
        return local.weekday() in self.days

    def next_change(self, local: datetime) -> datetime:
        _require_naive(local)
        inside = local.weekday() in self.days
        for ahead in range(1, 7):
            if ((local.weekday() + ahead) % 7 in self.days) != inside:
                return _next_midnight(local, ahead)
        raise AssertionError("a weekday calendar has one to six days")  # pragma: no cover

    def describe(self) -> str:
        runs: list[list[int]] = []
        for day in sorted(self.days):
            if runs and runs[-1][-1] == day - 1:
                runs[-1].append(day)
            else:
                runs.append([day])
        parts = [
            f"{_DAY_LABELS[run[0]]}-{_DAY_LABELS[run[-1]]}" if len(run) >= 3 else ", ".join(_DAY_LABELS[d] for d in run)
            for run in runs
        ]
        return ", ".join(parts)

    def to_json(self) -> dict[str, object]:
        return {"kind": "weekdays", "days": sorted(self.days)}


def _format_time(value: time) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


@dataclass(frozen=True)
class DailyTimeFrame(Calendar):
    """Every day from ``start`` (included) to ``end`` (excluded); over midnight when start > end."""

    start: time
    end: time

    def __post_init__(self) -> None:
        for label, value in (("start", self.start), ("end", self.end)):
            if not isinstance(value, time):
                raise ScheduleError(f"DailyTimeFrame {label} must be a datetime.time, got {type(value).__name__}")
            if value.tzinfo is not None:
                raise ScheduleError(f"DailyTimeFrame {label} {value} must be naive: it is read in the schedule's zone")
            if value.microsecond:
                raise ScheduleError(f"DailyTimeFrame {label} {value} must be whole seconds; drop the microseconds")
        if self.start == self.end:
            raise ScheduleError(
                f"DailyTimeFrame start and end are both {_format_time(self.start)}; an empty (or whole-day) frame "
                "is not a calendar: use different times, or no calendar"
            )

    def contains(self, local: datetime) -> bool:
        _require_naive(local)
        clock = local.time()
        if self.start < self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end

    def next_change(self, local: datetime) -> datetime:
        _require_naive(local)
        today, tomorrow = local.date(), local.date() + timedelta(days=1)
        boundaries = (datetime.combine(day, moment) for day in (today, tomorrow) for moment in (self.start, self.end))
        return min(boundary for boundary in boundaries if boundary > local)

    def describe(self) -> str:
        overnight = " (overnight)" if self.start > self.end else ""
        return f"{_format_time(self.start)}-{_format_time(self.end)}{overnight}"

    def to_json(self) -> dict[str, object]:
        return {"kind": "time_frame", "start": self.start.isoformat(), "end": self.end.isoformat()}


DaySpec = tuple[int, int | None, int | None]


def _parse_day_spec(value: object) -> DaySpec:
    parts: Sequence[object]
    if isinstance(value, int) and not isinstance(value, bool):
        parts = (value,)
    elif isinstance(value, tuple | list) and 1 <= len(value) <= 3:
        parts = value
    else:
        raise ScheduleError(
            f"DayCalendar date {value!r} is not valid; use a day of the month, or a tuple (day, month, year) "
            "where month and year may be None"
        )
    day, month, year = (*parts, None, None)[:3]
    if not (isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 31):
        raise ScheduleError(f"DayCalendar day {day!r} is not valid; use 1 to 31")
    if month is not None and not (isinstance(month, int) and not isinstance(month, bool) and 1 <= month <= 12):
        raise ScheduleError(f"DayCalendar month {month!r} is not valid; use 1 to 12 or None for every month")
    if year is not None and not (isinstance(year, int) and not isinstance(year, bool) and 1 <= year <= MAXYEAR):
        raise ScheduleError(f"DayCalendar year {year!r} is not valid; use 1 to {MAXYEAR} or None for every year")
    if month is not None:
        # a leap year stands in when no year is given, so 29 February is accepted
        longest = monthrange(year if year is not None else 2000, month)[1]
        if day > longest:
            where = f"{_MONTH_LABELS[month - 1]} {year}" if year is not None else _MONTH_LABELS[month - 1]
            raise ScheduleError(f"DayCalendar day {day} does not exist in {where} (it has {longest} days)")
    return (day, month, year)


def _spec_matches(spec: DaySpec, day: date) -> bool:
    return day.day == spec[0] and spec[1] in (None, day.month) and spec[2] in (None, day.year)


def _next_matching_date(spec: DaySpec, after: date) -> date | None:
    """The first date after ``after`` matching ``spec``, or None if there is none (checked by months)."""
    day, month, year = spec
    if year is not None and year < after.year:
        return None
    if month is not None:
        first_year = after.year if year is None else year
        # 29 February comes back within eight years (2096 -> 2104)
        last_year = min(MAXYEAR, first_year + 8 if year is None else year)
        for candidate_year in range(first_year, last_year + 1):
            if day <= monthrange(candidate_year, month)[1] and date(candidate_year, month, day) > after:
                return date(candidate_year, month, day)
        return None
    candidate_year, candidate_month = (after.year, after.month) if year is None or year == after.year else (year, 1)
    for _ in range(14):
        if year is not None and candidate_year != year:
            return None
        if day <= monthrange(candidate_year, candidate_month)[1] and date(candidate_year, candidate_month, day) > after:
            return date(candidate_year, candidate_month, day)
        if candidate_month == 12:
            if candidate_year == MAXYEAR:
                return None
            candidate_year, candidate_month = candidate_year + 1, 1
        else:
            candidate_month += 1
    return None


@dataclass(frozen=True, init=False)
class DayCalendar(Calendar):
    """Whole days by day of the month, optionally only in one month and/or one year.

    ``DayCalendar(1)`` is the first of every month, ``DayCalendar((25, 12))`` is Christmas Day every
    year, ``DayCalendar((1, 5, 2027), 15)`` is 1 May 2027 and the 15th of every month.
    """

    dates: tuple[DaySpec, ...]

    def __init__(self, *dates: int | tuple[int] | tuple[int, int | None] | tuple[int, int | None, int | None]) -> None:
        if not dates:
            raise ScheduleError("DayCalendar needs at least one date, e.g. DayCalendar(1) or DayCalendar((25, 12))")
        specs = {_parse_day_spec(value) for value in dates}
        ordered = tuple(sorted(specs, key=lambda spec: (spec[2] or 0, spec[1] or 0, spec[0])))
        object.__setattr__(self, "dates", ordered)

    def contains(self, local: datetime) -> bool:
        _require_naive(local)
        today = local.date()
        return any(_spec_matches(spec, today) for spec in self.dates)

    def next_change(self, local: datetime) -> datetime:
        _require_naive(local)
        if self.contains(local):
            return _next_midnight(local)
        upcoming = [found for spec in self.dates if (found := _next_matching_date(spec, local.date())) is not None]
        return datetime.combine(min(upcoming), time()) if upcoming else datetime.max

    def describe(self) -> str:
        def one(spec: DaySpec) -> str:
            day, month, year = spec
            if month is None:
                return f"day {day} of every month" + (f" in {year}" if year is not None else "")
            return f"{day} {_MONTH_LABELS[month - 1]}" + (f" {year}" if year is not None else "")

        return ", ".join(one(spec) for spec in self.dates)

    def to_json(self) -> dict[str, object]:
        entries: list[object] = []
        for day, month, year in self.dates:
            entry: dict[str, object] = {"day": day}
            if month is not None:
                entry["month"] = month
            if year is not None:
                entry["year"] = year
            entries.append(entry)
        return {"kind": "days", "dates": entries}


def _check_keys(data: dict[object, object], required: set[str]) -> None:
    keys = set(data)
    missing = required - keys
    unknown = keys - required
    if missing or unknown:
        problems = [f"missing {sorted(missing)}"] if missing else []
        problems += [f"unknown {sorted(map(str, unknown))}"] if unknown else []
        raise ScheduleError(f"{data.get('kind')!r} calendar JSON has {' and '.join(problems)} keys")


def _weekdays_from_json(data: dict[object, object]) -> Calendar:
    _check_keys(data, {"kind", "days"})
    days = data["days"]
    if not isinstance(days, list) or not all(isinstance(day, int) and not isinstance(day, bool) for day in days):
        raise ScheduleError(f"weekdays calendar JSON 'days' must be a list of integers 0-6, got {days!r}")
    return WeekdayCalendar(days)


def _time_from_json(value: object, label: str) -> time:
    if not isinstance(value, str) or not _JSON_TIME.fullmatch(value):
        raise ScheduleError(f"time_frame calendar JSON {label!r} must be a 'HH:MM:SS' string, got {value!r}")
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ScheduleError(f"time_frame calendar JSON {label!r} is not a valid time: {value!r}") from None


def _time_frame_from_json(data: dict[object, object]) -> Calendar:
    _check_keys(data, {"kind", "start", "end"})
    return DailyTimeFrame(_time_from_json(data["start"], "start"), _time_from_json(data["end"], "end"))


def _days_from_json(data: dict[object, object]) -> Calendar:
    _check_keys(data, {"kind", "dates"})
    entries = data["dates"]
    if not isinstance(entries, list) or not entries:
        raise ScheduleError(f"days calendar JSON 'dates' must be a non-empty list, got {entries!r}")
    specs: list[tuple[int, int | None, int | None]] = []
    for entry in entries:
        if not isinstance(entry, dict) or "day" not in entry or not set(entry) <= {"day", "month", "year"}:
            raise ScheduleError(f"days calendar JSON date must be {{'day': d, 'month'?: m, 'year'?: y}}, got {entry!r}")
        values = (entry.get("day"), entry.get("month"), entry.get("year"))
        if not all(value is None or (isinstance(value, int) and not isinstance(value, bool)) for value in values):
            raise ScheduleError(f"days calendar JSON date values must be integers, got {entry!r}")
        specs.append(_parse_day_spec(values))
    return DayCalendar(*specs)


_LOADERS: Mapping[str, Callable[[dict[object, object]], Calendar]] = {
    "weekdays": _weekdays_from_json,
    "time_frame": _time_frame_from_json,
    "days": _days_from_json,
}

#: the named calendars every registry starts with
BUILTIN_CALENDARS: Mapping[str, Calendar] = MappingProxyType(
    {
        "work_week": WeekdayCalendar(range(5)),
        "weekend": WeekdayCalendar([5, 6]),
        "nine_to_five": DailyTimeFrame(time(9), time(17)),
        "start_of_month": DayCalendar(1),
        "start_of_year": DayCalendar((1, 1)),
        **{
            name: WeekdayCalendar([index])
            for index, name in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
        },
    }
)


def check_calendar_name(name: object) -> str:
    """``name`` if it is a valid calendar name, else a ScheduleError."""
    if not isinstance(name, str) or not CALENDAR_NAME_PATTERN.fullmatch(name):
        raise ScheduleError(f"calendar name {name!r} is not valid; use 1 to 100 letters, digits, '_', '.' or '-'")
    return name


class CalendarRegistry:
    """Named calendars: the built-ins plus the ones registered by the application."""

    def __init__(self) -> None:
        self._calendars: dict[str, Calendar] = dict(BUILTIN_CALENDARS)

    def register(self, name: str, calendar: Calendar) -> None:
        """Register ``calendar`` as ``name``; registering the same calendar again is allowed."""
        check_calendar_name(name)
        if not isinstance(calendar, Calendar):
            raise ScheduleError(f"calendar {name!r} must be a Calendar instance, got {type(calendar).__name__}")
        if name in BUILTIN_CALENDARS:
            raise ScheduleError(f"calendar name {name!r} is a built-in calendar; register yours under another name")
        existing = self._calendars.get(name)
        if existing is None:
            self._calendars[name] = calendar
        elif existing != calendar:
            raise ScheduleError(
                f"calendar name {name!r} is already registered for {existing.describe()!r}; choose another name"
            )

    def get(self, name: str) -> Calendar:
        """The calendar registered as ``name``."""
        calendar = self._calendars.get(name)
        if calendar is None:
            raise ScheduleError(
                f"no calendar is registered as {name!r}; known calendars: {', '.join(self.names())} "
                "(register it with CalendarRegistry.register and pass the registry when computing runs)"
            )
        return calendar

    def names(self) -> tuple[str, ...]:
        """Every registered name, sorted."""
        return tuple(sorted(self._calendars))

    def __contains__(self, name: object) -> bool:
        return name in self._calendars
