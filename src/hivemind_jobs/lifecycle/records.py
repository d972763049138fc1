"""Conversions between the job aggregate and the storage rows."""

from __future__ import annotations

import copy
import dataclasses
import typing
from datetime import datetime
from typing import Any

from hivemind_jobs.core.codec import Codec, compact_json, exact_encoders, json_native_types, load_json
from hivemind_jobs.core.ids import new_execution_key
from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.job import BackgroundJob, LockInfo, MiddlewareEntry, PropertyValue, property_type_of
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.states import (
    Awaiting,
    Created,
    Enqueued,
    State,
    UnknownState,
    check_transition,
    persisted_names,
    state_class,
)
from hivemind_jobs.errors import SerializationError
from hivemind_jobs.storage.protocol import JobInsert, JobRecord, JobUpdate, PropertyRow, QueuePointer, StateRow

__all__ = [
    "NewJobs",
    "job_from_record",
    "job_to_insert",
    "job_to_update",
    "property_rows",
    "state_from_row",
    "state_to_row",
]


_hints_by_state_class: dict[type[State], dict[str, Any]] = {}


def _field_hints(cls: type[State]) -> dict[str, Any]:
    """Type hints of a state class's fields, computed once per class (unresolvable ones: none)."""
    hints = _hints_by_state_class.get(cls)
    if hints is None:
        try:
            hints = typing.get_type_hints(cls)
        except Exception:
            hints = {}
        _hints_by_state_class[cls] = hints
    return hints


_FieldPlan = tuple[str, Any, str, bool, frozenset[type], dict[type, Any]]
_field_plans: dict[type[State], tuple[_FieldPlan, ...]] = {}


def _field_plan(cls: type[State]) -> tuple[_FieldPlan, ...]:
    """Per persisted field: name, type hint, error path, whether None is its default, and the JSON
    scalar types stored as they are under its hint (computed once per class)."""
    plan = _field_plans.get(cls)
    if plan is None:
        hints = _field_hints(cls)
        defaults_none = {field.name for field in dataclasses.fields(cls) if field.default is None}
        plan = tuple(
            (
                name,
                hints.get(name, Any),
                f"{cls.state_name}.{name}",
                name in defaults_none,
                json_native_types(hints.get(name, Any)) - {float},  # NaN must still be refused
                exact_encoders(hints.get(name, Any)),
            )
            for name in persisted_names(cls)
        )
        _field_plans[cls] = plan
    return plan


def encode_state_fields(state: State, codec: Codec, encoded_values: typing.Mapping[str, Any] | None = None) -> str:
    """The state's fields as JSON; fields that are None and default to None are left out.
    ``encoded_values``: fields already encoded by the codec (a result encoded once to check it)."""
    if isinstance(state, UnknownState):
        fields = state.persisted_fields()
        return compact_json(fields) if fields else "{}"
    encoded = {}
    plain_codec = type(codec) is Codec  # a subclass may encode scalars its own way
    for name, hint, path, omit_none, native, exact in _field_plan(type(state)):
        if encoded_values is not None and name in encoded_values:
            encoded[name] = encoded_values[name]
            continue
        value = getattr(state, name)
        if value is None and omit_none:
            continue
        if plain_codec:
            kind = type(value)
            if kind in native:
                encoded[name] = value
                continue
            encoder = exact.get(kind)
            if encoder is not None:
                encoded[name] = encoder(value)
                continue
        encoded[name] = codec.encode(value, hint, path=path)
    return compact_json(encoded) if encoded else "{}"


def state_to_row(
    state: State,
    codec: Codec,
    encoded_values: typing.Mapping[str, Any] | None = None,
    *,
    fields: str | None = None,
) -> StateRow:
    """The history row of an applied state; ``fields``: its fields' JSON text when the caller
    already has it (as :func:`encode_state_fields` writes it)."""
    assert state.elected_at is not None, "only applied states are stored"
    if fields is None:
        fields = encode_state_fields(state, codec, encoded_values)
    return StateRow(state.sequence, state.name, state.elected_at, state.reason, fields)


def state_from_row(row: StateRow, codec: Codec) -> State:
    """Restore a state; an unregistered name or fields that no longer fit give an UnknownState."""
    cls = state_class(row.name)
    if cls is not None and (not row.fields or row.fields == "{}"):
        restored = cls(reason=row.reason)
        restored.sequence = row.sequence
        restored.elected_at = row.elected_at
        return restored
    try:
        raw: dict[str, Any] = load_json(row.fields) if row.fields else {}
    except (ValueError, RecursionError):  # not JSON, or nested deeper than the parser goes
        raw = {"$invalid": row.fields}
    state: State
    if cls is None:
        state = UnknownState(stored_name=row.name, raw_fields=raw, reason=row.reason)
    else:
        hints = _field_hints(cls)
        try:
            values = {
                name: codec.decode(value, hints.get(name, Any), path=f"{row.name}.{name}")
                for name, value in raw.items()
                if name in hints
            }
            state = cls(reason=row.reason, **values)
        except (SerializationError, TypeError, ValueError):  # ValueError: the state's own checks refused them
            state = UnknownState(stored_name=row.name, raw_fields=raw, reason=row.reason)
    state.sequence = row.sequence
    state.elected_at = row.elected_at
    return state


