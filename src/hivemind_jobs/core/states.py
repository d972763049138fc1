"""Job states: the built-in ones, custom ones, their registry and the transition rules.

A state is a small dataclass. Its typed fields are persisted as JSON in the job's state history
together with the columns every state has (``sequence``, ``elected_at``, ``reason``). Subclassing
:class:`State` is all it takes to define a custom state: the subclass is turned into a keyword-only
dataclass and registered under its name (the class name unless ``name=`` is given), so it can be
restored when the job is read back::

    class AwaitingApproval(State, name="AwaitingApproval"):
        approver: str
        requested_at: datetime

Fields whose metadata contains :data:`TRANSIENT` stay in memory only (``Failed.exception``).

Lifecycle (see docs/states.md for the diagram)::

    Created ─► Enqueued ─► Executing ─► Succeeded
       │          ▲  │          │  └──► Failed ──(retry)──► Enqueued
       │          │  └► Idle    └────► Enqueued (rescued / shutdown)
       └► Awaiting┘  (parent reached a matching state)
    any ─► Deleted (soft) ;  any ─► SystemDeleting ─► SystemDeleted (row removed)
"""

from __future__ import annotations

import dataclasses
import threading
import traceback as traceback_module
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, ClassVar, Final, dataclass_transform

from hivemind_jobs.core.names import validate_state_name
from hivemind_jobs.core.text import nested_text_problem, redact_secrets, storable_text
from hivemind_jobs.errors import ConfigurationError, InvalidTransitionError, StateRegistrationError

__all__ = [
    "TRANSIENT",
    "Awaiting",
    "Created",
    "Deleted",
    "Enqueued",
    "Executing",
    "Failed",
    "Idle",
    "State",
    "Succeeded",
    "SystemDeleted",
    "SystemDeleting",
    "UnknownState",
    "check_state_text",
    "check_transition",
    "final_state_names",
    "is_final_state",
    "persisted_names",
    "registered_states",
    "state_class",
]

#: Field metadata marking a state field that is not persisted: ``field(default=None, metadata=TRANSIENT)``.
TRANSIENT: Final[Mapping[str, Any]] = {"hivemind.transient": True}

_COLUMN_FIELDS: Final = frozenset({"reason", "sequence", "elected_at"})
_registry: dict[str, type[State]] = {}
_registry_lock = threading.Lock()


_persisted_names_cache: dict[type, tuple[str, ...]] = {}


def _persisted_names(cls: type) -> tuple[str, ...]:
    names = _persisted_names_cache.get(cls)
    if names is None:
        names = tuple(
            field.name
            for field in dataclasses.fields(cls)
            if field.init and field.name not in _COLUMN_FIELDS and not field.metadata.get("hivemind.transient")
        )
        _persisted_names_cache[cls] = names
    return names


def persisted_names(cls: type) -> tuple[str, ...]:
    """The names of a state class's persisted fields (not the columns, not transient ones)."""
    return _persisted_names(cls)


def is_final_state(name: str) -> bool:
    """Whether ``name`` is a registered state class marked final (Succeeded, Failed, Deleted ...)."""
    cls = state_class(name)
    return cls is not None and cls.final


def final_state_names() -> list[str]:
    """The names of the registered final states (Succeeded, Failed, Deleted ... and custom ones)."""
    return [name for name, cls in list(_registry.items()) if cls.final]


def registered_states() -> Mapping[str, type[State]]:
    """All registered state classes by name (built-in and custom)."""
    with _registry_lock:
        return dict(_registry)


def state_class(name: str) -> type[State] | None:
    # one dict read is atomic: no lock (this runs for every state read, in the storage threads too,
    # and a contended lock costs more than the read); registrations still take the lock
    return _registry.get(name)


