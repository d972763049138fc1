"""Schedule.next_after against a brute-force oracle.

The oracle walks UTC instants minute by minute, converts each to wall-clock time in the schedule's
zone and checks the cron fields and the calendars itself: cron field matching and the calendars'
rules are written again here, independently of cronsim and of the library.

Vixie/Debian DST rules, as the oracle encodes them:

* a *fixed-time* cron is one whose minute and hour fields both start with something other than
  ``*`` (``*/5`` and ``*`` are wildcards; ``0-59`` and ``1-23/2`` are fixed). It runs at an instant
  whose wall time matches only on the first pass of a repeated wall time (fold=0), and at the first
  instant after a gap (clocks going forward) when one of the skipped wall times matches;
* every other cron runs at every instant whose wall time matches (real time): a skipped wall time
  never runs, a repeated one runs twice.

Calendars are read on the wall time of the run itself (for a run at the end of a gap, the wall
time after the gap). ``HIVEMIND_SCHEDULE_EXAMPLES`` sets how many examples each property tries.
"""

from __future__ import annotations

import os
from calendar import monthrange
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hivemind_jobs.errors import ScheduleError
from hivemind_jobs.recurring.calendars import (
    Calendar,
    CalendarRegistry,
    DailyTimeFrame,
    DayCalendar,
    WeekdayCalendar,
)
from hivemind_jobs.recurring.schedule import Schedule, cron, every

EXAMPLES = int(os.environ.get("HIVEMIND_SCHEDULE_EXAMPLES", "150"))
#: deeper runs take longer than the project's default per-test timeout (about a second per example)
pytestmark = pytest.mark.timeout(max(120, EXAMPLES))
MINUTE = timedelta(minutes=1)
#: how far the oracle looks; examples with no run in that time are discarded
CRON_BOUND = timedelta(days=731)
INTERVAL_BOUND = timedelta(days=60)
FIRST_START = datetime(2020, 1, 1, tzinfo=UTC)
LAST_START = datetime(2030, 12, 31, tzinfo=UTC)
ZONES = (
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",  # half-hour shifts at 02:00
    "Asia/Kolkata",  # no DST, +05:30
    "America/Santiago",  # midnight is skipped in spring
    "America/Havana",  # midnight is skipped in spring, 01:00 repeats
    "Pacific/Chatham",  # +12:45 / +13:45, shifts at 02:45
    "Africa/Casablanca",  # clocks go back for Ramadan and forward after it
)

# --- cron fields, matched independently of cronsim ------------------------------------------------


def field_values(text: str, low: int, high: int) -> set[int]:
    """Values of one cron field: lists of ``*``, ``a``, ``a-b``, each with an optional ``/step``."""
    values: set[int] = set()
    for term in text.split(","):
        base, _, step_text = term.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = low, high
        elif "-" in base:
            first_text, last_text = base.split("-")
            first, last = int(first_text), int(last_text)
        else:
            first = int(base)
            last = high if step_text else first
        values.update(range(first, last + 1, step))
    return values


@dataclass(frozen=True)
class CronModel:
    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    either_day: bool  # both day fields restricted: a day matches when either does
    fixed_time: bool

    @classmethod
    def parse(cls, expression: str) -> CronModel:
        minute, hour, dom, month, dow = expression.split()
        return cls(
            expression=expression,
            minutes=frozenset(field_values(minute, 0, 59)),
            hours=frozenset(field_values(hour, 0, 23)),
            days=frozenset(field_values(dom, 1, 31)),
            months=frozenset(field_values(month, 1, 12)),
            weekdays=frozenset(value % 7 for value in field_values(dow, 0, 7)),
            either_day=not dom.startswith("*") and not dow.startswith("*"),
            fixed_time=not minute.startswith("*") and not hour.startswith("*"),
        )

    def day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days, in_weekdays = day.day in self.days, day.isoweekday() % 7 in self.weekdays
        return in_days or in_weekdays if self.either_day else in_days and in_weekdays

    def matches(self, wall: datetime) -> bool:
        return wall.minute in self.minutes and wall.hour in self.hours and self.day_matches(wall.date())


# --- calendars, as the oracle reads them ----------------------------------------------------------

ALL, NONE, SOME = "all", "none", "some"


@dataclass(frozen=True)
class OracleCalendar:
    """A calendar for the schedule (instance or registered name) and the oracle's own reading of it."""

    ref: Calendar | str
    contains: Callable[[datetime], bool]
    #: whether a whole date is in the calendar (ALL), out of it (NONE), or partly (SOME)
    day_status: Callable[[date], str]
    label: str


