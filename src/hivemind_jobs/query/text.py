"""Query values written as text, as the CLI's options and the dashboard's filter forms take them."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from hivemind_jobs.query.conditions import PropertyQueryValue

__all__ = ["parse_duration", "typed_value"]

_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+|\d+(?=[eE]))(?:[eE][+-]?\d+)?")
_DATE_ONLY = re.compile(r"\d{4}-?\d{2}-?\d{2}")
_DURATION = re.compile(r"(?:\d+[smhdw])+")
_DURATION_PART = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def typed_value(raw: str) -> PropertyQueryValue:
    """A property value written as text, as the type it compares with: ``true``/``false`` a bool,
    a whole number an int, a decimal a float, an ISO-8601 datetime with offset a datetime,
    ``"quoted"`` or anything else text. A datetime without offset is refused with ValueError (it
    names no moment)."""
    if len(raw) >= 2 and raw[0] == raw[-1] == '"':
        return raw[1:-1]
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if _INT.fullmatch(raw):
        return int(raw)
    if _FLOAT.fullmatch(raw):
        return float(raw)
    if _DATE_ONLY.fullmatch(raw):
        return raw
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if moment.tzinfo is None:
        raise ValueError(
            "a datetime needs a UTC offset (e.g. 2024-05-01T12:00:00Z or +02:00); "
            "to compare it as text, quote it: name='\"...\"'"
        )
    return moment


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``2h``, ``7d``, ``1h30m`` (units s, m, h, d, w) or None when it is no duration;
    OverflowError when it is longer than any date range."""
    if not _DURATION.fullmatch(text):
        return None
    parts = {_UNITS[unit]: 0 for unit in _UNITS}
    for amount, unit in _DURATION_PART.findall(text):
        parts[_UNITS[unit]] += int(amount)
    return timedelta(**parts)