def property_rows(job: BackgroundJob, names: typing.Iterable[str]) -> tuple[PropertyRow, ...]:
    rows = []
    for name in sorted(names):
        value: PropertyValue = job.properties[name]
        rows.append(PropertyRow(name, property_type_of(name, value), value))
    return tuple(rows)


def job_from_record(
    record: JobRecord,
    environment: str,
    codec: Codec,
    *,
    current: State | None = None,
    older_count: int = 0,
    execution_id: str | None = None,
) -> BackgroundJob:
    """The job of a stored row; never raises for a call this build cannot decode (an invocation or
    middleware list that is not JSON, of an unknown format version or malformed): the job reads with
    ``job.invocation.problem`` set, so it can be shown, deleted or requeued, and fails instead of running.

    ``current``: a state the job is in since the record was read (with its ``execution_id``), after
    the whole stored history (``older_count`` states, decoded when read)."""
    lock = None
    if record.locked_by is not None and record.locked_at is not None and record.lock_heartbeat is not None:
        lock = LockInfo(record.locked_by, record.locked_at, record.lock_heartbeat)
    invocation = Invocation.from_stored(record.invocation)
    middleware, middleware_problem = MiddlewareEntry.read_list(record.middleware)
    if middleware_problem is not None and invocation.problem is None:
        # running without the middleware the job was created with could skip what it enforces
        invocation = invocation.with_problem(middleware_problem, record.invocation)
    try:
        priority = Priority(record.priority)
    except ValueError:
        priority = Priority.NONE  # read (and saved again) as the lowest; the job fails instead of running
        if invocation.problem is None:
            invocation = invocation.with_problem(
                f"stored priority {record.priority!r} is not one of 0-4", record.invocation
            )
    rows = record.states
    older = None
    if current is not None:  # the whole stored history is older

        def older() -> list[State]:
            return [state_from_row(row, codec) for row in rows]

        states = [current]
    else:
        older_count = len(rows) - 1
        if older_count > 0:  # the history before the current state is decoded when someone reads it

            def older() -> list[State]:
                return [state_from_row(row, codec) for row in rows[:-1]]

        states = [state_from_row(row, codec) for row in rows[-1:]]
    return BackgroundJob(
        environment=environment,
        job_id=record.id,
        queue=record.queue,
        priority=priority,
        invocation=invocation,
        execution_id=execution_id if execution_id is not None else record.execution_id,
        states=states,
        properties={row.name: row.value for row in record.properties},
        middleware=middleware,
        created_at=record.created_at,
        modified_at=record.modified_at,
        lock=lock,
        older=older,
        older_count=older_count,
    )


def queue_pointer(job: BackgroundJob, *, keep_due: bool = False) -> QueuePointer | None:
    """The queue entry of an Enqueued job; a relative delay goes to storage as is, to be measured
    on the database clock. ``keep_due``: the job only moved, its entry keeps its due time."""
    state = job.state
    if not isinstance(state, Enqueued):
        return None
    return QueuePointer(
        job.queue, int(job.priority), job.execution_key, state.delay_until, delay=state.delay, keep_due=keep_due
    )


def job_to_insert(job: BackgroundJob, codec: Codec, lock_owner: str | None = None) -> JobInsert:
    state = job.state
    return JobInsert(
        queue=job.queue,
        priority=int(job.priority),
        execution_id=job.execution_key,
        invocation=job.invocation.to_json(),
        middleware=MiddlewareEntry.list_to_json(job.middleware),
        function=job.invocation.function_name,
        states=tuple(state_to_row(item, codec) for item in job.states),
        properties=property_rows(job, job.properties),
        enqueue=queue_pointer(job),
        awaiting_parent=state.parent_id if isinstance(state, Awaiting) else None,
        lock_owner=lock_owner,
    )


def _saved_as_enqueued(job: BackgroundJob) -> bool:
    return isinstance(job._last_saved_state, Enqueued)