class FirstHalfHour(Calendar):
    """A user calendar: the first 30 minutes of every hour."""

    def contains(self, local: datetime) -> bool:
        return local.minute < 30

    def next_change(self, local: datetime) -> datetime:
        hour = local.replace(minute=0, second=0, microsecond=0)
        return hour + timedelta(minutes=30) if local.minute < 30 else hour + timedelta(hours=1)

    def describe(self) -> str:
        return "first half hour"


REGISTRY = CalendarRegistry()
REGISTRY.register("first_half_hour", FirstHalfHour())


def weekday_calendar(ref: Calendar | str, days: frozenset[int], label: str) -> OracleCalendar:
    return OracleCalendar(
        ref, lambda wall: wall.weekday() in days, lambda day: ALL if day.weekday() in days else NONE, label
    )


def in_frame(start: time, end: time) -> Callable[[datetime], bool]:
    def contains(wall: datetime) -> bool:
        clock = wall.time()
        return start <= clock < end if start < end else clock >= start or clock < end

    return contains


def day_calendar(
    ref: Calendar | str, specs: Sequence[tuple[int, int | None, int | None]], label: str
) -> OracleCalendar:
    def on(day: date) -> bool:
        return any(day.day == d and (m is None or day.month == m) and (y is None or day.year == y) for d, m, y in specs)

    return OracleCalendar(ref, lambda wall: on(wall.date()), lambda day: ALL if on(day) else NONE, label)


def named(name: str) -> OracleCalendar:
    weekday_names = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    if name == "work_week":
        return weekday_calendar(name, frozenset(range(5)), name)
    if name == "weekend":
        return weekday_calendar(name, frozenset({5, 6}), name)
    if name in weekday_names:
        return weekday_calendar(name, frozenset({weekday_names.index(name)}), name)
    if name == "nine_to_five":
        return OracleCalendar(name, in_frame(time(9), time(17)), lambda day: SOME, name)
    if name == "start_of_month":
        return day_calendar(name, [(1, None, None)], name)
    if name == "start_of_year":
        return day_calendar(name, [(1, 1, None)], name)
    assert name == "first_half_hour"
    return OracleCalendar(name, lambda wall: wall.minute < 30, lambda day: SOME, name)


NAMES = (
    "work_week",
    "weekend",
    "nine_to_five",
    "start_of_month",
    "start_of_year",
    "monday",
    "wednesday",
    "saturday",
    "sunday",
    "first_half_hour",
)


@dataclass(frozen=True)
class Change:
    """One DST change of a zone and the wall-clock times around it."""

    instant: datetime | None = None
    hours: tuple[int, ...] = ()
    near: tuple[time, ...] = ()
    #: wall times the change skips or repeats (after the first), and wall times just before and after those
    inside: tuple[time, ...] = ()
    before: tuple[time, ...] = ()
    after: tuple[time, ...] = ()


@st.composite
def straddling_frame(draw: st.DrawFn, change: Change, role: str) -> OracleCalendar:
    """A time frame where a jump to its next boundary passes over the wall times a DST change skips
    or repeats: for an exclusion ("not") from inside those wall times to after them, for an inclusion
    ("only") from before them to inside."""
    inside = draw(st.sampled_from(change.inside))
    if role == "not":
        start, end = inside, draw(st.sampled_from(change.after))
    else:
        start, end = draw(st.sampled_from(change.before)), inside
    return OracleCalendar(DailyTimeFrame(start, end), in_frame(start, end), lambda day: SOME, f"{start}-{end}")


