"""Calendars: the built-ins, their next_change, validation, JSON, and the registry."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from hivemind_jobs.errors import ScheduleError
from hivemind_jobs.recurring.calendars import (
    BUILTIN_CALENDARS,
    Calendar,
    CalendarRegistry,
    DailyTimeFrame,
    DayCalendar,
    WeekdayCalendar,
)
from hivemind_jobs.recurring.schedule import Schedule, cron

# 2026-05-04 is a Monday
MONDAY = datetime(2026, 5, 4)


def day(offset: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return MONDAY + timedelta(days=offset, hours=hour, minutes=minute, seconds=second)


# --- weekdays --------------------------------------------------------------------------------------


def test_weekday_calendar_by_number_or_name() -> None:
    calendar = WeekdayCalendar([0, "Wed", "fri"])
    assert calendar == WeekdayCalendar({0, 2, 4})
    assert [calendar.contains(day(offset, 12)) for offset in range(7)] == [True, False, True, False, True, False, False]
    assert WeekdayCalendar("sun") == WeekdayCalendar(6) == WeekdayCalendar([6])
    assert calendar.describe() == "Mon, Wed, Fri"
    assert WeekdayCalendar(range(5)).describe() == "Mon-Fri"
    assert WeekdayCalendar([0, 1, 2, 5, 6]).describe() == "Mon-Wed, Sat, Sun"


def test_weekday_next_change_is_the_next_midnight_where_membership_changes() -> None:
    work_week = WeekdayCalendar(range(5))
    assert work_week.next_change(day(0, 10)) == day(5)  # Monday -> Saturday 00:00
    assert work_week.next_change(day(4, 23, 59, 59)) == day(5)
    assert work_week.next_change(day(5)) == day(7)  # Saturday -> Monday
    assert WeekdayCalendar([0, 2]).next_change(day(0, 1)) == day(1)
    assert WeekdayCalendar([0, 2]).next_change(day(1, 1)) == day(2)


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([], "at least one weekday"),
        (range(7), "all seven"),
        (["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "all seven"),
        ([7], "weekday 7 is not valid"),
        ([-1], "weekday -1 is not valid"),
        (["funday"], "weekday 'funday' is not valid"),
        ([True], "weekday True is not valid"),
        ([1.0], "weekday 1.0 is not valid"),
    ],
)
def test_weekday_calendar_validation(days: object, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        WeekdayCalendar(days)  # type: ignore[arg-type]


def test_built_in_calendars_refuse_aware_times() -> None:
    for calendar in (WeekdayCalendar([0]), DailyTimeFrame(time(9), time(17)), DayCalendar(1)):
        with pytest.raises(ScheduleError, match="naive wall-clock time"):
            calendar.contains(MONDAY.replace(tzinfo=UTC))
        with pytest.raises(ScheduleError, match="naive wall-clock time"):
            calendar.next_change(MONDAY.replace(tzinfo=UTC))
        with pytest.raises(ScheduleError, match="read a datetime"):
            calendar.contains(MONDAY.date())  # type: ignore[arg-type]


# --- daily time frames -----------------------------------------------------------------------------


def test_daily_time_frame_is_half_open() -> None:
    frame = DailyTimeFrame(time(9), time(17))
    assert not frame.contains(day(0, 8, 59, 59))
    assert frame.contains(day(0, 9))
    assert frame.contains(day(0, 16, 59, 59))
    assert not frame.contains(day(0, 17))
    assert frame.describe() == "09:00-17:00"


def test_daily_time_frame_next_change() -> None:
    frame = DailyTimeFrame(time(9), time(17))
    assert frame.next_change(day(0, 3)) == day(0, 9)
    assert frame.next_change(day(0, 9)) == day(0, 17)
    assert frame.next_change(day(0, 12)) == day(0, 17)
    assert frame.next_change(day(0, 17)) == day(1, 9)
    assert frame.next_change(day(0, 16, 59, 59) + timedelta(microseconds=5)) == day(0, 17)


def test_overnight_time_frame() -> None:
    frame = DailyTimeFrame(time(22), time(6, 30))
    assert [frame.contains(day(0, hour)) for hour in (0, 6, 7, 21, 22, 23)] == [True, True, False, False, True, True]
    assert not frame.contains(day(0, 6, 30))
    assert frame.next_change(day(0, 1)) == day(0, 6, 30)
    assert frame.next_change(day(0, 12)) == day(0, 22)
    assert frame.next_change(day(0, 23)) == day(1, 6, 30)
    assert frame.describe() == "22:00-06:30 (overnight)"
    assert DailyTimeFrame(time(8, 0, 30), time(9)).describe() == "08:00:30-09:00"


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (time(9), time(9), "both 09:00"),
        (time(9, 0, 0, 500), time(17), "whole seconds"),
        (time(9, tzinfo=UTC), time(17), "must be naive"),
        ("09:00", time(17), "must be a datetime.time"),
        (time(9), datetime(2026, 1, 1, 17), "must be a datetime.time"),
    ],
)
def test_daily_time_frame_validation(start: object, end: object, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        DailyTimeFrame(start, end)  # type: ignore[arg-type]


# --- days of the month ----------------------------------------------------------------------------


def test_day_calendar_matches_day_month_and_year() -> None:
    firsts = DayCalendar(1)
    assert firsts.contains(datetime(2026, 6, 1, 23, 59)) and not firsts.contains(datetime(2026, 6, 2))
    christmas = DayCalendar((25, 12))
    assert christmas.contains(datetime(2031, 12, 25, 8)) and not christmas.contains(datetime(2031, 11, 25))
    once = DayCalendar((4, 7, 2027))
    assert once.contains(datetime(2027, 7, 4)) and not once.contains(datetime(2028, 7, 4))
    fifteenths_of_2030 = DayCalendar((15, None, 2030))
    assert fifteenths_of_2030.contains(datetime(2030, 3, 15)) and not fifteenths_of_2030.contains(datetime(2031, 3, 15))
    mixed = DayCalendar((25, 12), 1, [4, 7, 2027])
    assert mixed == DayCalendar(1, (4, 7, 2027), (25, 12, None), 1)
    assert mixed.describe() == "day 1 of every month, 25 Dec, 4 Jul 2027"
    assert fifteenths_of_2030.describe() == "day 15 of every month in 2030"


def test_day_calendar_next_change() -> None:
    firsts = DayCalendar(1)
    assert firsts.next_change(datetime(2026, 6, 1, 12)) == datetime(2026, 6, 2)  # inside: next midnight
    assert firsts.next_change(datetime(2026, 6, 2, 12)) == datetime(2026, 7, 1)
    assert DayCalendar(31).next_change(datetime(2026, 1, 31, 5)) == datetime(2026, 2, 1)
    assert DayCalendar(31).next_change(datetime(2026, 2, 1)) == datetime(2026, 3, 31)  # February and April lack it
    assert DayCalendar(31).next_change(datetime(2026, 4, 1)) == datetime(2026, 5, 31)
    assert DayCalendar((29, 2)).next_change(datetime(2026, 3, 1)) == datetime(2028, 2, 29)
    assert DayCalendar((29, 2)).next_change(datetime(2097, 1, 1)) == datetime(2104, 2, 29)
    assert DayCalendar((1, 1)).next_change(datetime(2026, 1, 1, 3)) == datetime(2026, 1, 2)
    assert DayCalendar((1, 1)).next_change(datetime(2026, 1, 2)) == datetime(2027, 1, 1)
    assert DayCalendar((15, None, 2030)).next_change(datetime(2026, 1, 1)) == datetime(2030, 1, 15)
    assert DayCalendar((15, None, 2030)).next_change(datetime(2030, 12, 20)) == datetime.max
    assert DayCalendar((4, 7, 2027)).next_change(datetime(2027, 7, 5)) == datetime.max  # never again
    assert DayCalendar((4, 7, 2027), 20).next_change(datetime(2027, 7, 1)) == datetime(2027, 7, 4)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ((), "at least one date"),
        ((0,), "day 0 is not valid"),
        ((32,), "day 32 is not valid"),
        ((True,), "date True is not valid"),
        (("1",), "date '1' is not valid"),
        (((1, 13),), "month 13 is not valid"),
        (((1, 0),), "month 0 is not valid"),
        (((30, 2),), "day 30 does not exist in Feb"),
        (((31, 4),), "day 31 does not exist in Apr"),
        (((29, 2, 2027),), "day 29 does not exist in Feb 2027"),
        (((1, 1, 0),), "year 0 is not valid"),
        (((1, 1, 10000),), "year 10000 is not valid"),
        (((1, 1, 2026, 5),), "is not valid; use a day of the month"),
        (((),), "is not valid; use a day of the month"),
    ],
)
def test_day_calendar_validation(dates: tuple[object, ...], expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        DayCalendar(*dates)  # type: ignore[arg-type]


def test_leap_day_without_a_year_is_allowed() -> None:
    assert DayCalendar((29, 2)).contains(datetime(2028, 2, 29))


# --- JSON ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "calendar",
    [
        WeekdayCalendar(["sat", "sun"]),
        DailyTimeFrame(time(22), time(6, 0, 30)),
        DayCalendar(1, (25, 12), (4, 7, 2027), (15, None, 2030)),
        *BUILTIN_CALENDARS.values(),
    ],
)
def test_calendar_json_round_trip(calendar: Calendar) -> None:
    assert Calendar.from_json(calendar.to_json()) == calendar


def test_calendar_json_shapes() -> None:
    assert WeekdayCalendar(["sun", "mon"]).to_json() == {"kind": "weekdays", "days": [0, 6]}
    assert DailyTimeFrame(time(9), time(17)).to_json() == {"kind": "time_frame", "start": "09:00:00", "end": "17:00:00"}
    assert DayCalendar((15, None, 2030), 1).to_json() == {
        "kind": "days",
        "dates": [{"day": 1}, {"day": 15, "year": 2030}],
    }


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, "must be an object"),
        ({"kind": 1}, "unknown kind 1"),
        ({"kind": "weekdays", "days": "mon"}, "list of integers"),
        ({"kind": "weekdays", "days": [True]}, "list of integers"),
        ({"kind": "time_frame", "start": 9, "end": "17:00:00"}, "'HH:MM:SS'"),
        ({"kind": "time_frame", "start": "09:00:00"}, "missing"),
        ({"kind": "days", "dates": [[1, 1]]}, "'day': d"),
        ({"kind": "days", "dates": [{"day": None}]}, "day None is not valid"),
    ],
)
def test_calendar_json_is_validated(document: object, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        Calendar.from_json(document)


# --- named calendars and the registry ---------------------------------------------------------------------


def test_named_built_ins() -> None:
    assert BUILTIN_CALENDARS["work_week"] == WeekdayCalendar(["mon", "tue", "wed", "thu", "fri"])
    assert BUILTIN_CALENDARS["weekend"] == WeekdayCalendar(["sat", "sun"])
    assert BUILTIN_CALENDARS["nine_to_five"] == DailyTimeFrame(time(9), time(17))
    assert BUILTIN_CALENDARS["start_of_month"] == DayCalendar(1)
    assert BUILTIN_CALENDARS["start_of_year"] == DayCalendar((1, 1))
    weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    for index, name in enumerate(weekdays):
        assert BUILTIN_CALENDARS[name] == WeekdayCalendar([index])
    assert set(CalendarRegistry().names()) == set(BUILTIN_CALENDARS)
    with pytest.raises(TypeError):
        BUILTIN_CALENDARS["mine"] = DayCalendar(2)  # type: ignore[index]


def test_registry_get_and_names() -> None:
    registry = CalendarRegistry()
    assert registry.get("weekend") == WeekdayCalendar([5, 6])
    assert registry.names() == tuple(sorted(registry.names()))
    assert "weekend" in registry and "holidays" not in registry
    with pytest.raises(ScheduleError, match=r"no calendar is registered as 'holidays'; known calendars: .*work_week"):
        registry.get("holidays")


def test_registry_register_rules() -> None:
    registry = CalendarRegistry()
    holidays = DayCalendar((25, 12), (1, 1))
    registry.register("holidays", holidays)
    registry.register("holidays", DayCalendar((1, 1), (25, 12)))  # the same calendar again: fine
    registry.register("team-a.maintenance_window", DailyTimeFrame(time(2), time(3)))
    assert registry.get("holidays") is holidays
    assert "holidays" in registry.names()
    with pytest.raises(ScheduleError, match="already registered"):
        registry.register("holidays", DayCalendar((26, 12)))
    with pytest.raises(ScheduleError, match="is a built-in calendar"):
        registry.register("weekend", WeekdayCalendar([4, 5, 6]))
    with pytest.raises(ScheduleError, match="must be a Calendar instance"):
        registry.register("plain", "weekend")  # type: ignore[arg-type]
    assert "holidays" not in CalendarRegistry()  # registries do not share registrations


@pytest.mark.parametrize("name", ["", "a" * 101, "with space", "a/b", "naïve", "semi;colon", 5])
def test_registry_refuses_bad_names(name: object) -> None:
    with pytest.raises(ScheduleError, match="is not valid; use 1 to 100 letters"):
        CalendarRegistry().register(name, DayCalendar(1))  # type: ignore[arg-type]


def test_a_name_of_100_characters_is_accepted() -> None:
    registry = CalendarRegistry()
    registry.register("a" * 100, DayCalendar(1))
    assert registry.get("a" * 100) == DayCalendar(1)


class LunchBreak(Calendar):
    """A user calendar: 12:00 to 13:00 on weekdays."""

    def contains(self, local: datetime) -> bool:
        return local.weekday() < 5 and local.hour == 12

    def next_change(self, local: datetime) -> datetime:
        noon = local.replace(hour=12, minute=0, second=0, microsecond=0)
        if local < noon:
            return noon
        if local < noon + timedelta(hours=1):
            return noon + timedelta(hours=1)
        return noon + timedelta(days=1)

    def describe(self) -> str:
        return "lunch break"


def test_user_calendar_registered_by_name_in_a_schedule() -> None:
    registry = CalendarRegistry()
    registry.register("lunch", LunchBreak())
    schedule = cron("*/30 * * * *", tz="Europe/Berlin").not_during("lunch")
    after = datetime(2026, 5, 4, 9, 45, tzinfo=UTC)  # 11:45 in Berlin, a Monday
    assert schedule.next_after(after, registry) == datetime(2026, 5, 4, 11, tzinfo=UTC)  # 13:00 in Berlin
    saturday = datetime(2026, 5, 9, 9, 45, tzinfo=UTC)
    assert schedule.next_after(saturday, registry) == datetime(2026, 5, 9, 10, tzinfo=UTC)
    assert schedule.explain(registry) == "every 30 minutes in Europe/Berlin, except during lunch (lunch break)"
    stored = Schedule.from_json(schedule.to_json())
    assert stored == schedule
    assert stored.to_json()["not_during"] == ["lunch"]
    assert stored.next_after(after, registry) == datetime(2026, 5, 4, 11, tzinfo=UTC)
    with pytest.raises(ScheduleError, match="no calendar is registered as 'lunch'"):
        stored.next_after(after)


def test_calendar_base_class_defaults() -> None:
    class Always(Calendar):
        def contains(self, local: datetime) -> bool:
            return True

    calendar = Always()
    assert calendar.next_change(MONDAY) is None
    assert calendar.describe() == "Always"
    with pytest.raises(ScheduleError, match="cannot be stored inline"):
        calendar.to_json()
    with pytest.raises(TypeError):
        Calendar()  # type: ignore[abstract]
