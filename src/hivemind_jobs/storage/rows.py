"""Rows shared by every backend's operations: states and typed properties as parameters, and the
fence of a save.

A backend only says how it stores a datetime (integer microseconds on SQLite, a native timestamp
on the servers). A property is one row with one value column per type.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from hivemind_jobs.core.job import PropertyType, PropertyValue
from hivemind_jobs.storage.protocol import (
    JobUpdate,
    LogPurge,
    OccurrenceInsert,
    PropertyRow,
    RecurringEventList,
    RecurringEventRow,
    RecurringWrite,
    StateRow,
    UpdateOutcome,
)

__all__ = ["fence_outcome", "property_from_row", "property_params", "state_params"]


def state_params(job_id: int, state: StateRow, encode_datetime: Callable[[datetime], Any]) -> dict[str, Any]:
    """The bound parameters of ``job_state_insert`` for one state."""
    return {
        "job_id": job_id,
        "sequence": state.sequence,
        "name": state.name,
        "elected_at": encode_datetime(state.elected_at),
        "reason": state.reason,
        "fields": state.fields,
    }


def fence_outcome(row: Sequence[Any] | None, update: JobUpdate, cutoff: Any) -> UpdateOutcome:
    """Whether a save may apply, from the job's ``(execution_id, locked_by, lock_heartbeat)``: the
    heartbeat (in the backend's time unit) must not be older than ``cutoff`` (database clock minus
    the save's lock timeout)."""
    if row is None:
        return UpdateOutcome.NOT_FOUND
    execution_id, locked_by, heartbeat = row
    if locked_by != update.holder:
        return UpdateOutcome.LOCK_LOST
    if execution_id != update.expected_execution_id:
        return UpdateOutcome.EXECUTION_CHANGED
    if heartbeat is None or heartbeat < cutoff:
        return UpdateOutcome.LOCK_EXPIRED
    return UpdateOutcome.SAVED


def property_params(job_id: int, row: PropertyRow, encode_datetime: Callable[[datetime], Any]) -> dict[str, Any]:
    """The bound parameters of ``job_property_upsert`` for one property."""
    params: dict[str, Any] = {
        "job_id": job_id,
        "name": row.name,
        "type": row.type.value,
        "text_value": None,
        "int_value": None,
        "float_value": None,
        "bool_value": None,
        "datetime_value": None,
    }
    value: Any = row.value
    if row.type is PropertyType.TEXT:
        params["text_value"] = value
    elif row.type is PropertyType.UUID:
        params["text_value"] = str(value)
    elif row.type is PropertyType.INT:
        params["int_value"] = value
    elif row.type is PropertyType.FLOAT:
        params["float_value"] = value
    elif row.type is PropertyType.BOOL:
        params["bool_value"] = 1 if value else 0
    else:
        params["datetime_value"] = encode_datetime(value)
    return params


def property_from_row(row: Sequence[Any], decode_datetime: Callable[[Any], datetime]) -> PropertyRow:
    """A property from ``(name, type, text, int, float, bool, datetime)`` columns."""
    name, kind, text_value, int_value, float_value, bool_value, datetime_value = row
    property_type = PropertyType(kind)
    value: PropertyValue
    if property_type is PropertyType.TEXT:
        value = text_value
    elif property_type is PropertyType.UUID:
        value = uuid.UUID(text_value)
    elif property_type is PropertyType.INT:
        value = int(int_value)
    elif property_type is PropertyType.FLOAT:
        value = float(float_value)
    elif property_type is PropertyType.BOOL:
        value = bool(bool_value)
    else:
        value = decode_datetime(datetime_value)
    return PropertyRow(name, property_type, value)


#: table -> the named query that purges it
PURGE_QUERIES = {
    "job_log": "job_log_purge",
    "daemon_log": "daemon_log_purge",
    "recurring_occurrence": "recurring_occurrence_purge",
}


def purge_query(params: LogPurge) -> str:
    """The named query that purges ``params.table`` (one of :data:`PURGE_QUERIES`)."""
    query = PURGE_QUERIES.get(params.table)
    if query is None:
        raise ValueError(f"cannot purge {params.table!r}; one of {', '.join(PURGE_QUERIES)}")
    return query


def event_list_params(params: RecurringEventList) -> dict[str, Any]:
    return {
        "recurring_id": params.recurring_id,
        "kind": params.kind,
        "before_id": params.before_id,
        "limit": params.limit,
    }


def recurring_write_params(params: RecurringWrite, now: Any, bind: Callable[[datetime], Any]) -> dict[str, Any]:
    """The parameters of ``recurring_insert`` / ``recurring_update`` (times through ``bind``)."""
    expected = params.expected_next_run
    return {
        "id": params.id,
        "definition": params.definition,
        "state_name": params.state_name,
        "state_reason": params.state_reason,
        "next_run": bind(params.next_run) if params.next_run is not None else None,
        "job_id": params.job_id,
        "stats": params.stats,
        "now": now,
        "expected_version": params.expected_version,
        "check_next_run": int(expected is not None),
        "expected_next_run": bind(expected) if expected is not None else None,
    }


def occurrence_params(params: OccurrenceInsert, now: Any, bind: Callable[[datetime], Any]) -> dict[str, Any]:
    return {
        "recurring_id": params.recurring_id,
        "scheduled_at": bind(params.scheduled_at),
        "job_id": params.job_id,
        "now": now,
    }


def event_params(rows: Sequence[RecurringEventRow], now: Any) -> list[dict[str, Any]]:
    return [
        {
            "recurring_id": row.recurring_id,
            "kind": row.kind,
            "name": row.name,
            "message": row.message,
            "fields": row.fields,
            "now": now,
        }
        for row in rows
    ]
