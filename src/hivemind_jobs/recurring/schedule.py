"""Schedules of recurring jobs: the next run strictly after an instant (pure, no I/O).

A :class:`Schedule` is a cron expression or a fixed interval, a time zone, and calendars that limit
when it may run. Build one with :func:`cron` or :func:`every`, narrow it with
:meth:`Schedule.only_during` / :meth:`Schedule.not_during`, and ask :meth:`Schedule.next_after`.

Decisions (where cron implementations and the original product differ):

* **Calendars.** A run time is allowed when there are no inclusion calendars or it is in *any* of
  them, and it is in *none* of the exclusion calendars. Calendars read the run time's wall-clock
  time in the schedule's zone. Calling ``only_during`` twice therefore widens the schedule (either
  calendar will do); ``not_during`` always narrows it.
* **Cron and daylight saving time** follow Vixie/Debian cron. An expression whose minute and hour
  fields both start with something other than ``*`` is a *fixed-time* job (``30 2 * * *``,
  ``0 9-17 * * *``, ``15 1,13 * * *``): its times are wall-clock times, a time that does not exist
  (spring forward) runs once at the first instant after the gap, and a time that occurs twice (fall
  back) runs at its first occurrence only. Any other expression (``*/5 * * * *``, ``0 * * * *``,
  ``* 2 * * *``) follows real time: it runs at every instant whose wall-clock time matches, so a
  skipped hour is skipped and a repeated hour runs twice. cronsim applies its DST handling only to
  5-field expressions and computes the real-time case in wall-clock steps; here cronsim only walks
  naive wall-clock times and the mapping to instants is done below, so the same rule holds for
  6-field expressions (``0 30 2 * * *`` behaves like ``30 2 * * *``; the seconds field does not
  decide the kind), and real-time jobs are exact where cronsim is not (it can return a midnight that
  does not exist, and steps over runs after half-hour shifts such as Australia/Lord_Howe's).
  Offset changes are found by probing the zone every six hours, which assumes no zone changes its
  offset twice within six hours (since 1970 tzdata has no two changes less than a week apart).
* **Calendar jumps.** When a run time is not allowed, the search jumps to the earliest
  ``next_change`` of the calendars, but never past an instant where clocks go back (the wall times
  after it were not vouched for), and tries the first run at or after the jump.
* **Cron fields** are cronsim's (names, ``L``, ``W``, ``#``; day-of-month and day-of-week are
  either-or when both are restricted, as in Vixie cron), except that a one-value range with a step
  (``5-5/10``) is that one value, as in Vixie cron; cronsim reads it as ``5/10`` (5, 15, 25, ...).
  The expression is stored with such terms rewritten and macros translated.
* **Intervals** run ``interval`` after the previous run (the ``after`` argument); when that instant
  is not allowed, the run moves to the first allowed instant after it (the start of the next
  allowed window). Intervals are whole seconds, from 1 second to 366 days.
* **Never firing.** The search looks ten years ahead (and at most 100,000 calendar steps); a
  schedule with no allowed run in that time raises :class:`ScheduleError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from hivemind_jobs.errors import ScheduleError
from hivemind_jobs.recurring.calendars import Calendar, CalendarRegistry, check_calendar_name

__all__ = [
    "CRON_MACROS",
    "MAX_INTERVAL",
    "SEARCH_HORIZON",
    "CalendarRef",
    "Schedule",
    "cron",
    "every",
]

#: a calendar given inline, or the name of one in a CalendarRegistry
CalendarRef = Calendar | str

CRON_MACROS: Mapping[str, str] = MappingProxyType(
    {
        "@yearly": "0 0 1 1 *",
        "@annually": "0 0 1 1 *",
        "@monthly": "0 0 1 * *",
        "@weekly": "0 0 * * 0",
        "@daily": "0 0 * * *",
        "@midnight": "0 0 * * *",
        "@hourly": "0 * * * *",
    }
)
MAX_INTERVAL = timedelta(days=366)
#: how far ahead next_after looks before it declares that a schedule never fires
SEARCH_HORIZON = timedelta(days=3653)
_MAX_SEARCH_STEPS = 100_000
#: zones do not change their UTC offset twice within this time (since 1970 tzdata's closest changes are a week apart)
_TRANSITION_PROBE = timedelta(hours=6)
_MICROSECOND = timedelta(microseconds=1)
_CRON_HELP = "use 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or a macro like @daily"
_BUILTIN_REGISTRY = CalendarRegistry()


def _canonical_cron(expression: object) -> str:
    if not isinstance(expression, str):
        raise ScheduleError(f"cron expression must be a string, got {type(expression).__name__}")
    text = " ".join(expression.split())
    if text.startswith("@"):
        translated = CRON_MACROS.get(text.lower())
        if translated is None:
            raise ScheduleError(f"cron macro {text!r} is not supported; use one of {', '.join(CRON_MACROS)}")
        return translated
    if len(text.split()) not in (5, 6):
        raise ScheduleError(f"cron expression {expression!r} has {len(text.split())} fields; {_CRON_HELP}")
    text = " ".join(",".join(_one_value_range(term) for term in part.split(",")) for part in text.split())
    try:
        # cronsim validates on construction; one step finds expressions that never match (it gives up after 50 years)
        next(CronSim(text, datetime(2000, 1, 1)))
    except CronSimError as error:
        raise ScheduleError(f"cron expression {expression!r} is not valid: {error}; {_CRON_HELP}") from None
    except StopIteration:
        raise ScheduleError(f"cron expression {expression!r} never matches a date; check its day and month") from None
    return text


def _one_value_range(term: str) -> str:
    """``a-a/n`` as ``a``: a range of one value with a step is that value in Vixie cron, but cronsim
    reads it as ``a/n`` (a, a+n, ... to the end of the field)."""
    base, slash, _ = term.partition("/")
    first, dash, last = base.partition("-")
    if (
        slash
        and dash
        and (first.upper() == last.upper() or (first.isdigit() and last.isdigit() and int(first) == int(last)))
    ):
        return first
    return term


def _zone_key(tz: object) -> str:
    if isinstance(tz, ZoneInfo):
        if tz.key is None:
            raise ScheduleError("the time zone must have an IANA key; build it with ZoneInfo('Area/City')")
        return tz.key
    if not isinstance(tz, str):
        raise ScheduleError(f"time zone must be an IANA name or a ZoneInfo, got {type(tz).__name__}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ScheduleError(
            f"unknown time zone {tz!r}; use an IANA name such as 'UTC', 'Europe/Berlin' or 'America/New_York'"
        ) from None
    return tz


def _check_interval(interval: object) -> timedelta:
    if not isinstance(interval, timedelta):
        raise ScheduleError(f"interval must be a timedelta, got {type(interval).__name__}")
    if interval.microseconds:
        raise ScheduleError(f"interval {interval} must be whole seconds; round it to the second")
    if not timedelta(seconds=1) <= interval <= MAX_INTERVAL:
        raise ScheduleError(f"interval {interval} is out of range; use 1 second to {MAX_INTERVAL.days} days")
    return interval


def _check_calendars(calendars: Iterable[object], method: str) -> tuple[CalendarRef, ...]:
    checked: list[CalendarRef] = []
    for calendar in calendars:
        if isinstance(calendar, str):
            check_calendar_name(calendar)
        elif not isinstance(calendar, Calendar):
            raise ScheduleError(
                f"{method} takes Calendar instances or calendar names, got {type(calendar).__name__} {calendar!r}"
            )
        if calendar not in checked:
            checked.append(calendar)
    return tuple(checked)


def _resolve(refs: Sequence[CalendarRef], registry: CalendarRegistry) -> tuple[Calendar, ...]:
    return tuple(registry.get(ref) if isinstance(ref, str) else ref for ref in refs)


def _allowed(wall: datetime, inclusions: Sequence[Calendar], exclusions: Sequence[Calendar]) -> bool:
    if inclusions and not any(calendar.contains(wall) for calendar in inclusions):
        return False
    return not any(calendar.contains(wall) for calendar in exclusions)


# --- instants and wall-clock time in a zone ------------------------------------------------------


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def _offset(instant: datetime, zone: ZoneInfo) -> timedelta | None:
    return instant.astimezone(zone).utcoffset()


def _search(low: datetime, high: datetime, holds: Callable[[datetime], bool]) -> datetime:
    """The first instant in (low, high] where ``holds`` is true; it is false at low, true at high and
    flips once in between (binary search to the microsecond)."""
    while high - low > _MICROSECOND:
        middle = low + (high - low) // 2
        if holds(middle):
            high = middle
        else:
            low = middle
    return high


def _offset_differs(zone: ZoneInfo, offset: timedelta) -> Callable[[datetime], bool]:
    return lambda instant: _offset(instant, zone) != offset


def _first_transition(start: datetime, end: datetime, zone: ZoneInfo, *, backward_only: bool) -> datetime | None:
    """The first instant in (start, end] where the zone's UTC offset differs from the one before it
    (only decreases, i.e. clocks going back, with ``backward_only``), found by probing every few hours."""
    base = _offset(start, zone)
    probe = start
    while probe < end:
        following = min(probe + _TRANSITION_PROBE, end)
        offset = _offset(following, zone)
        if offset != base:
            assert offset is not None
            assert base is not None
            if backward_only and offset > base:
                base, probe = offset, following
                continue
            return _search(probe, following, _offset_differs(zone, base))
        probe = following
    return None


def _instant_of_wall(wall: datetime, zone: ZoneInfo) -> datetime:
    """When a fixed-time job set for ``wall`` runs: its first occurrence, or the end of the gap it falls in."""
    instant = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(instant, zone) == wall:
        return instant
    return _gap_end(wall, zone)


def _gap_end(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant whose wall time is at or after ``wall``, a wall time that does not exist.

    In a gap, fold=1 reads the wall time with the offset after the transition (an instant before
    it) and fold=0 with the offset before it (an instant after it)."""
    before = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    after = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return _search(before, after, lambda instant: _wall(instant, zone) >= wall)