def _register(cls: type[State]) -> None:
    name = cls.state_name
    with _registry_lock:
        existing = _registry.get(name)
        same_definition = existing is not None and (
            existing.__module__ == cls.__module__ and existing.__qualname__ == cls.__qualname__
        )
        if existing is not None and not same_definition:
            raise StateRegistrationError(
                f"state name {name!r} of {cls.__module__}.{cls.__qualname__} is already used by "
                f"{existing.__module__}.{existing.__qualname__}; pass another name: class X(State, name=...)"
            )
        _registry[name] = cls


@dataclass_transform(kw_only_default=True, field_specifiers=(dataclasses.field,))
@dataclasses.dataclass(kw_only=True, eq=False)
class State:
    """Base class of every job state.

    ``reason`` says why the state was elected. ``sequence`` and ``elected_at`` are set when the state
    is applied to a job (a state object can be applied once).
    """

    state_name: ClassVar[str] = "State"
    #: A final state ends the job's run: ``Continue.ANY`` continuations and delete-on-other-state
    #: react to final states only.
    final: ClassVar[bool] = False

    reason: str | None = None
    sequence: int = dataclasses.field(default=-1, init=False, compare=False)
    elected_at: datetime | None = dataclasses.field(default=None, init=False, compare=False)

    def __init_subclass__(cls, *, name: str | None = None, final: bool | None = None, register: bool = True) -> None:
        super().__init_subclass__()
        if name is not None or "state_name" not in cls.__dict__:
            cls.state_name = validate_state_name(name or cls.__name__)
        if final is not None:
            cls.final = final
        try:
            dataclasses.dataclass(kw_only=True, eq=False, repr=False)(cls)
        except (TypeError, ValueError) as error:
            raise StateRegistrationError(f"state {cls.__qualname__} is not a valid dataclass: {error}") from error
        for field in dataclasses.fields(cls):
            if field.name in ("sequence", "elected_at") and field.init:
                raise StateRegistrationError(f"{cls.__qualname__} must not redefine {field.name!r}")
        if register:
            _register(cls)

    @property
    def name(self) -> str:
        return self.state_name

    @property
    def is_applied(self) -> bool:
        return self.sequence >= 0

    def persisted_fields(self) -> dict[str, Any]:
        """The typed fields that go into the state's JSON (not the columns, not transient ones)."""
        return {name: getattr(self, name) for name in _persisted_names(type(self))}

    def __repr__(self) -> str:
        parts = [f"{key}={value!r}" for key, value in self.persisted_fields().items()]
        if self.reason:
            parts.append(f"reason={self.reason!r}")
        return f"{self.name}({', '.join(parts)})"


class Created(State):
    """Initial state of every job; never elected."""


class Enqueued(State):
    """Waiting in its queue, not fetched before it is due (the job stays Enqueued meanwhile).

    ``delay`` (relative) makes it due that long after the state is saved, measured with the database
    clock when the queue entry is written, so a node whose clock is off cannot move the due time;
    ``delay_until`` (absolute, UTC) makes it due at that moment of the database clock. Neither:
    due at once. ``elected_at`` is the electing process's clock, so ``elected_at + delay`` is only
    an estimate of the due time.
    """

    delay: timedelta | None = None
    delay_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.delay is not None:
            if not isinstance(self.delay, timedelta) or self.delay < timedelta(0):
                raise ConfigurationError(f"Enqueued(delay=...) must be a non-negative timedelta, got {self.delay!r}")
            if self.delay_until is not None:
                raise ConfigurationError("Enqueued takes delay (relative) or delay_until (absolute), not both")


class Awaiting(State):
    """Waiting for ``parent_id`` to reach one of ``on_states`` (None: any final state)."""

    parent_id: int
    on_states: list[str] | None = None
    delete_on_other_state: bool = False
    delay: timedelta | None = None


class Executing(State):
    """Being executed by a drone.

    ``due_at``: when the queue entry the job was claimed from was due (database clock). A job
    rescued from an expired lock is enqueued due at that time again, so it keeps its place in its
    queue instead of going behind every job enqueued since it was first due.
    """

    colony: str | None = None
    swarm: str | None = None
    drone: str | None = None
    due_at: datetime | None = None


