"""The job filters of the dashboard: query parameters to a query condition, with a message per
parameter that cannot be used (the page then shows the message and no jobs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from hivemind_jobs.core.names import validate_queue_name, validate_state_name
from hivemind_jobs.core.priority import coerce_priority
from hivemind_jobs.errors import HiveMindError
from hivemind_jobs.query import Condition
from hivemind_jobs.query import conditions as q
from hivemind_jobs.query.text import parse_duration, typed_value

__all__ = ["JobFilters", "parse_filters"]

#: the filter parameters of /jobs (each may repeat: state, queue, function, priority, property)
FILTER_KEYS = (
    "state",
    "queue",
    "function",
    "priority",
    "property",
    "since",
    "until",
    "modified_since",
    "modified_until",
)
#: the time filters: parameter -> (column, lower bound?)
_TIMES = {
    "since": ("created_at", True),
    "until": ("created_at", False),
    "modified_since": ("modified_at", True),
    "modified_until": ("modified_at", False),
}


@dataclass
class JobFilters:
    """What the jobs page filters by, as given (to fill the form again) and as a condition."""

    values: dict[str, list[str]] = field(default_factory=dict)
    condition: Condition | None = None
    errors: list[str] = field(default_factory=list)

    def first(self, key: str) -> str:
        items = self.values.get(key, [])
        return items[0] if items else ""

    def query(self, **extra: str) -> str:
        """The filters as a query string (with ``extra`` parameters such as ``after``)."""
        pairs = [(key, value) for key in FILTER_KEYS for value in self.values.get(key, []) if value]
        pairs.extend((key, value) for key, value in extra.items() if value)
        return urlencode(pairs)

    @property
    def given(self) -> bool:
        return any(value for values in self.values.values() for value in values)


def _moment(name: str, text: str, now: datetime) -> datetime:
    try:
        duration = parse_duration(text)
    except OverflowError:
        raise ValueError(f"{name} {text!r}: that is further back than any date") from None
    if duration is not None:
        return now - duration
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name} {text!r}: expected a duration such as 30m, 2h or 7d, or an ISO-8601 datetime with offset"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{name} {text!r}: the datetime needs a UTC offset, e.g. 2024-05-01T12:00:00Z")
    return moment


def _any(key: str, texts: Sequence[str]) -> Condition:
    alternatives: list[Condition] = []
    for text in texts:
        if key == "state":
            alternatives.append(q.state == validate_state_name(text))
        elif key == "queue":
            if "*" in text:
                validate_queue_name(text.replace("*", "x"))
                alternatives.append(q.job.queue.like(text))
            else:
                alternatives.append(q.job.queue == validate_queue_name(text))
        elif key == "function":
            alternatives.append(q.job.function.like(text) if "*" in text else q.job.function == text)
        else:  # priority
            alternatives.append(q.job.priority == coerce_priority(int(text) if text.isdigit() else text))
    return q.any_of(*alternatives)


def _property(spec: str) -> Condition:
    """``name=value`` (typed as the CLI's --property), ``name=~pattern``, ``name>=value``,
    ``name<=value``, ``name>value`` or ``name<value``."""
    for operator in (">=", "<=", "=~", "=", ">", "<"):
        name, found, raw = spec.partition(operator)
        if found and name and "=" not in name and "<" not in name and ">" not in name:
            break
    else:
        raise ValueError(f"property {spec!r}: expected NAME=VALUE, NAME=~PATTERN or a range such as amount>=10")
    name = name.strip()
    target = q.prop(name)
    if operator == "=~":
        return target.like(raw)
    value = typed_value(raw.strip())
    if operator == "=":
        return target == value
    if operator == ">=":
        return target >= value
    if operator == "<=":
        return target <= value
    return target > value if operator == ">" else target < value


def parse_filters(params: Mapping[str, Sequence[str]], now: datetime) -> JobFilters:
    """The filters of ``params`` (a parameter name to its values); each unusable one is an error."""
    values = {key: [text.strip() for text in params.get(key, []) if text.strip()] for key in FILTER_KEYS}
    filters = JobFilters(values={key: items for key, items in values.items() if items})
    parts: list[Condition] = []
    for key in ("state", "queue", "function", "priority"):
        if values[key]:
            try:
                parts.append(_any(key, values[key]))
            except (HiveMindError, ValueError) as error:
                filters.errors.append(f"{key}: {error}")
    for spec in values["property"]:
        try:
            parts.append(_property(spec))
        except (HiveMindError, ValueError) as error:
            filters.errors.append(str(error))
    for key, (column, lower) in _TIMES.items():
        for text in values[key][:1]:
            try:
                moment = _moment(key, text, now)
                target = q.job.created_at if column == "created_at" else q.job.modified_at
                parts.append(target >= moment if lower else target < moment)
            except (HiveMindError, ValueError) as error:
                filters.errors.append(str(error))
    if not filters.errors and parts:
        try:
            filters.condition = q.where(*parts)
        except HiveMindError as error:
            filters.errors.append(str(error))
    return filters
