"""The background job aggregate: invocation, queue, priority, properties, middleware, states, lock."""

from __future__ import annotations

import threading
import types
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar, overload

from hivemind_jobs.core.codec import Codec, JSONValue, compact_json, load_json, qualified_name
from hivemind_jobs.core.ids import new_execution_key
from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.names import validate_property_name, validate_queue_name
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.states import State, check_transition
from hivemind_jobs.core.text import text_problem
from hivemind_jobs.errors import ConfigurationError, LimitExceededError, SerializationError

__all__ = [
    "BackgroundJob",
    "LockInfo",
    "Middleware",
    "MiddlewareEntry",
    "PropertyType",
    "PropertyValue",
    "property_type_of",
]

PropertyValue = str | int | float | bool | datetime | uuid.UUID
V = TypeVar("V")


class PropertyType(StrEnum):
    """How a property is stored and compared."""

    TEXT = "text"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    UUID = "uuid"


_TEXT_MAX = 4000


def property_type_of(name: str, value: object) -> PropertyType:
    """The storage type of a property value; anything else is a clear error."""
    if isinstance(value, bool):
        return PropertyType.BOOL
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise ConfigurationError(f"property {name!r}: {value} does not fit a 64-bit integer; store it as text")
        return PropertyType.INT
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigurationError(f"property {name!r}: {value!r} cannot be stored; use a finite number")
        return PropertyType.FLOAT
    if isinstance(value, str):
        problem = text_problem(value, _TEXT_MAX)
        if problem is not None:
            if len(value) > _TEXT_MAX:
                raise LimitExceededError(
                    f"property {name!r}: {problem} (text properties hold at most {_TEXT_MAX} characters, so that "
                    "they can be compared and indexed); store large values as job data instead"
                )
            raise ConfigurationError(f"property {name!r}: {problem}")
        return PropertyType.TEXT
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(f"property {name!r}: naive datetime {value}; pass an aware datetime")
        return PropertyType.DATETIME
    if isinstance(value, uuid.UUID):
        return PropertyType.UUID
    raise ConfigurationError(
        f"property {name!r}: a {type(value).__name__} cannot be a property; properties are str, int, float, "
        "bool, datetime or UUID (store other values as job data)"
    )


@dataclass(frozen=True, slots=True)
class Middleware:
    """A middleware to attach to a job: its class, an input for it, and its order (lower first)."""

    type: type
    input: Any = None
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class MiddlewareEntry:
    """A middleware attachment as stored with the job."""

    type_name: str
    input: JSONValue
    priority: int | None

    @classmethod
    def from_spec(cls, spec: Middleware, codec: Codec) -> MiddlewareEntry:
        if not isinstance(spec, Middleware):
            raise ConfigurationError(f"middleware entries must be hivemind_jobs.Middleware(...), got {spec!r}")
        if not isinstance(spec.type, type):
            raise ConfigurationError(f"Middleware(type=...) takes a class, got {spec.type!r}")
        if spec.priority is not None and (not isinstance(spec.priority, int) or isinstance(spec.priority, bool)):
            raise ConfigurationError(f"Middleware priority must be an int or None, got {spec.priority!r}")
        try:
            type_name = qualified_name(spec.type)
        except SerializationError as error:
            raise ConfigurationError(f"middleware {spec.type!r}: {error}") from None
        return cls(type_name, codec.encode(spec.input, path=f"input of middleware {type_name}"), spec.priority)

    @staticmethod
    def list_to_json(entries: Iterable[MiddlewareEntry]) -> str:
        return compact_json(
            [{"type": entry.type_name, "input": entry.input, "priority": entry.priority} for entry in entries]
        )

    @staticmethod
    def list_from_json(text: str | None) -> tuple[MiddlewareEntry, ...]:
        """Decode a stored middleware list; raises :class:`SerializationError` when it is malformed."""
        entries, problem = MiddlewareEntry.read_list(text)
        if problem is not None:
            raise SerializationError(problem)
        return entries

    @staticmethod
    def read_list(text: str | None) -> tuple[tuple[MiddlewareEntry, ...], str | None]:
        """Decode a stored middleware list without raising: ``(entries, None)``, or ``((), problem)``
        when the text is not a list of ``{"type": "module:qualname", "input": ..., "priority": int|null}``."""
        if not text or text == "[]":  # most jobs have none
            return (), None
        try:
            document = load_json(text)
        except (ValueError, TypeError, RecursionError) as error:
            return (), f"stored middleware list is not valid JSON ({error})"
        if not isinstance(document, list):
            return (), f"stored middleware list is a JSON {type(document).__name__}, not a list"
        entries = []
        for index, item in enumerate(document):
            if not isinstance(item, dict):
                return (), f"stored middleware entry {index} is a JSON {type(item).__name__}, not an object"
            type_name, priority = item.get("type"), item.get("priority")
            if not isinstance(type_name, str) or not type_name:
                return (), f"stored middleware entry {index} has no type ('module:qualname' text)"
            if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
                return (), f"stored middleware entry {index} ({type_name}) has a priority that is not an integer"
            entries.append(MiddlewareEntry(type_name, item.get("input"), priority))
        return tuple(entries), None


