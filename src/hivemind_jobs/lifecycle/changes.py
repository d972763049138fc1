"""In-memory changes of a job that the next save writes: its first state, properties, queue and
priority. The only way code outside the lifecycle changes a :class:`BackgroundJob`."""

from __future__ import annotations

from datetime import datetime

from hivemind_jobs.core.job import BackgroundJob, PropertyValue
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.states import Created

__all__ = ["created", "has_unsaved_changes", "move", "remove_property", "set_property"]


def created(job: BackgroundJob, now: datetime) -> BackgroundJob:
    """``job`` (new, without a history) in state Created, the state every job starts in."""
    job._apply_state(Created(), now)
    return job


def set_property(job: BackgroundJob, name: str, value: PropertyValue | None) -> None:
    """Set a typed property (None removes it)."""
    job._set_property(name, value)


def remove_property(job: BackgroundJob, name: str) -> None:
    job._remove_property(name)


def move(job: BackgroundJob, queue: str | None, priority: Priority | None) -> None:
    """Change the queue and/or priority (an Enqueued job's queue entry follows on save)."""
    job._move(queue, priority)


def has_unsaved_changes(job: BackgroundJob) -> bool:
    return job._has_changes
