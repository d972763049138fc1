"""What a recurring job is made of: its definition (what to run, where, on which schedule and with
which settings), its statistics and the read-only view clients get.

The definition and the statistics are stored as JSON in the recurring job's row; everything read
back from a database is validated again (a malformed row is a clear error, never a crash).
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from hivemind_jobs.core.clock import from_microseconds, to_microseconds
from hivemind_jobs.core.job import PropertyType, PropertyValue, property_type_of
from hivemind_jobs.core.names import validate_property_name
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.throttle import JobLimits
from hivemind_jobs.errors import ConfigurationError, SerializationError
from hivemind_jobs.recurring.schedule import Schedule

__all__ = [
    "RECURRING_ID_PROPERTY",
    "SCHEDULED_AT_PROPERTY",
    "Misfire",
    "NextRunBase",
    "RecurringDefinition",
    "RecurringJob",
    "RecurringSettings",
    "RecurringStats",
    "validate_recurring_id",
]

#: properties every occurrence job carries: which recurring job it belongs to, and its scheduled time
RECURRING_ID_PROPERTY = "hm.recurring_id"
SCHEDULED_AT_PROPERTY = "hm.scheduled_at"

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:\-]{0,199}")


def validate_recurring_id(value: object) -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise ConfigurationError(
            f"invalid recurring job id {value!r}: use 1-200 characters from A-Z a-z 0-9 . _ : - "
            "(starting with a letter or digit)"
        )
    return value


class Misfire(enum.Enum):
    """What happens to an occurrence that could not start within the misfire threshold (colonies
    were down, or the previous run took too long)."""

    RUN_ONCE = "run_once"  # run the latest missed occurrence once, skip the others
    SKIP = "skip"  # skip every missed occurrence; wait for the next one
    FAIL = "fail"  # record the latest missed occurrence as a Failed job, skip the others
    IDLE = "idle"  # pause the recurring job (Idle) until it is resumed


class NextRunBase(enum.Enum):
    """What the next occurrence is computed from."""

    SCHEDULED = "scheduled"  # the previous occurrence's scheduled time (cron semantics)
    STARTED = "started"  # when the previous run started
    COMPLETED = "completed"  # when the previous run ended


def _seconds(value: timedelta) -> float:
    return value.total_seconds()


@dataclass(frozen=True, kw_only=True)
class RecurringSettings:
    """How a recurring job is scheduled and how much history it keeps.

    - ``misfire`` / ``misfire_threshold``: the policy for an occurrence that is later than the
      threshold when it could start.
    - ``next_run_base``: what the next occurrence is computed from.
    - ``keep_states`` / ``keep_logs``: how many history entries of each kind are kept (None: all);
      ``state_retention`` / ``log_retention``: entries older than this are removed (None: kept).
    """

    misfire: Misfire = Misfire.RUN_ONCE
    misfire_threshold: timedelta = timedelta(minutes=1)
    next_run_base: NextRunBase = NextRunBase.SCHEDULED
    keep_states: int | None = 100
    keep_logs: int | None = 1000
    state_retention: timedelta | None = timedelta(days=14)
    log_retention: timedelta | None = None

    def __post_init__(self) -> None:
        # strings are accepted too ("skip", "completed"): stored as the enum
        object.__setattr__(self, "misfire", _enum(Misfire, self.misfire, "misfire"))
        object.__setattr__(self, "next_run_base", _enum(NextRunBase, self.next_run_base, "next_run_base"))
        if not isinstance(self.misfire_threshold, timedelta) or self.misfire_threshold < timedelta(0):
            raise ConfigurationError(f"misfire_threshold must be a timedelta >= 0, got {self.misfire_threshold!r}")
        for name in ("keep_states", "keep_logs"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigurationError(f"{name} must be a positive int or None, got {value!r}")
        for name in ("state_retention", "log_retention"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, timedelta) or value <= timedelta(0)):
                raise ConfigurationError(f"{name} must be a positive timedelta or None, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        return {
            "misfire": self.misfire.value,
            "misfire_threshold": _seconds(self.misfire_threshold),
            "next_run_base": self.next_run_base.value,
            "keep_states": self.keep_states,
            "keep_logs": self.keep_logs,
            "state_retention": None if self.state_retention is None else _seconds(self.state_retention),
            "log_retention": None if self.log_retention is None else _seconds(self.log_retention),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RecurringSettings:
        def span(value: Any) -> timedelta | None:
            return None if value is None else timedelta(seconds=float(value))

        return cls(
            misfire=Misfire(data["misfire"]),
            misfire_threshold=timedelta(seconds=float(data["misfire_threshold"])),
            next_run_base=NextRunBase(data["next_run_base"]),
            keep_states=data["keep_states"],
            keep_logs=data["keep_logs"],
            state_retention=span(data["state_retention"]),
            log_retention=span(data["log_retention"]),
        )


def _enum(kind: type[enum.Enum], value: object, name: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(repr(member.value) for member in kind)
        raise ConfigurationError(f"{name} must be one of {choices}, got {value!r}") from None


# ----------------------------------------------------------------------------- properties as JSON


def properties_to_json(properties: Mapping[str, PropertyValue]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for name, value in sorted(properties.items()):
        validate_property_name(name)
        kind = property_type_of(name, value)
        if kind is PropertyType.DATETIME:
            assert isinstance(value, datetime)
            rows.append([name, kind.value, to_microseconds(value)])
        elif kind is PropertyType.UUID:
            rows.append([name, kind.value, str(value)])
        else:
            rows.append([name, kind.value, value])
    return rows


def properties_from_json(rows: Any) -> dict[str, PropertyValue]:
    properties: dict[str, PropertyValue] = {}
    for name, kind_text, raw in rows:
        kind = PropertyType(kind_text)
        value: PropertyValue
        if kind is PropertyType.DATETIME:
            value = from_microseconds(int(raw))
        elif kind is PropertyType.UUID:
            value = uuid.UUID(raw)
        else:
            value = raw
        property_type_of(name, value)
        properties[validate_property_name(name)] = value
    return properties


# ----------------------------------------------------------------------------- definition


@dataclass(frozen=True)
class RecurringDefinition:
    """What runs, where and when: stored as one JSON document in the recurring job's row."""

    invocation: str  # the invocation JSON, exactly as background jobs store it
    display_name: str
    schedule: Schedule
    queue: str
    priority: Priority
    properties: Mapping[str, PropertyValue] = field(default_factory=dict)
    middleware: str = "[]"  # the middleware JSON, exactly as background jobs store it
    retry: str | None = None  # a RetryPolicy as JSON (None: the environment's policy)
    settings: RecurringSettings = field(default_factory=RecurringSettings)
    limits: JobLimits | None = None  # each occurrence's concurrency and rate limits

    def to_json(self) -> str:
        return json.dumps(
            {
                "invocation": self.invocation,
                "display_name": self.display_name,
                "schedule": self.schedule.to_json(),
                "queue": self.queue,
                "priority": int(self.priority),
                "properties": properties_to_json(self.properties),
                "middleware": self.middleware,
                "retry": self.retry,
                "settings": self.settings.to_json(),
                **({"limits": self.limits.to_json()} if self.limits is not None else {}),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str, recurring_id: str) -> RecurringDefinition:
        try:
            data = json.loads(text)
            return cls(
                invocation=str(data["invocation"]),
                display_name=str(data["display_name"]),
                schedule=Schedule.from_json(data["schedule"]),
                queue=str(data["queue"]),
                priority=Priority(int(data["priority"])),
                properties=properties_from_json(data["properties"]),
                middleware=str(data["middleware"]),
                retry=data["retry"],
                settings=RecurringSettings.from_json(data["settings"]),
                limits=JobLimits.from_json(data["limits"]) if data.get("limits") is not None else None,
            )
        except (ValueError, KeyError, TypeError, ConfigurationError) as error:
            raise SerializationError(
                f"recurring job {recurring_id!r}: stored definition is malformed: {error}"
            ) from error

    def with_settings(self, settings: RecurringSettings) -> RecurringDefinition:
        return replace(self, settings=settings)


# ----------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class RecurringStats:
    """What a recurring job has done: runs started, their outcomes, misfires and skipped
    occurrences, and when it last ran."""

    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    misfired: int = 0
    skipped: int = 0
    last_scheduled: datetime | None = None
    last_started: datetime | None = None
    last_completed: datetime | None = None
    last_outcome: str | None = None
    last_job_id: int | None = None

    def to_json(self) -> str:
        def moment(value: datetime | None) -> int | None:
            return None if value is None else to_microseconds(value)

        return json.dumps(
            {
                "runs": self.runs,
                "succeeded": self.succeeded,
                "failed": self.failed,
                "misfired": self.misfired,
                "skipped": self.skipped,
                "last_scheduled": moment(self.last_scheduled),
                "last_started": moment(self.last_started),
                "last_completed": moment(self.last_completed),
                "last_outcome": self.last_outcome,
                "last_job_id": self.last_job_id,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RecurringStats:
        try:
            data = json.loads(text)

            def moment(name: str) -> datetime | None:
                value = data.get(name)
                return None if value is None else from_microseconds(int(value))

            return cls(
                runs=int(data.get("runs", 0)),
                succeeded=int(data.get("succeeded", 0)),
                failed=int(data.get("failed", 0)),
                misfired=int(data.get("misfired", 0)),
                skipped=int(data.get("skipped", 0)),
                last_scheduled=moment("last_scheduled"),
                last_started=moment("last_started"),
                last_completed=moment("last_completed"),
                last_outcome=data.get("last_outcome"),
                last_job_id=data.get("last_job_id"),
            )
        except (ValueError, TypeError, AttributeError) as error:
            raise SerializationError(f"stored recurring statistics are malformed: {error}") from error


# ----------------------------------------------------------------------------- the view


@dataclass(frozen=True)
class RecurringJob:
    """A recurring job as read from storage.

    ``state`` is ``Enqueued`` (waiting for ``next_run``), ``Executing`` (the occurrence ``job_id``
    runs) or ``Idle`` (paused; ``state_reason`` says why). ``next_run`` is the next occurrence it
    waits for (the next expected run).
    """

    id: str
    environment: str
    definition: RecurringDefinition
    state: str
    state_reason: str | None
    next_run: datetime | None
    job_id: int | None
    stats: RecurringStats
    version: int
    created_at: datetime
    modified_at: datetime

    @property
    def schedule(self) -> Schedule:
        return self.definition.schedule

    @property
    def queue(self) -> str:
        return self.definition.queue

    @property
    def priority(self) -> Priority:
        return self.definition.priority

    @property
    def properties(self) -> Mapping[str, PropertyValue]:
        return self.definition.properties

    @property
    def settings(self) -> RecurringSettings:
        return self.definition.settings

    @property
    def display_name(self) -> str:
        return self.definition.display_name

    @property
    def is_paused(self) -> bool:
        return self.state == "Idle"

    @property
    def is_running(self) -> bool:
        return self.job_id is not None

    def __repr__(self) -> str:
        return f"<RecurringJob {self.id!r} {self.display_name} state={self.state} next_run={self.next_run}>"