class Succeeded(State, final=True):
    """Finished without error; ``result`` is the JSON-encoded return value."""

    result: Any = None
    duration: timedelta | None = None
    overhead: timedelta | None = None
    lead_time: timedelta | None = None


class Failed(State, final=True):
    """Raised an exception (or was failed on purpose); the live exception is kept in memory only."""

    exception_type: str | None = None
    message: str | None = None
    traceback: str | None = None
    exception: BaseException | None = dataclasses.field(default=None, metadata=TRANSIENT, repr=False)

    @classmethod
    def from_exception(cls, error: BaseException, reason: str | None = None) -> Failed:
        """The failure ``error`` caused; passwords in its message and traceback (a driver error
        quoting its connection string) are stored as ``***``."""
        kind = type(error)
        return cls(
            reason=reason,
            exception_type=f"{kind.__module__}.{kind.__qualname__}",
            message=storable_text(redact_secrets(str(error))),
            traceback=storable_text(redact_secrets("".join(traceback_module.format_exception(error)))),
            exception=error,
        )


class Idle(State):
    """Parked: not queued, not running (cancelled jobs land here)."""


class Deleted(State, final=True):
    """Deleted by a user; the job is kept (soft delete) until retention removes it."""


class SystemDeleting(State, final=True):
    """Being permanently deleted; electing another state vetoes the deletion."""


class SystemDeleted(State, final=True):
    """Permanently deleted: the row is gone, this state only exists in events."""


class UnknownState(State, register=False):
    """A stored state whose class is not registered in this process (kept as raw JSON fields)."""

    stored_name: str = "Unknown"
    raw_fields: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.stored_name

    def persisted_fields(self) -> dict[str, Any]:
        return dict(self.raw_fields)

    def __repr__(self) -> str:
        return f"UnknownState({self.stored_name!r}, {self.raw_fields!r})"


def check_transition(current: State | None, new: State, *, text_checked: bool = False) -> None:
    """The transition rules: what the state machine refuses whatever handlers say.
    ``text_checked``: the caller has checked the new state's text already (:func:`check_state_text`
    on a state with the same text fields, as a colony does once per drone for its Executing states)."""
    if new.is_applied:
        raise InvalidTransitionError(f"{new!r} was already applied to a job; create a new state object")
    if isinstance(new, UnknownState):
        raise InvalidTransitionError(
            f"state {new.name!r} is not registered in this process, so it cannot be elected; import the "
            "module that defines it"
        )
    if not text_checked:
        check_state_text(new)
    if current is None:
        if not isinstance(new, Created):
            raise InvalidTransitionError("a new job starts in Created")
        return
    if isinstance(new, Created):
        raise InvalidTransitionError("Created is only the initial state of a job")
    if isinstance(current, SystemDeleted):
        raise InvalidTransitionError("the job was permanently deleted; it cannot change state any more")
    if isinstance(new, SystemDeleted) and not isinstance(current, SystemDeleting):
        raise InvalidTransitionError("SystemDeleted can only follow SystemDeleting")


#: no practical bound on a state's text (tracebacks are long); only what no backend can store is refused
_STATE_TEXT_MAX: Final = 10_000_000


def check_state_text(state: State) -> None:
    """A state's reason and string fields must be storable text on every backend."""
    texts = [("reason", state.reason)] if state.reason is not None else []
    texts.extend(state.persisted_fields().items())
    for name, value in texts:
        if value is None or (
            type(value) is str and value.isascii() and "\x00" not in value and len(value) <= _STATE_TEXT_MAX
        ):
            continue  # nothing to store, or ASCII text (so no lone surrogate) with no NUL: storable
        problem = nested_text_problem(value, _STATE_TEXT_MAX)
        if problem is not None:
            raise ConfigurationError(f"{state.name}.{name}: {problem}; the state cannot be stored")