def _first_instant_at_wall(wall: datetime, not_before: datetime, zone: ZoneInfo) -> datetime | None:
    """The first instant after ``not_before`` whose wall time is ``wall`` (or the end of the gap it is in)."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if _wall(first, zone) != wall:
        end = _gap_end(wall, zone)
        return end if end > not_before else None
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return next((instant for instant in sorted({first, second}) if instant > not_before), None)


# --- the schedule --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When a recurring job runs. Immutable; equal and hashable by value.

    Exactly one of ``expression`` (a cron expression; macros are stored translated) and
    ``interval`` is set. ``tz`` is an IANA zone name. ``inclusions`` and ``exclusions`` are
    calendars (instances or registered names); see the module docstring for how they combine.
    """

    expression: str | None = None
    interval: timedelta | None = None
    tz: str = "UTC"
    inclusions: tuple[CalendarRef, ...] = ()
    exclusions: tuple[CalendarRef, ...] = ()
    _fixed_time: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if (self.expression is None) == (self.interval is None):
            raise ScheduleError(
                "a schedule needs exactly one of a cron expression and an interval; use cron() or every()"
            )
        if self.expression is not None:
            expression = _canonical_cron(self.expression)
            object.__setattr__(self, "expression", expression)
            fields = expression.split()
            minute, hour = fields[-5], fields[-4]
            object.__setattr__(self, "_fixed_time", not minute.startswith("*") and not hour.startswith("*"))
        else:
            _check_interval(self.interval)
        object.__setattr__(self, "tz", _zone_key(self.tz))
        for name in ("inclusions", "exclusions"):
            value = getattr(self, name)
            if isinstance(value, str | Calendar) or not isinstance(value, Iterable):
                raise ScheduleError(f"Schedule.{name} must be a tuple of calendars or calendar names, got {value!r}")
            object.__setattr__(self, name, _check_calendars(value, f"Schedule.{name}"))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    def only_during(self, *calendars: CalendarRef) -> Schedule:
        """A copy that runs only at times in any of its inclusion calendars (these added to them)."""
        if not calendars:
            raise ScheduleError("only_during needs at least one calendar or calendar name")
        added = _check_calendars((*self.inclusions, *calendars), "only_during")
        return Schedule(self.expression, self.interval, self.tz, added, self.exclusions)

    def not_during(self, *calendars: CalendarRef) -> Schedule:
        """A copy that never runs at times in any of these calendars (added to its exclusions)."""
        if not calendars:
            raise ScheduleError("not_during needs at least one calendar or calendar name")
        added = _check_calendars((*self.exclusions, *calendars), "not_during")
        return Schedule(self.expression, self.interval, self.tz, self.inclusions, added)

    # --- next run ---

    def next_after(self, after: datetime, calendars: CalendarRegistry | None = None) -> datetime:
        """The first allowed run strictly after ``after`` (an aware datetime), as an aware UTC datetime.

        Calendar names resolve through ``calendars`` (the built-in calendars when None). Raises
        ScheduleError when no run within ten years is allowed."""
        if not isinstance(after, datetime) or after.utcoffset() is None:
            raise ScheduleError(
                f"next_after needs an aware datetime (with a time zone), got {after!r}; "
                "use e.g. datetime.now(UTC) or attach the zone the value was recorded in"
            )
        registry = _BUILTIN_REGISTRY if calendars is None else calendars
        inclusions = _resolve(self.inclusions, registry)
        exclusions = _resolve(self.exclusions, registry)
        start = after.astimezone(UTC)
        try:
            return self._search(start, inclusions, exclusions)
        except OverflowError:
            raise ScheduleError(f"schedule {self.explain(registry)!r} has no run before the year 10000") from None

    def _search(self, start: datetime, inclusions: Sequence[Calendar], exclusions: Sequence[Calendar]) -> datetime:
        zone = self.zone
        horizon = start + SEARCH_HORIZON
        every = self.interval
        if inclusions and all(calendar in exclusions for calendar in inclusions):
            raise ScheduleError(
                f"schedule {self.explain()!r} never fires: every calendar it runs only during is also one it never "
                "runs during; remove the calendar from one of the two lists"
            )
        candidate = self._first_fire_after(start, horizon) if every is None else start + every
        rejected = 0
        while candidate is not None and candidate <= horizon:
            wall = _wall(candidate, zone)
            if _allowed(wall, inclusions, exclusions):
                return candidate
            rejected += 1
            if rejected > _MAX_SEARCH_STEPS:
                raise ScheduleError(
                    f"gave up looking for the next run of {self.explain()!r} after {start.isoformat()}: its "
                    f"calendars rejected {_MAX_SEARCH_STEPS} run times; give user calendars a next_change() so the "
                    "search can jump"
                )
            change = self._next_change(wall, (*inclusions, *exclusions))
            if change is None:
                # a calendar that cannot say when it changes: test the next run time, or the next minute
                if every is None:
                    candidate = self._first_fire_after(candidate, horizon)
                else:
                    candidate = candidate + timedelta(minutes=1)
                continue
            if change - wall > SEARCH_HORIZON:
                break
            jump = _first_instant_at_wall(change, candidate, zone)
            if jump is None:  # pragma: no cover - only with a calendar whose next_change breaks its contract
                jump = candidate + _MICROSECOND
            # wall time runs backwards when clocks go back: the calendars only vouched for [wall, change)
            back = _first_transition(candidate, jump, zone, backward_only=True)
            if back is not None:
                jump = back
            candidate = jump if every is not None else self._first_fire_after(jump - _MICROSECOND, horizon)
        reason = "its calendars allow none of its run times" if rejected else "its cron expression has no run time"
        raise ScheduleError(
            f"schedule {self.explain()!r} never fires: {reason} within {SEARCH_HORIZON.days // 365} years after "
            f"{start.isoformat()}; check that its inclusion and exclusion calendars leave some of its run times"
        )

    @staticmethod
    def _next_change(wall: datetime, calendars: Sequence[Calendar]) -> datetime | None:
        earliest: datetime | None = None
        for calendar in calendars:
            change = calendar.next_change(wall)
            if change is None:
                return None
            if change <= wall:
                raise ScheduleError(
                    f"calendar {calendar.describe()!r} returned next_change {change.isoformat()} for "
                    f"{wall.isoformat()}; it must return a later wall time, or None when it cannot tell"
                )
            earliest = change if earliest is None else min(earliest, change)
        return earliest

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first wall time strictly after ``wall`` (naive) that the cron expression matches."""
        assert self.expression is not None
        try:
            # naive datetimes: cronsim walks the wall clock and applies none of its own DST handling
            found: datetime = next(CronSim(self.expression, wall))
        except StopIteration:
            return None
        return found

    def _first_fire_after(self, start: datetime, horizon: datetime) -> datetime | None:
        """The first cron run strictly after the instant ``start`` (None if none before ``horizon``)."""
        zone = self.zone
        if self._fixed_time:
            # wall times map to instants in order (a gap to its end, a repeated time to its first
            # occurrence), so the first wall time past start's gives the first run; when start is in
            # the second pass of a repeated hour, the wall times it repeats map before it and are skipped
            wall = self._next_wall(_wall(start, zone))
            while wall is not None:
                instant = _instant_of_wall(wall, zone)
                if instant > start:
                    return instant
                wall = self._next_wall(wall)
            return None
        # real time: between two offset changes the wall clock is the instant plus a constant
        segment_start, wall_start = start, _wall(start, zone)
        while True:
            offset = _offset(segment_start, zone)
            assert offset is not None
            wall = self._next_wall(wall_start)
            if wall is None:
                return None
            instant = (wall - offset).replace(tzinfo=UTC)
            if instant > horizon:
                return instant
            transition = _first_transition(segment_start, instant, zone, backward_only=False)
            if transition is None:
                return instant
            # wall times from the transition on, including its own (whole seconds, like every offset)
            segment_start, wall_start = transition, _wall(transition, zone) - _MICROSECOND

    # --- description and storage ---

    def explain(self, calendars: CalendarRegistry | None = None) -> str:
        """The schedule in plain English, e.g. ``at 01:30 every day in America/New_York, only during
        work_week (Mon-Fri)``."""
        registry = _BUILTIN_REGISTRY if calendars is None else calendars
        if self.expression is not None:
            text = f"{_explain_cron(self.expression)} in {self.tz}"
        else:
            assert self.interval is not None
            text = _explain_interval(self.interval)
            if self.inclusions or self.exclusions:
                text += f" in {self.tz}"
        if self.inclusions:
            text += ", only during " + " or ".join(_describe_ref(ref, registry) for ref in self.inclusions)
        if self.exclusions:
            text += ", except during " + " or ".join(_describe_ref(ref, registry) for ref in self.exclusions)
        return text

    def to_json(self) -> dict[str, object]:
        """The schedule as JSON-native values (user calendars must be referred to by name)."""
        document: dict[str, object]
        if self.expression is not None:
            document = {"kind": "cron", "expression": self.expression}
        else:
            assert self.interval is not None
            document = {"kind": "interval", "seconds": int(self.interval.total_seconds())}
        document["tz"] = self.tz
        document["only_during"] = [_ref_to_json(ref) for ref in self.inclusions]
        document["not_during"] = [_ref_to_json(ref) for ref in self.exclusions]
        return document

    @classmethod
    def from_json(cls, data: object) -> Schedule:
        """A schedule from :meth:`to_json`'s output, strictly validated (ScheduleError if malformed)."""
        if not isinstance(data, dict):
            raise ScheduleError(f"schedule JSON must be an object, got {type(data).__name__}")
        kind = data.get("kind")
        if kind == "cron":
            required = {"kind", "expression", "tz"}
        elif kind == "interval":
            required = {"kind", "seconds", "tz"}
        else:
            raise ScheduleError(f"schedule JSON 'kind' must be 'cron' or 'interval', got {kind!r}")
        keys = set(data)
        if not required <= keys or not keys <= required | {"only_during", "not_during"}:
            raise ScheduleError(
                f"schedule JSON of kind {kind!r} needs the keys {sorted(required)} and may have 'only_during' and "
                f"'not_during', got {sorted(map(str, keys))}"
            )
        tz = data["tz"]
        if not isinstance(tz, str):
            raise ScheduleError(f"schedule JSON 'tz' must be a string, got {tz!r}")
        inclusions = _refs_from_json(data.get("only_during", []), "only_during")
        exclusions = _refs_from_json(data.get("not_during", []), "not_during")
        if kind == "cron":
            expression = data["expression"]
            if not isinstance(expression, str):
                raise ScheduleError(f"schedule JSON 'expression' must be a string, got {expression!r}")
            return cls(expression=expression, tz=tz, inclusions=inclusions, exclusions=exclusions)
        seconds = data["seconds"]
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            raise ScheduleError(f"schedule JSON 'seconds' must be an integer, got {seconds!r}")
        if not 1 <= seconds <= MAX_INTERVAL.total_seconds():
            raise ScheduleError(f"schedule JSON 'seconds' must be 1 to {int(MAX_INTERVAL.total_seconds())}")
        return cls(interval=timedelta(seconds=seconds), tz=tz, inclusions=inclusions, exclusions=exclusions)