@st.composite
def calendars(draw: st.DrawFn, change: Change, role: str, *, whole_minutes: bool = False) -> OracleCalendar:
    """A calendar; time frames often start or end in the wall times a DST change skips or repeats."""
    kinds = ["name", "name", "weekdays", "frame", "days"] + ["frame", "frame", "frame"] * bool(change.near)
    kind = draw(st.sampled_from(kinds))
    if kind == "name":
        return named(draw(st.sampled_from(NAMES)))
    if kind == "weekdays":
        days = draw(st.frozensets(st.integers(0, 6), min_size=1, max_size=6))
        return weekday_calendar(WeekdayCalendar(days), days, f"weekdays {sorted(days)}")
    if kind == "frame":
        seconds = st.just(0) if whole_minutes else st.sampled_from([0, 0, 0, 30])
        shape = draw(st.sampled_from(["straddle", "straddle", "near", "any"])) if change.near else "any"
        if shape == "straddle":
            return draw(straddling_frame(change, role))
        if shape == "near":
            start, end = draw(st.sampled_from(change.near)), draw(st.sampled_from(change.near))
        else:
            start = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 0, 15, 30, 45, 59])), draw(seconds))
            end = time(draw(st.integers(0, 23)), draw(st.sampled_from([0, 0, 15, 30, 45, 1])), draw(seconds))
        assume(start != end)
        return OracleCalendar(DailyTimeFrame(start, end), in_frame(start, end), lambda day: SOME, f"{start}-{end}")
    specs = draw(
        st.lists(
            st.tuples(
                st.integers(1, 31),
                st.none() | st.integers(1, 12),
                st.none() | st.none() | st.integers(2020, 2032),
            ),
            min_size=1,
            max_size=3,
        )
    )
    valid = [(d, m, y) for d, m, y in specs if m is None or d <= monthrange(y or 2000, m)[1]]
    assume(valid)
    return day_calendar(DayCalendar(*valid), valid, f"days {valid}")


def allowed(wall: datetime, inclusions: Sequence[OracleCalendar], exclusions: Sequence[OracleCalendar]) -> bool:
    if inclusions and not any(calendar.contains(wall) for calendar in inclusions):
        return False
    return not any(calendar.contains(wall) for calendar in exclusions)


def day_possible(day: date, inclusions: Sequence[OracleCalendar], exclusions: Sequence[OracleCalendar]) -> bool:
    if inclusions and all(calendar.day_status(day) == NONE for calendar in inclusions):
        return False
    return not any(calendar.day_status(day) == ALL for calendar in exclusions)