@dataclass(frozen=True, slots=True)
class LockInfo:
    """Who holds a job's lock and when it was last confirmed (database clock)."""

    owner: str
    locked_at: datetime
    heartbeat: datetime


#: held while a job decodes the earlier states of its history
_decoding = threading.Lock()


class BackgroundJob:
    """A background job as read from storage (a consistent snapshot) or being built.

    Read it freely; change it through a :class:`~hivemind_jobs.client.LockedJob`. The methods starting
    with an underscore are the engine's and track what a save must write.

    A job read from storage may come with its earlier states still undecoded (``older``: a function
    that decodes the ``older_count`` states before ``states``); they are decoded the first time the
    history is read, so a worker that only runs the job never decodes them.
    """

    def __init__(
        self,
        *,
        environment: str,
        job_id: int | None,
        queue: str,
        priority: Priority,
        invocation: Invocation,
        execution_id: uuid.UUID | str,
        states: Iterable[State],
        properties: Mapping[str, PropertyValue],
        middleware: Iterable[MiddlewareEntry],
        created_at: datetime | None,
        modified_at: datetime | None,
        lock: LockInfo | None,
        older: Callable[[], list[State]] | None = None,
        older_count: int = 0,
    ) -> None:
        self._environment = environment
        self._id = job_id
        self._queue = queue
        self._priority = priority
        self._invocation = invocation
        #: the execution id in its canonical text form (how it is stored and compared)
        self._execution_key = str(execution_id)
        #: the decoded end of the history (all of it once ``_older`` is None)
        self._states = list(states)
        self._older = older
        self._older_count = older_count if older is not None else 0
        self._properties = dict(properties)
        self._middleware = tuple(middleware)
        self._created_at = created_at
        self._modified_at = modified_at
        self._lock = lock
        # change tracking: what exists in storage
        self._saved_state_count = self._older_count + len(self._states) if job_id is not None else 0
        self._saved_execution_key = self._execution_key
        self._changed_properties: set[str] = set()
        self._removed_properties: set[str] = set()
        self._moved = False

    # ------------------------------------------------------------------ read API
    @property
    def id(self) -> int:
        if self._id is None:
            raise ConfigurationError("the job has not been saved yet, so it has no id")
        return self._id

    @property
    def environment(self) -> str:
        return self._environment

    @property
    def queue(self) -> str:
        return self._queue

    @property
    def priority(self) -> Priority:
        return self._priority

    @property
    def invocation(self) -> Invocation:
        return self._invocation

    @property
    def execution_id(self) -> uuid.UUID:
        """Renewed on every applied state; queue entries and worker writes are fenced by it."""
        return uuid.UUID(self._execution_key)

    @property
    def execution_key(self) -> str:
        """The execution id as stored (canonical text)."""
        return self._execution_key

    @property
    def state(self) -> State:
        return self._states[-1]

    @property
    def states(self) -> tuple[State, ...]:
        """The state history, oldest first (the last one is the current state)."""
        if self._older is not None:
            self._decode_older()
        return tuple(self._states)

    def _decode_older(self) -> None:
        with _decoding:  # once, even when a job's thread and the loop read the history together
            older = self._older
            if older is not None:
                decoded = older()
                self._states[:0] = decoded
                # ``older_count`` may have been a count told before decoding (a history read as one
                # text): the saved states are counted by what was decoded
                self._saved_state_count += len(decoded) - self._older_count
                self._older = None
                self._older_count = 0

    @property
    def properties(self) -> Mapping[str, PropertyValue]:
        return types.MappingProxyType(self._properties)

    @overload
    def get_property(self, name: str) -> PropertyValue | None: ...
    @overload
    def get_property(self, name: str, default: V) -> PropertyValue | V: ...
    def get_property(self, name: str, default: Any = None) -> Any:
        return self._properties.get(name, default)

    @property
    def middleware(self) -> tuple[MiddlewareEntry, ...]:
        return self._middleware

    @property
    def created_at(self) -> datetime | None:
        return self._created_at

    @property
    def modified_at(self) -> datetime | None:
        return self._modified_at

    @property
    def lock(self) -> LockInfo | None:
        return self._lock

    @property
    def locked_by(self) -> str | None:
        return self._lock.owner if self._lock else None

    def __repr__(self) -> str:
        ident = self._id if self._id is not None else "new"
        return (
            f"<BackgroundJob {ident} {self._invocation.display_name} queue={self._queue!r} "
            f"priority={self._priority.name} state={self.state.name}>"
        )

    # ------------------------------------------------------------------ engine API
    def _apply_state(
        self, state: State, now: datetime, execution_key: str | None = None, *, text_checked: bool = False
    ) -> State | None:
        """Push ``state`` on the history and renew the execution id (to ``execution_key`` when
        given: one storage has already written); returns the previous state. ``text_checked``: see
        :func:`~hivemind_jobs.core.states.check_transition`."""
        previous = self._states[-1] if self._states else None
        check_transition(previous, state, text_checked=text_checked)
        state.sequence = previous.sequence + 1 if previous is not None else 0
        state.elected_at = now
        self._states.append(state)
        self._execution_key = execution_key if execution_key is not None else new_execution_key()
        return previous

    def _set_property(self, name: str, value: PropertyValue | None) -> None:
        if not name.startswith("$"):
            validate_property_name(name)
        if value is None:
            self._remove_property(name)
            return
        property_type_of(name, value)
        self._properties[name] = value
        self._changed_properties.add(name)
        self._removed_properties.discard(name)

    def _remove_property(self, name: str) -> None:
        if self._properties.pop(name, None) is not None:
            self._removed_properties.add(name)
            self._changed_properties.discard(name)

    def _move(self, queue: str | None, priority: Priority | None) -> None:
        if queue is not None:
            self._queue = validate_queue_name(queue)
        if priority is not None:
            self._priority = priority
        self._moved = True

    @property
    def _unsaved_states(self) -> list[State]:
        return self._states[self._saved_state_count - self._older_count :]

    @property
    def _last_saved_state(self) -> State | None:
        """The current state as last saved (None for a job never saved)."""
        if self._saved_state_count == 0:
            return None
        if self._saved_state_count - 1 < self._older_count:
            self._decode_older()
        return self._states[self._saved_state_count - 1 - self._older_count]

    @property
    def _has_changes(self) -> bool:
        return bool(self._unsaved_states or self._changed_properties or self._removed_properties or self._moved)

    def _mark_saved(
        self, job_id: int, modified_at: datetime, created_at: datetime | None, lock: LockInfo | None
    ) -> None:
        self._id = job_id
        self._modified_at = modified_at
        if created_at is not None:
            self._created_at = created_at
        self._lock = lock
        self._saved_state_count = self._older_count + len(self._states)
        self._saved_execution_key = self._execution_key
        self._changed_properties.clear()
        self._removed_properties.clear()
        self._moved = False

    def _set_lock(self, lock: LockInfo | None) -> None:
        self._lock = lock