def job_to_update(
    job: BackgroundJob, codec: Codec, *, holder: str, lock_timeout: typing.Any, release_lock: bool
) -> JobUpdate:
    new_states = job._unsaved_states
    state_changed = bool(new_states)
    pointer = queue_pointer(job, keep_due=not state_changed) if (state_changed or job._moved) else None
    state = job.state
    return JobUpdate(
        job_id=job.id,
        holder=holder,
        expected_execution_id=job._saved_execution_key,
        lock_timeout=lock_timeout,
        queue=job.queue,
        priority=int(job.priority),
        execution_id=job.execution_key,
        new_states=tuple(state_to_row(item, codec) for item in new_states),
        set_properties=property_rows(job, job._changed_properties),
        removed_properties=tuple(sorted(job._removed_properties)),
        enqueue=pointer,
        # only a job saved as Enqueued can have a queue entry to remove
        dequeue=state_changed and pointer is None and _saved_as_enqueued(job),
        awaiting_parent=state.parent_id if state_changed and isinstance(state, Awaiting) else None,
        release_lock=release_lock,
    )


#: room for a job's function name (module and qualified name) in :meth:`NewJobs.most_bytes`
_NAME_ROOM = 4096


class NewJobs:
    """The rows of new jobs that share their options, built without a :class:`BackgroundJob` each.

    What the election of an initial state and :func:`job_to_insert` would write for a job created
    with these options when no handler observes it: the history ``Created`` then ``state`` (both
    stamped ``now``), a fresh execution id, the queue entry an Enqueued state implies. Everything
    but the call and the execution id is the same for every job, so it is encoded once. Awaiting
    states are not built here: their parent is read first (:func:`~hivemind_jobs.lifecycle.machine.save_new`).
    """

    __slots__ = (
        "_after",
        "_created_fields",
        "_delay",
        "_enqueued",
        "_fields",
        "_middleware",
        "_priority",
        "_properties",
        "_queue",
        "_reason",
        "_state_name",
    )

    def __init__(
        self,
        *,
        queue: str,
        priority: Priority,
        state: State,
        properties: typing.Mapping[str, PropertyValue],
        middleware: typing.Iterable[MiddlewareEntry],
        codec: Codec,
    ) -> None:
        if isinstance(state, Awaiting):
            raise TypeError("an Awaiting job is created through save_new (its parent is read first)")
        created = Created()
        check_transition(None, created)
        check_transition(created, state)  # the rules the election applies, refused before any write
        self._queue = queue
        self._priority = int(priority)
        self._state_name = state.name
        self._reason = state.reason
        self._created_fields = encode_state_fields(created, codec)
        self._fields = encode_state_fields(state, codec)
        self._middleware = MiddlewareEntry.list_to_json(middleware)
        self._properties = tuple(
            PropertyRow(name, property_type_of(name, properties[name]), properties[name]) for name in sorted(properties)
        )
        self._enqueued = isinstance(state, Enqueued)
        self._after = state.delay_until if isinstance(state, Enqueued) else None
        self._delay = state.delay if isinstance(state, Enqueued) else None

    @property
    def queue(self) -> str:
        return self._queue

    def with_properties(self, extra: typing.Mapping[str, PropertyValue]) -> NewJobs:
        """The same jobs with ``extra`` properties stored too (replacing those of the same name)."""
        merged = {row.name: row for row in self._properties}
        for name, value in extra.items():
            merged[name] = PropertyRow(name, property_type_of(name, value), value)
        other = copy.copy(self)
        other._properties = tuple(merged[name] for name in sorted(merged))
        return other

    @property
    def enqueued(self) -> bool:
        """Whether the jobs are created Enqueued (their queue is woken after the commit)."""
        return self._enqueued

    def most_bytes(self, argument_bytes: int) -> int:
        """The most text one of these jobs stores when its call's JSON takes at most
        ``argument_bytes`` (see :class:`~hivemind_jobs.storage.params.PendingInserts`)."""
        shared = len(self._middleware) + len(self._created_fields) + len(self._fields) + len(self._reason or "")
        shared += sum(len(row.name) + len(str(row.value)) for row in self._properties)
        return argument_bytes + shared + _NAME_ROOM

    def inserts(self, invocations: typing.Iterable[Invocation], now: datetime) -> list[JobInsert]:
        """One insert per call, its states elected at ``now``."""
        states = (
            StateRow(0, Created.state_name, now, None, self._created_fields),
            StateRow(1, self._state_name, now, self._reason, self._fields),
        )
        queue, priority, middleware, properties = self._queue, self._priority, self._middleware, self._properties
        rows = []
        for invocation in invocations:
            execution_id = new_execution_key()
            pointer = (
                QueuePointer(queue, priority, execution_id, self._after, delay=self._delay) if self._enqueued else None
            )
            rows.append(
                JobInsert(
                    queue,
                    priority,
                    execution_id,
                    invocation.to_json(),
                    middleware,
                    invocation.function_name,
                    states,
                    properties,
                    pointer,
                )
            )
        return rows
