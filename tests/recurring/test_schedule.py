"""Schedules: cron and interval runs, DST, calendars, explain and JSON (pure, no database)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from hivemind_jobs.errors import ConfigurationError, ScheduleError
from hivemind_jobs.recurring.calendars import Calendar, CalendarRegistry, DailyTimeFrame, DayCalendar, WeekdayCalendar
from hivemind_jobs.recurring.schedule import CRON_MACROS, Schedule, cron, every


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def runs(schedule: Schedule, after: datetime, count: int, registry: CalendarRegistry | None = None) -> list[datetime]:
    found = []
    for _ in range(count):
        after = schedule.next_after(after, registry)
        found.append(after)
    return found


def local(instants: list[datetime], zone: str) -> list[str]:
    return [instant.astimezone(ZoneInfo(zone)).isoformat() for instant in instants]


# --- cron ------------------------------------------------------------------------------------------


def test_cron_runs_strictly_after_and_answers_in_utc() -> None:
    schedule = cron("*/15 * * * *")
    assert runs(schedule, utc(2026, 5, 4, 10, 7), 3) == [
        utc(2026, 5, 4, 10, 15),
        utc(2026, 5, 4, 10, 30),
        utc(2026, 5, 4, 10, 45),
    ]
    assert schedule.next_after(utc(2026, 5, 4, 10, 15)) == utc(2026, 5, 4, 10, 30)
    assert schedule.next_after(utc(2026, 5, 4, 10, 14, 59, 999999)) == utc(2026, 5, 4, 10, 15)
    berlin = datetime(2026, 5, 4, 12, 7, tzinfo=ZoneInfo("Europe/Berlin"))  # 10:07 UTC
    following = schedule.next_after(berlin)
    assert following == utc(2026, 5, 4, 10, 15)
    assert following.tzinfo is UTC


def test_cron_reads_its_fields_in_its_zone() -> None:
    schedule = cron("0 9 * * 1-5", tz="America/New_York")
    # 08:00 EDT on Friday 2026-05-08: its 09:00 run, then Monday's
    assert runs(schedule, utc(2026, 5, 8, 12), 2) == [utc(2026, 5, 8, 13), utc(2026, 5, 11, 13)]
    assert cron("0 9 * * 1-5", tz=ZoneInfo("America/New_York")) == schedule


def test_seconds_field_comes_first() -> None:
    assert runs(cron("*/20 * * * * *"), utc(2026, 1, 1, 0, 0, 5), 3) == [
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 40),
        utc(2026, 1, 1, 0, 1),
    ]
    assert cron("30 0 12 * * *").next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 12, 0, 30)


@pytest.mark.parametrize(
    ("macro", "expression"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
        (" @Daily ", "0 0 * * *"),
    ],
)
def test_macros_are_translated(macro: str, expression: str) -> None:
    schedule = cron(macro)
    assert schedule.expression == expression
    assert schedule == cron(expression)
    assert hash(schedule) == hash(cron(expression))


def test_macro_runs() -> None:
    assert set(CRON_MACROS) == {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
    assert cron("@weekly").next_after(utc(2026, 5, 6)) == utc(2026, 5, 10)  # Sunday
    assert cron("@yearly").next_after(utc(2026, 5, 6)) == utc(2027, 1, 1)


def test_expression_whitespace_and_one_value_stepped_ranges_are_normalised() -> None:
    assert cron("  0   9 * *\t1-5 ").expression == "0 9 * * 1-5"
    # Vixie cron reads 5-5/10 as 5; cronsim would read it as 5/10 (5, 15, 25, ...)
    assert cron("5-5/10 * * * *").expression == "5 * * * *"
    assert cron("5-5/10 * * * *").next_after(utc(2026, 1, 1, 0, 6)) == utc(2026, 1, 1, 1, 5)
    assert cron("0 0 * * mon-MON/2").expression == "0 0 * * mon"
    assert cron("1-2/5 * * * *").expression == "1-2/5 * * * *"


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("0 0 * 13 *", "Bad month"),
        ("0 0 * * 8", "Bad day-of-week"),
        ("*/0 * * * *", "Bad minute"),
        ("5-1 * * * *", "Bad minute"),
        ("* * * *", "has 4 fields"),
        ("0 0 0 * * * *", "has 7 fields"),
        ("", "has 0 fields"),
        ("@reboot", "not supported"),
    ],
)
def test_bad_cron_expressions_say_what_and_how(expression: str, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected) as raised:
        cron(expression)
    assert isinstance(raised.value, ConfigurationError) and isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert repr(expression) in message or "macro" in message
    assert "5 fields" in message or "@daily" in message


def test_cron_expression_must_be_text() -> None:
    with pytest.raises(ScheduleError, match="must be a string"):
        cron(5)  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "utc", "../etc/passwd", "/etc/localtime", "America"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(ScheduleError, match=r"unknown time zone.*IANA"):
        cron("@daily", tz=zone)
    with pytest.raises(ScheduleError, match="unknown time zone"):
        every(minutes=1, tz=zone)


def test_time_zone_type_is_checked() -> None:
    with pytest.raises(ScheduleError, match="IANA name or a ZoneInfo"):
        cron("@daily", tz=1)  # type: ignore[arg-type]


def test_next_after_needs_an_aware_datetime() -> None:
    with pytest.raises(ScheduleError, match="aware datetime"):
        cron("@daily").next_after(datetime(2026, 1, 1))
    with pytest.raises(ScheduleError, match="aware datetime"):
        every(minutes=1).next_after("2026-01-01")  # type: ignore[arg-type]


# --- daylight saving time ----------------------------------------------------------------------------


def test_fixed_time_job_runs_once_on_the_fall_back_day() -> None:
    schedule = cron("30 1 * * *", tz="America/New_York")
    assert runs(schedule, utc(2026, 10, 30, 12), 4) == [
        utc(2026, 10, 31, 5, 30),  # 01:30 EDT
        utc(2026, 11, 1, 5, 30),  # 01:30 EDT, the first pass; 01:30 EST does not run
        utc(2026, 11, 2, 6, 30),  # 01:30 EST
        utc(2026, 11, 3, 6, 30),
    ]
    # asked from inside the repeated hour's second pass (01:15 EST), the day's run has happened
    assert schedule.next_after(utc(2026, 11, 1, 6, 15)) == utc(2026, 11, 2, 6, 30)


def test_fixed_time_job_in_the_skipped_hour_runs_when_it_ends() -> None:
    schedule = cron("30 2 * * *", tz="Europe/Berlin")
    found = runs(schedule, utc(2026, 3, 27, 12), 3)
    assert found == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    assert local(found, "Europe/Berlin") == [
        "2026-03-28T02:30:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:30:00+02:00",
    ]


def test_several_skipped_times_run_once_and_seconds_first_follows_the_same_rule() -> None:
    assert runs(cron("0,30 2 * * *", tz="Europe/Berlin"), utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0),
    ]
    # 6 fields: the same DST rule as 5 (cronsim applies its DST handling to 5 fields only)
    assert runs(cron("0 30 2 * * *", tz="Europe/Berlin"), utc(2026, 3, 28, 12), 2) == [
        utc(2026, 3, 29, 1),
        utc(2026, 3, 30, 0, 30),
    ]
    assert runs(cron("0 30 1 * * *", tz="America/New_York"), utc(2026, 10, 31, 12), 2) == [
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 2, 6, 30),
    ]


def test_hourly_job_follows_real_time_when_clocks_go_back() -> None:
    found = runs(cron("0 * * * *", tz="America/New_York"), utc(2026, 11, 1, 3, 30), 5)
    assert found == [
        utc(2026, 11, 1, 4),
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 7),
        utc(2026, 11, 1, 8),
    ]
    assert local(found, "America/New_York") == [
        "2026-11-01T00:00:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:00:00-05:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T03:00:00-05:00",
    ]


def test_hourly_job_follows_real_time_when_clocks_go_forward() -> None:
    found = runs(cron("0 * * * *", tz="Europe/Berlin"), utc(2026, 3, 28, 23, 30), 4)
    assert found == [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2), utc(2026, 3, 29, 3)]
    assert local(found, "Europe/Berlin") == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
        "2026-03-29T05:00:00+02:00",
    ]


def test_wildcard_minute_jobs_skip_the_gap_and_repeat_the_fold() -> None:
    # the minute field starts with *, so these follow real time even with a fixed hour
    assert cron("*/30 2 * * *", tz="Europe/Berlin").next_after(utc(2026, 3, 28, 12)) == utc(2026, 3, 30, 0)
    assert runs(cron("*/30 1 * * *", tz="America/New_York"), utc(2026, 11, 1, 4, 50), 5) == [
        utc(2026, 11, 1, 5),
        utc(2026, 11, 1, 5, 30),
        utc(2026, 11, 1, 6),
        utc(2026, 11, 1, 6, 30),
        utc(2026, 11, 2, 6),
    ]


def test_half_hour_shift_and_skipped_midnight() -> None:
    # Australia/Lord_Howe goes from 02:00 +10:30 to 02:30 +11:00; 03:00 still runs
    assert runs(cron("0 */3 * * *", tz="Australia/Lord_Howe"), utc(2026, 10, 3, 14), 2) == [
        utc(2026, 10, 3, 16),
        utc(2026, 10, 3, 19),
    ]
    # America/Santiago skips midnight on 2026-09-06 (a Sunday): the first even hour is 02:00 -03
    assert cron("0 */2 * * 0", tz="America/Santiago").next_after(utc(2026, 9, 5, 12)) == utc(2026, 9, 6, 5)
    # a fixed-time midnight job runs at 01:00, when the day starts
    assert cron("0 0 * * *", tz="America/Santiago").next_after(utc(2026, 9, 5, 12)) == utc(2026, 9, 6, 4)


# --- intervals ---------------------------------------------------------------------------------------


def test_interval_runs_after_the_previous_run_in_real_time() -> None:
    assert every(minutes=5).next_after(utc(2026, 1, 1, 0, 0, 7)) == utc(2026, 1, 1, 0, 5, 7)
    assert every(timedelta(hours=1, seconds=30)).next_after(utc(2026, 1, 1)) == utc(2026, 1, 1, 1, 0, 30)
    assert every(hours=1, tz="America/New_York").next_after(utc(2026, 11, 1, 5, 30)) == utc(2026, 11, 1, 6, 30)
    assert every(days=1, hours=2, minutes=3, seconds=4).interval == timedelta(days=1, hours=2, minutes=3, seconds=4)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "out of range"),
        ({"seconds": 0}, "out of range"),
        ({"days": 367}, "out of range"),
        ({"interval": timedelta(milliseconds=1500)}, "whole seconds"),
        ({"interval": timedelta(seconds=-5)}, "out of range"),
        ({"interval": timedelta(minutes=1), "minutes": 1}, "not both"),
        ({"minutes": -1}, "non-negative integer"),
        ({"minutes": 1.5}, "non-negative integer"),
        ({"minutes": True}, "non-negative integer"),
        ({"interval": 60}, "must be a timedelta"),
    ],
)
def test_bad_intervals_are_refused(arguments: dict[str, object], expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        every(**arguments)  # type: ignore[arg-type]


def test_interval_limits() -> None:
    assert every(seconds=1).interval == timedelta(seconds=1)
    assert every(days=366).interval == timedelta(days=366)


def test_interval_moves_to_the_start_of_the_next_allowed_window() -> None:
    schedule = every(minutes=45, tz="Europe/Berlin").only_during("nine_to_five")
    # 16:30 CET + 45 minutes is 17:15, outside; the next window opens at 09:00 the next day
    assert schedule.next_after(utc(2026, 10, 30, 15, 30)) == utc(2026, 10, 31, 8)
    assert schedule.next_after(utc(2026, 10, 30, 14)) == utc(2026, 10, 30, 14, 45)
    weekdays = every(hours=1).not_during("weekend")
    assert weekdays.next_after(utc(2026, 5, 8, 23, 30)) == utc(2026, 5, 11)  # Friday night to Monday 00:00


def test_interval_window_that_starts_in_a_skipped_hour_opens_when_it_ends() -> None:
    schedule = every(minutes=10, tz="Europe/Berlin").not_during(DailyTimeFrame(time(1), time(2, 30)))
    # 00:55 CET + 10 minutes is 01:05, excluded until 02:30, which does not exist that night: 03:00 CEST
    assert schedule.next_after(utc(2026, 3, 28, 23, 55)) == utc(2026, 3, 29, 1)


def test_interval_window_over_the_repeated_hour() -> None:
    schedule = every(minutes=1, tz="America/New_York").not_during(DailyTimeFrame(time(1, 15), time(2, 15)))
    # excluded from 01:15 EDT; clocks go back to 01:00 EST, which is allowed again
    assert schedule.next_after(utc(2026, 11, 1, 5, 14)) == utc(2026, 11, 1, 6)
    only = every(minutes=1, tz="America/New_York").only_during(DailyTimeFrame(time(0, 45), time(1, 15)))
    assert only.next_after(utc(2026, 11, 1, 5, 14)) == utc(2026, 11, 1, 6)


# --- calendars in schedules -----------------------------------------------------------------------------


def test_inclusions_are_any_and_exclusions_always_win() -> None:
    start = utc(2026, 5, 4)  # a Monday
    weekdays = cron("0 12 * * *").only_during("monday", "wednesday")
    assert runs(weekdays, start, 3) == [utc(2026, 5, 4, 12), utc(2026, 5, 6, 12), utc(2026, 5, 11, 12)]
    # calling only_during again widens the schedule too
    assert cron("0 12 * * *").only_during("monday").only_during("wednesday") == weekdays
    narrowed = cron("0 12 * * *").only_during("work_week").not_during("monday", WeekdayCalendar(["fri"]))
    assert runs(narrowed, start, 4) == [
        utc(2026, 5, 5, 12),
        utc(2026, 5, 6, 12),
        utc(2026, 5, 7, 12),
        utc(2026, 5, 12, 12),
    ]


def test_calendars_read_wall_time_in_the_schedule_zone() -> None:
    # 23:00 on Friday in New York is Saturday in UTC
    schedule = cron("0 23 * * *", tz="America/New_York").only_during("friday")
    assert schedule.next_after(utc(2026, 5, 4)) == utc(2026, 5, 9, 3)


def test_a_run_at_the_end_of_a_gap_is_judged_by_the_wall_time_after_it() -> None:
    excluded = cron("30 2 * * *", tz="Europe/Berlin").not_during(DailyTimeFrame(time(3), time(3, 15)))
    assert excluded.next_after(utc(2026, 3, 28, 12)) == utc(2026, 3, 30, 0, 30)
    included = cron("30 2 * * *", tz="Europe/Berlin").only_during(DailyTimeFrame(time(2), time(3)))
    assert included.next_after(utc(2026, 3, 28, 12)) == utc(2026, 3, 30, 0, 30)


def test_cron_jumps_over_long_closed_periods() -> None:
    schedule = cron("*/5 * * * *").only_during("start_of_year")
    assert schedule.next_after(utc(2026, 1, 2)) == utc(2027, 1, 1)
    leap_day = cron("0 12 * * *").only_during(DayCalendar((29, 2)))
    assert leap_day.next_after(utc(2026, 3, 1)) == utc(2028, 2, 29, 12)


class FirstHalfHour(Calendar):
    """A user calendar that cannot say when it changes."""

    def contains(self, local: datetime) -> bool:
        return local.minute < 30


class Backwards(Calendar):
    def contains(self, local: datetime) -> bool:
        return False

    def next_change(self, local: datetime) -> datetime:
        return local


def test_user_calendar_without_next_change_is_stepped() -> None:
    registry = CalendarRegistry()
    registry.register("first_half_hour", FirstHalfHour())
    assert runs(cron("*/20 * * * *").only_during("first_half_hour"), utc(2026, 1, 1, 0, 1), 3, registry) == [
        utc(2026, 1, 1, 0, 20),
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 1, 20),
    ]
    # an interval searches minute by minute for the window
    assert every(minutes=50).only_during("first_half_hour").next_after(utc(2026, 1, 1, 0, 1), registry) == utc(
        2026, 1, 1, 1, 0
    )


def test_calendar_breaking_the_next_change_contract_is_reported() -> None:
    with pytest.raises(ScheduleError, match="must return a later wall time"):
        cron("* * * * *").only_during(Backwards()).next_after(utc(2026, 1, 1))


def test_calendar_names_resolve_through_the_registry() -> None:
    schedule = cron("@hourly").not_during("maintenance")
    with pytest.raises(ScheduleError, match=r"no calendar is registered as 'maintenance'.*nine_to_five"):
        schedule.next_after(utc(2026, 1, 1))
    registry = CalendarRegistry()
    registry.register("maintenance", DailyTimeFrame(time(0), time(3)))
    assert schedule.next_after(utc(2026, 1, 1), registry) == utc(2026, 1, 1, 3)


def test_calendar_arguments_are_checked() -> None:
    with pytest.raises(ScheduleError, match="at least one"):
        cron("@daily").only_during()
    with pytest.raises(ScheduleError, match="at least one"):
        cron("@daily").not_during()
    with pytest.raises(ScheduleError, match="Calendar instances or calendar names"):
        cron("@daily").only_during(5)  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="calendar name 'no spaces' is not valid"):
        cron("@daily").not_during("no spaces")


# --- never fires -----------------------------------------------------------------------------------------


def test_contradicting_calendars_never_fire() -> None:
    with pytest.raises(ScheduleError, match=r"never fires.*also one it never runs during"):
        cron("@daily").only_during("weekend").not_during("weekend").next_after(utc(2026, 1, 1))
    with pytest.raises(ScheduleError, match="never fires: its calendars allow none of its run times within 10 years"):
        cron("0 12 * * 1-5").only_during("weekend").next_after(utc(2026, 1, 1))
    with pytest.raises(ScheduleError, match="never fires"):
        every(hours=1).only_during(DayCalendar((1, 1, 2020))).next_after(utc(2026, 1, 1))


def test_cron_with_no_run_within_ten_years_never_fires() -> None:
    # a fifth Monday in February next happens in 2044
    with pytest.raises(ScheduleError, match="its cron expression has no run time within 10 years"):
        cron("0 0 * 2 MON#5").next_after(utc(2026, 1, 1))
    assert cron("0 0 * 2 MON#5").next_after(utc(2036, 1, 1)) == utc(2044, 2, 29)


def test_no_run_before_year_ten_thousand() -> None:
    with pytest.raises(ScheduleError, match=r"never fires|year 10000"):
        cron("@yearly").next_after(datetime(9999, 6, 1, tzinfo=UTC))


# --- value semantics -----------------------------------------------------------------------------------------


def test_schedules_are_immutable_values() -> None:
    base = cron("0 9 * * *", tz="Europe/Berlin")
    narrowed = base.only_during("work_week", DailyTimeFrame(time(8), time(18))).not_during("monday")
    assert base.inclusions == () and base.exclusions == ()
    assert narrowed == cron("0 9 * * *", tz="Europe/Berlin").only_during("work_week").only_during(
        DailyTimeFrame(time(8), time(18))
    ).not_during("monday")
    assert len({narrowed, base, narrowed}) == 2
    assert base.only_during("weekend") == base.only_during("weekend", "weekend")
    with pytest.raises(dataclasses.FrozenInstanceError):
        base.tz = "UTC"  # type: ignore[misc]
    assert every(minutes=1) != cron("* * * * *")


def test_direct_construction_is_validated() -> None:
    with pytest.raises(ScheduleError, match="exactly one"):
        Schedule()
    with pytest.raises(ScheduleError, match="exactly one"):
        Schedule(expression="@daily", interval=timedelta(minutes=1))
    assert Schedule(expression="@daily", inclusions=["weekend"]) == cron("@daily").only_during("weekend")  # type: ignore[arg-type]
    with pytest.raises(ScheduleError, match="tuple of calendars"):
        Schedule(expression="@daily", inclusions="weekend")  # type: ignore[arg-type]


# --- explain ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "text"),
    [
        (
            cron("30 1 * * *", tz="America/New_York").only_during("work_week").not_during("nine_to_five"),
            "at 01:30 every day in America/New_York, only during work_week (Mon-Fri), "
            "except during nine_to_five (09:00-17:00)",
        ),
        (every(minutes=5), "every 5 minutes"),
        (every(hours=1), "every hour"),
        (every(days=1), "every day"),
        (every(seconds=90), "every 1 minute 30 seconds"),
        (
            every(minutes=10, tz="Europe/Berlin").only_during("weekend"),
            "every 10 minutes in Europe/Berlin, only during weekend (Sat, Sun)",
        ),
        (cron("*/5 * * * *"), "every 5 minutes in UTC"),
        (cron("* * * * *"), "every minute in UTC"),
        (cron("0 * * * *"), "every hour at minute 0 in UTC"),
        (cron("15 */2 * * *"), "every 2 hours at minute 15 in UTC"),
        (cron("0 9 * * 1-5"), "at 09:00 on Mon-Fri in UTC"),
        (cron("0 9 * * 1,3,5"), "at 09:00 on Mon, Wed and Fri in UTC"),
        (cron("0 9 * * 6,0"), "at 09:00 on Sat and Sun in UTC"),
        (cron("0 9,17 * * *"), "at 09:00 and 17:00 every day in UTC"),
        (cron("@weekly"), "at 00:00 on Sun in UTC"),
        (cron("@monthly"), "at 00:00 on day 1 of the month in UTC"),
        (cron("@yearly"), "at 00:00 on 1 Jan in UTC"),
        (cron("0 8 * 12 *"), "at 08:00 in Dec in UTC"),
        (cron("*/15 * * * 1-5"), "every 15 minutes on Mon-Fri in UTC"),
        (cron("*/10 * * * * *"), "every 10 seconds in UTC"),
        (cron("0 0 1 * 1"), 'cron "0 0 1 * 1" in UTC'),
        (cron("0 0 L * *"), 'cron "0 0 L * *" in UTC'),
        (cron("5 4 * * * *"), 'cron "5 4 * * * *" in UTC'),
        (
            cron("0 9 * * *").only_during(DailyTimeFrame(time(22), time(6))),
            "at 09:00 every day in UTC, only during 22:00-06:00 (overnight)",
        ),
        (cron("0 9 * * *").not_during("holidays"), "at 09:00 every day in UTC, except during holidays"),
    ],
)
def test_explain(schedule: Schedule, text: str) -> None:
    assert schedule.explain() == text


def test_explain_names_registered_calendars() -> None:
    registry = CalendarRegistry()
    registry.register("holidays", DayCalendar((25, 12), (1, 1)))
    assert (
        cron("0 9 * * *").not_during("holidays").explain(registry)
        == "at 09:00 every day in UTC, except during holidays (1 Jan, 25 Dec)"
    )


# --- JSON ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schedule",
    [
        cron("@daily"),
        cron("*/10 * * * * *", tz="Asia/Kolkata"),
        cron("30 1 * * *", tz="America/New_York")
        .only_during("work_week", DailyTimeFrame(time(22), time(6, 30, 15)))
        .not_during(DayCalendar(1, (25, 12), (4, 7, 2027), (15, None, 2030)), WeekdayCalendar(["sat"]), "holidays"),
        every(minutes=5),
        every(days=366, tz="Europe/Berlin").not_during("nine_to_five"),
    ],
)
def test_json_round_trip(schedule: Schedule) -> None:
    document = schedule.to_json()
    assert json.loads(json.dumps(document)) == document
    assert Schedule.from_json(json.loads(json.dumps(document))) == schedule


def test_json_shape() -> None:
    schedule = (
        cron("30 1 * * *", tz="America/New_York")
        .only_during("work_week")
        .not_during(DailyTimeFrame(time(9), time(17)), DayCalendar((25, 12)), WeekdayCalendar([0, "tue"]))
    )
    assert schedule.to_json() == {
        "kind": "cron",
        "expression": "30 1 * * *",
        "tz": "America/New_York",
        "only_during": ["work_week"],
        "not_during": [
            {"kind": "time_frame", "start": "09:00:00", "end": "17:00:00"},
            {"kind": "days", "dates": [{"day": 25, "month": 12}]},
            {"kind": "weekdays", "days": [0, 1]},
        ],
    }
    assert every(minutes=5).to_json() == {
        "kind": "interval",
        "seconds": 300,
        "tz": "UTC",
        "only_during": [],
        "not_during": [],
    }
    assert Schedule.from_json({"kind": "interval", "seconds": 300, "tz": "UTC"}) == every(minutes=5)


def test_user_calendars_are_stored_by_name_only() -> None:
    with pytest.raises(ScheduleError, match="register it in a CalendarRegistry and refer to it by its name"):
        cron("@daily").only_during(FirstHalfHour()).to_json()


GOOD = {"kind": "cron", "expression": "0 9 * * *", "tz": "UTC", "only_during": [], "not_during": []}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "must be an object"),
        ("{}", "must be an object"),
        ({}, "'kind' must be 'cron' or 'interval'"),
        ({**GOOD, "kind": "rrule"}, "'kind' must be 'cron' or 'interval'"),
        ({**GOOD, "extra": 1}, "needs the keys"),
        ({"kind": "cron", "expression": "0 9 * * *"}, "needs the keys"),
        ({**GOOD, "expression": 5}, "'expression' must be a string"),
        ({**GOOD, "expression": "0 9 * *"}, "has 4 fields"),
        ({**GOOD, "tz": None}, "'tz' must be a string"),
        ({**GOOD, "tz": "Nowhere/Town"}, "unknown time zone"),
        ({"kind": "interval", "seconds": "300", "tz": "UTC"}, "'seconds' must be an integer"),
        ({"kind": "interval", "seconds": True, "tz": "UTC"}, "'seconds' must be an integer"),
        ({"kind": "interval", "seconds": 300.0, "tz": "UTC"}, "'seconds' must be an integer"),
        ({"kind": "interval", "seconds": 0, "tz": "UTC"}, "'seconds' must be 1 to"),
        ({"kind": "interval", "seconds": 10**12, "tz": "UTC"}, "'seconds' must be 1 to"),
        ({**GOOD, "only_during": "weekend"}, "'only_during' must be a list"),
        ({**GOOD, "not_during": [5]}, "calendar JSON must be an object"),
        ({**GOOD, "not_during": ["bad name"]}, "calendar name 'bad name' is not valid"),
        ({**GOOD, "not_during": [{"kind": "holidays"}]}, "unknown kind 'holidays'"),
        ({**GOOD, "not_during": [{"days": [1]}]}, "unknown kind None"),
        ({**GOOD, "not_during": [{"kind": "weekdays", "days": ["mon"]}]}, "list of integers 0-6"),
        ({**GOOD, "not_during": [{"kind": "weekdays", "days": [7]}]}, "weekday 7 is not valid"),
        ({**GOOD, "not_during": [{"kind": "weekdays", "days": [0], "x": 1}]}, "unknown \\['x'\\] keys"),
        ({**GOOD, "not_during": [{"kind": "weekdays"}]}, "missing \\['days'\\] keys"),
        ({**GOOD, "not_during": [{"kind": "time_frame", "start": "9:00", "end": "17:00:00"}]}, "'HH:MM:SS'"),
        ({**GOOD, "not_during": [{"kind": "time_frame", "start": "25:00:00", "end": "17:00:00"}]}, "not a valid time"),
        ({**GOOD, "not_during": [{"kind": "time_frame", "start": "09:00:00", "end": "09:00:00"}]}, "both 09:00"),
        ({**GOOD, "not_during": [{"kind": "days", "dates": []}]}, "non-empty list"),
        ({**GOOD, "not_during": [{"kind": "days", "dates": [{"month": 1}]}]}, "'day': d"),
        ({**GOOD, "not_during": [{"kind": "days", "dates": [{"day": 1, "week": 2}]}]}, "'day': d"),
        ({**GOOD, "not_during": [{"kind": "days", "dates": [{"day": "1"}]}]}, "must be integers"),
        ({**GOOD, "not_during": [{"kind": "days", "dates": [{"day": 1, "month": 13}]}]}, "month 13 is not valid"),
        ({**GOOD, "not_during": [{"kind": "days", "dates": [{"day": 30, "month": 2}]}]}, "does not exist in Feb"),
    ],
)
def test_bad_json_is_refused(document: object, expected: str) -> None:
    with pytest.raises(ScheduleError, match=expected):
        Schedule.from_json(document)