def _ref_to_json(ref: CalendarRef) -> object:
    return ref if isinstance(ref, str) else ref.to_json()


def _refs_from_json(value: object, key: str) -> tuple[CalendarRef, ...]:
    if not isinstance(value, list):
        raise ScheduleError(f"schedule JSON {key!r} must be a list of calendar names or calendar objects")
    refs: list[CalendarRef] = []
    for item in value:
        refs.append(check_calendar_name(item) if isinstance(item, str) else Calendar.from_json(item))
    return tuple(refs)


def _describe_ref(ref: CalendarRef, registry: CalendarRegistry) -> str:
    if isinstance(ref, Calendar):
        return ref.describe()
    if ref in registry:
        return f"{ref} ({registry.get(ref).describe()})"
    return ref


# --- explain -------------------------------------------------------------------------------------

_WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _number(text: str, low: int, high: int) -> int | None:
    return int(text) if text.isdigit() and low <= int(text) <= high else None


def _step(text: str, high: int) -> int | None:
    """n for ``*/n``."""
    if text.startswith("*/"):
        return _number(text[2:], 1, high)
    return None


def _values(text: str, low: int, high: int) -> list[int] | None:
    """The values of a field made of numbers and plain ranges (no steps, no names)."""
    values: list[int] = []
    for term in text.split(","):
        first, _, last = term.partition("-")
        start, end = _number(first, low, high), _number(last or first, low, high)
        if start is None or end is None or end < start:
            return None
        values.extend(range(start, end + 1))
    return sorted(set(values))