def wall_of(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def skip_target(wall: datetime, day_ok: Callable[[date], bool]) -> datetime | None:
    """How far the oracle may jump when no run can happen on ``wall``'s date: from 03:00 to 21:00 of
    that day (the margins keep runs at the end of a gap over midnight, and DST shifts of up to three
    hours, inside the minute-by-minute walk)."""
    if time(3) <= wall.time() < time(21) and not day_ok(wall.date()):
        return datetime.combine(wall.date(), time(21))
    return None


# --- the oracles ----------------------------------------------------------------------------------


def oracle_cron(
    model: CronModel,
    zone: ZoneInfo,
    inclusions: Sequence[OracleCalendar],
    exclusions: Sequence[OracleCalendar],
    after: datetime,
    bound: datetime,
) -> datetime | None:
    """The first minute after ``after`` (up to ``bound``) at which the cron runs and the calendars allow it."""
    instant = after.replace(second=0, microsecond=0) + MINUTE
    previous_wall = wall_of(instant - MINUTE, zone)

    def day_ok(day: date) -> bool:
        return model.day_matches(day) and day_possible(day, inclusions, exclusions)

    while instant <= bound:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        target = skip_target(wall, day_ok)
        if target is not None:
            instant += target - wall  # real time: lands on this date's evening, or a little later
            previous_wall = wall_of(instant - MINUTE, zone)
            continue
        if model.fixed_time:
            runs = local.fold == 0 and model.matches(wall)
            skipped = previous_wall + MINUTE
            while not runs and skipped < wall:  # clocks went forward over these wall times
                runs = model.matches(skipped)
                skipped += MINUTE
        else:
            runs = model.matches(wall)
        if runs and allowed(wall, inclusions, exclusions):
            return instant
        previous_wall = wall
        instant += MINUTE
    return None


def oracle_interval(
    interval: timedelta,
    zone: ZoneInfo,
    inclusions: Sequence[OracleCalendar],
    exclusions: Sequence[OracleCalendar],
    after: datetime,
    bound: datetime,
) -> datetime | None:
    """The first allowed minute at or after ``after + interval`` (minute-aligned inputs)."""
    instant = after + interval

    def day_ok(day: date) -> bool:
        return day_possible(day, inclusions, exclusions)

    while instant <= bound:
        wall = wall_of(instant, zone)
        target = skip_target(wall, day_ok)
        if target is not None:
            instant += target - wall
            continue
        if allowed(wall, inclusions, exclusions):
            return instant
        instant += MINUTE
    return None


# --- inputs ---------------------------------------------------------------------------------------


def cron_field(low: int, high: int, star_weight: int) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    single = value.map(str)
    span = st.tuples(value, value).map(sorted)
    plain_range = span.map(lambda ends: f"{ends[0]}-{ends[1]}")
    stepped_range = st.tuples(span, st.integers(2, 12)).map(lambda pair: f"{pair[0][0]}-{pair[0][1]}/{pair[1]}")
    listing = st.lists(st.one_of(single, plain_range, stepped_range), min_size=1, max_size=3).map(",".join)
    star_step = st.integers(2, max(2, (high - low) // 2)).map(lambda step: f"*/{step}")
    return st.sampled_from(["star"] * star_weight + ["step", "list", "list"]).flatmap(
        lambda kind: st.just("*") if kind == "star" else star_step if kind == "step" else listing
    )


def hinted_hour(hours: Sequence[int]) -> st.SearchStrategy[str]:
    """An hour field that often names the hours around a DST change."""
    if not hours:
        return cron_field(0, 23, 2)
    hinted = st.lists(st.sampled_from(hours), min_size=1, max_size=2, unique=True).map(
        lambda chosen: ",".join(map(str, chosen))
    )
    around = st.sampled_from(hours).map(lambda hour: f"{max(0, hour - 1)}-{min(23, hour + 1)}")
    return st.one_of(hinted, around, cron_field(0, 23, 2))


def cron_expressions(hours: Sequence[int]) -> st.SearchStrategy[str]:
    minute = cron_field(0, 59, 1) | st.sampled_from(["0", "30", "15,45", "0-59/10", "59", "1-59/29"])
    if hours:  # around a DST change, runs every few minutes meet the changing calendars more often
        minute = minute | st.sampled_from(["*", "*/5", "*/15", "0-59/10", "5-55/5"])
    day_weight = 12 if hours else 6
    return st.tuples(
        minute,
        hinted_hour(hours),
        cron_field(1, 31, day_weight),
        cron_field(1, 12, day_weight),
        cron_field(0, 7, day_weight // 2 + 1),
    ).map(" ".join)


@cache
def transitions(zone_name: str) -> tuple[datetime, ...]:
    """Instants in the test years where the zone's offset changes (hourly scan, then to the minute)."""
    zone = ZoneInfo(zone_name)
    found: list[datetime] = []
    instant = FIRST_START - timedelta(days=2)
    offset = instant.astimezone(zone).utcoffset()
    while instant < LAST_START + timedelta(days=2):
        following = instant + timedelta(hours=1)
        if following.astimezone(zone).utcoffset() != offset:
            minute = instant
            while minute.astimezone(zone).utcoffset() == offset:
                minute += MINUTE
            found.append(minute)
            offset = following.astimezone(zone).utcoffset()
        instant = following
    return tuple(found)


@st.composite
def starts(draw: st.DrawFn, change: datetime | None, *, whole_minutes: bool = False) -> datetime:
    """An instant from 2020 to 2030, or (given a DST change) mostly up to 90 minutes before it."""
    if change is not None:
        moment = change + timedelta(minutes=draw(st.integers(-90, 30) | st.integers(-26 * 60, 60)))
    else:
        span = int((LAST_START - FIRST_START).total_seconds() // 60)
        moment = FIRST_START + timedelta(minutes=draw(st.integers(0, span)))
    if not whole_minutes:
        moment += timedelta(seconds=draw(st.sampled_from([0, 0, 1, 30, 59])))
        moment += timedelta(microseconds=draw(st.sampled_from([0, 0, 1, 500_000])))
    return moment


@st.composite
def zones_and_changes(draw: st.DrawFn, *, always: bool = False) -> tuple[str, Change]:
    """A zone, and half of the time (``always``: every time) one of its DST changes."""
    zone_name = draw(st.sampled_from([zone for zone in ZONES if transitions(zone)] if always else ZONES))
    changes = transitions(zone_name)
    if not changes or not (always or draw(st.booleans())):
        return zone_name, Change()
    instant = draw(st.sampled_from(changes))
    zone = ZoneInfo(zone_name)
    # the wall time where the clock stops (end of a gap's first side, or of a repeated hour's first pass)
    # and where it resumes
    stops, resumes = wall_of(instant - MINUTE, zone) + MINUTE, wall_of(instant, zone)
    hours = sorted({stops.hour, resumes.hour, (stops.hour + 23) % 24, (resumes.hour + 1) % 24})
    near = sorted(
        {(point + timedelta(minutes=15 * step)).time() for point in (stops, resumes) for step in range(-2, 3)}
    )
    low, high = min(stops, resumes), max(stops, resumes)
    quarter = MINUTE * ((high - low) // MINUTE // 4)  # whole minutes, like every test zone's offsets
    inside = tuple(sorted({(low + quarter * share).time() for share in range(1, 4)}))
    before = tuple((low - timedelta(minutes=minutes)).time() for minutes in (15, 60))
    after = tuple((high + timedelta(minutes=minutes)).time() for minutes in (15, 60))
    return zone_name, Change(instant, tuple(hours), tuple(near), inside, before, after)


@dataclass(frozen=True)
class Case:
    schedule: Schedule
    zone: ZoneInfo
    inclusions: tuple[OracleCalendar, ...]
    exclusions: tuple[OracleCalendar, ...]
    after: datetime
    change: datetime | None  # the DST change the case was drawn around

    def describe(self, expected: datetime | None, actual: datetime | str | None) -> str:
        def show(value: datetime | str | None) -> str:
            return value.astimezone(self.zone).isoformat() if isinstance(value, datetime) else str(value)

        return (
            f"{self.schedule.expression or self.schedule.interval} in {self.zone.key}, "
            f"only {[c.label for c in self.inclusions]}, not {[c.label for c in self.exclusions]}, "
            f"after {show(self.after)}: oracle {show(expected)}, next_after {show(actual)}"
        )


def calendar_lists(
    change: Change, role: str, *, whole_minutes: bool = False
) -> st.SearchStrategy[tuple[OracleCalendar, ...]]:
    return st.lists(calendars(change, role, whole_minutes=whole_minutes), max_size=2).map(tuple)


def with_calendars(
    schedule: Schedule, inclusions: Sequence[OracleCalendar], exclusions: Sequence[OracleCalendar]
) -> Schedule:
    if inclusions:
        schedule = schedule.only_during(*(calendar.ref for calendar in inclusions))
    if exclusions:
        schedule = schedule.not_during(*(calendar.ref for calendar in exclusions))
    return schedule


def next_or_error(case: Case, moment: datetime) -> datetime | str:
    try:
        return case.schedule.next_after(moment, REGISTRY)
    except ScheduleError as error:
        return f"ScheduleError({error})"


def check_runs(case: Case, oracle: Callable[[datetime, datetime], datetime | None], bound: datetime) -> None:
    """Consecutive runs agree with the oracle: three, or every run until two hours after the case's DST
    change; no run before the bound when the oracle finds none."""
    if case.inclusions and all(
        calendar.ref in [excluded.ref for excluded in case.exclusions] for calendar in case.inclusions
    ):
        # every calendar it runs only during is excluded too: refused up front, no need to walk two years
        assert "never fires" in str(next_or_error(case, case.after))
        assume(False)
    walk_until = case.change + timedelta(hours=2) if case.change is not None else case.after
    moment, runs = case.after, 0
    while runs < 3 or (moment < walk_until and runs < 200):
        expected = oracle(moment, bound)
        actual = next_or_error(case, moment)
        if expected is None:
            assert not (isinstance(actual, datetime) and actual <= bound), case.describe(expected, actual)
            break
        assert actual == expected, case.describe(expected, actual)
        assert isinstance(actual, datetime) and actual.tzinfo is UTC
        moment, runs = expected, runs + 1
    assume(runs > 0)


# --- properties -----------------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@st.composite
def cron_cases(draw: st.DrawFn) -> tuple[Case, CronModel]:
    zone_name, change = draw(zones_and_changes())
    expression = draw(cron_expressions(change.hours))
    try:
        schedule = cron(expression, tz=zone_name)
    except ScheduleError:
        # cronsim refuses days no month in the expression has (e.g. 31 in February only)
        assume(False)
        raise
    inclusions, exclusions = draw(calendar_lists(change, "only")), draw(calendar_lists(change, "not"))
    schedule = with_calendars(schedule, inclusions, exclusions)
    start = draw(starts(change.instant))
    case = Case(schedule, ZoneInfo(zone_name), inclusions, exclusions, start, change.instant)
    return case, CronModel.parse(expression)


@SETTINGS
@given(cron_cases())
def test_cron_next_after_matches_the_oracle(drawn: tuple[Case, CronModel]) -> None:
    case, model = drawn

    def oracle(moment: datetime, bound: datetime) -> datetime | None:
        return oracle_cron(model, case.zone, case.inclusions, case.exclusions, moment, bound)

    check_runs(case, oracle, case.after + CRON_BOUND)


@st.composite
def interval_cases(draw: st.DrawFn) -> Case:
    zone_name, change = draw(zones_and_changes())
    short = st.sampled_from([1, 5, 7, 15, 45, 60, 90])
    minutes = draw(short | short | st.sampled_from([24 * 60, 25 * 60]) | st.integers(1, 3 * 24 * 60))
    inclusions = draw(calendar_lists(change, "only", whole_minutes=True))
    exclusions = draw(calendar_lists(change, "not", whole_minutes=True))
    schedule = with_calendars(every(minutes=minutes, tz=zone_name), inclusions, exclusions)
    start = draw(starts(change.instant, whole_minutes=True))
    return Case(schedule, ZoneInfo(zone_name), inclusions, exclusions, start, change.instant)


@SETTINGS
@given(interval_cases())
def test_interval_next_after_matches_the_oracle(case: Case) -> None:
    assert case.schedule.interval is not None
    interval = case.schedule.interval

    def oracle(moment: datetime, bound: datetime) -> datetime | None:
        return oracle_interval(interval, case.zone, case.inclusions, case.exclusions, moment, bound)

    check_runs(case, oracle, case.after + INTERVAL_BOUND)


@st.composite
def jump_cases(draw: st.DrawFn) -> tuple[Case, CronModel | None]:
    """Runs every few minutes around a DST change, with a calendar boundary inside the wall times it
    skips or repeats: the calendar jumps of next_after meet the change on every example."""
    zone_name, change = draw(zones_and_changes(always=True))
    role = draw(st.sampled_from(["only", "not"]))
    frame = draw(straddling_frame(change, role))
    extra = draw(calendar_lists(change, role, whole_minutes=True).filter(lambda found: len(found) < 2))
    chosen = (frame, *extra)
    inclusions, exclusions = (chosen, ()) if role == "only" else ((), chosen)
    expression = draw(st.none() | st.sampled_from(["* * * * *", "*/5 * * * *", "*/15 * * * *", "5-55/10 * * * *"]))
    if expression is None:
        schedule, model = every(minutes=draw(st.sampled_from([1, 5, 15])), tz=zone_name), None
    else:
        schedule, model = cron(expression, tz=zone_name), CronModel.parse(expression)
    schedule = with_calendars(schedule, inclusions, exclusions)
    assert change.instant is not None
    start = change.instant - timedelta(minutes=draw(st.integers(0, 90)))
    return Case(schedule, ZoneInfo(zone_name), inclusions, exclusions, start, change.instant), model


@SETTINGS
@given(jump_cases())
def test_calendar_jumps_across_dst_changes_match_the_oracle(drawn: tuple[Case, CronModel | None]) -> None:
    case, model = drawn
    interval = case.schedule.interval

    def oracle(moment: datetime, bound: datetime) -> datetime | None:
        if model is not None:
            return oracle_cron(model, case.zone, case.inclusions, case.exclusions, moment, bound)
        assert interval is not None
        return oracle_interval(interval, case.zone, case.inclusions, case.exclusions, moment, bound)

    check_runs(case, oracle, case.after + INTERVAL_BOUND)


def test_the_oracle_knows_the_dst_rules() -> None:
    """The oracle itself, on the cases the unit tests pin by hand."""
    berlin, new_york = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
    start = datetime(2026, 3, 28, 12, tzinfo=UTC)
    bound = start + timedelta(days=3)
    assert oracle_cron(CronModel.parse("30 2 * * *"), berlin, (), (), start, bound) == datetime(
        2026, 3, 29, 1, tzinfo=UTC
    )
    assert oracle_cron(CronModel.parse("*/30 2 * * *"), berlin, (), (), start, bound) == datetime(
        2026, 3, 30, 0, tzinfo=UTC
    )
    fall = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, the first pass
    assert oracle_cron(CronModel.parse("30 1 * * *"), new_york, (), (), fall, fall + timedelta(days=2)) == datetime(
        2026, 11, 2, 6, 30, tzinfo=UTC
    )
    assert oracle_cron(CronModel.parse("30 * * * *"), new_york, (), (), fall, fall + timedelta(days=2)) == datetime(
        2026, 11, 1, 6, 30, tzinfo=UTC
    )
    assert CronModel.parse("0-59 1-23/2 * * *").fixed_time
    assert not CronModel.parse("0 */2 * * *").fixed_time