def _join(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _weekday_words(days: Sequence[int]) -> str:
    ordered = sorted({(day - 1) % 7 for day in days})  # Monday first, Sunday (0 or 7) last
    labels = [_WEEKDAYS[(day + 1) % 7] for day in ordered]
    contiguous = ordered == list(range(ordered[0], ordered[-1] + 1))
    if len(ordered) >= 3 and contiguous:
        return f"{labels[0]}-{labels[-1]}"
    return _join(labels)


def _explain_days(dom: str, month: str, dow: str) -> str | None:
    """The day part (empty for every day), or None when it is not simple enough to say."""
    weekdays = None if dow == "*" else _values(dow, 0, 7)
    day = None if dom == "*" else _number(dom, 1, 31)
    in_month = None if month == "*" else _number(month, 1, 12)
    if (dow != "*" and weekdays is None) or (dom != "*" and day is None) or (month != "*" and in_month is None):
        return None
    if weekdays is not None and day is not None:
        return None  # cron runs when either matches: too easy to misread in one phrase
    parts: list[str] = []
    if weekdays is not None:
        parts.append(f"on {_weekday_words(weekdays)}")
    if day is not None:
        parts.append(f"on {day} {_MONTHS[in_month - 1]}" if in_month is not None else f"on day {day} of the month")
    elif in_month is not None:
        parts.append(f"in {_MONTHS[in_month - 1]}")
    return " ".join(parts)


def _explain_cron(expression: str) -> str:
    fields = expression.split()
    fallback = f'cron "{expression}"'
    if len(fields) == 6:
        seconds, fields = fields[0], fields[1:]
        if seconds != "0":
            step = 1 if seconds == "*" else _step(seconds, 59)
            if step is not None and fields == ["*"] * 5:
                return "every second" if step == 1 else f"every {step} seconds"
            return fallback
    minute, hour, dom, month, dow = fields
    days = _explain_days(dom, month, dow)
    if days is None:
        return fallback
    at_minute, hours = _number(minute, 0, 59), _values(hour, 0, 23)
    if at_minute is not None and hours is not None:
        times = _join([f"{value:02d}:{at_minute:02d}" for value in hours])
        return f"at {times} {days or 'every day'}"
    if hour == "*":
        if minute == "*":
            clock = "every minute"
        elif (step := _step(minute, 59)) is not None:
            clock = f"every {step} minutes"
        elif at_minute is not None:
            clock = f"every hour at minute {at_minute}"
        else:
            return fallback
    elif at_minute is not None and (step := _step(hour, 23)) is not None:
        clock = f"every {step} hours at minute {at_minute}"
    else:
        return fallback
    return f"{clock} {days}" if days else clock


def _explain_interval(interval: timedelta) -> str:
    remaining = int(interval.total_seconds())
    parts: list[tuple[int, str]] = []
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute"), (1, "second")):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append((count, unit))
    if len(parts) == 1 and parts[0][0] == 1:
        return f"every {parts[0][1]}"
    return "every " + " ".join(f"{count} {unit}{'s' if count > 1 else ''}" for count, unit in parts)


# --- constructors --------------------------------------------------------------------------------


def cron(expression: str, *, tz: str | ZoneInfo = "UTC") -> Schedule:
    """A schedule from a cron expression: 5 fields, 6 with seconds first, or ``@yearly``, ``@annually``,
    ``@monthly``, ``@weekly``, ``@daily``, ``@midnight``, ``@hourly``; read in the IANA zone ``tz``."""
    return Schedule(expression=expression, tz=_zone_key(tz))


def every(
    interval: timedelta | None = None,
    *,
    seconds: int = 0,
    minutes: int = 0,
    hours: int = 0,
    days: int = 0,
    tz: str | ZoneInfo = "UTC",
) -> Schedule:
    """A schedule that runs a fixed time after the previous run: ``every(timedelta(minutes=5))`` or
    ``every(minutes=5)``. Whole seconds, 1 second to 366 days; ``tz`` is where its calendars are read."""
    parts = {"seconds": seconds, "minutes": minutes, "hours": hours, "days": days}
    for name, value in parts.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ScheduleError(f"every() {name} must be a non-negative integer, got {value!r}")
    if interval is not None and any(parts.values()):
        raise ScheduleError("every() takes a timedelta or seconds/minutes/hours/days, not both")
    if interval is None:
        interval = timedelta(**parts)
    return Schedule(interval=_check_interval(interval), tz=_zone_key(tz))
