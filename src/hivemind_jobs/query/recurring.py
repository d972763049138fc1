"""Conditions over recurring jobs, and their evaluation.

Build them from :data:`recurring_job` with the same operators as job queries::

    from hivemind_jobs.query import recurring_job, where

    where(recurring_job.state == "Idle", recurring_job.prop("team") == "billing")
    recurring_job.id.like("reports.*") & (recurring_job.next_run < deadline)

An environment has few recurring jobs, each one row, so searches read the rows and test the
condition in the process, with the semantics of job queries (typed property comparisons,
code-point text, ``*`` like).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from hivemind_jobs.errors import QueryError
from hivemind_jobs.query.colonies import RowTargets, evaluate
from hivemind_jobs.query.conditions import (
    Condition,
    Target,
    TargetKind,
    ValueKind,
    _Field,
    _int,
    _TextField,
    target_kinds,
)

__all__ = ["check_recurring_condition", "recurring_job", "recurring_matches"]

_KINDS = {TargetKind.RECURRING, TargetKind.RECURRING_PROPERTY}


class _RecurringTargets(RowTargets):
    """A recurring job: ``recurring_job.id``, ``.state``, ``.queue``, ``.priority``, ``.next_run``,
    ``.created_at``, ``.modified_at``, ``.runs``, ``.last_outcome`` and ``recurring_job.prop(name)``
    (the properties it gives its occurrences)."""

    __slots__ = ()
    _kind = TargetKind.RECURRING
    _property_kind = TargetKind.RECURRING_PROPERTY

    @property
    def id(self) -> _TextField:
        return self._text("id")

    @property
    def state(self) -> _TextField:
        return self._text("state")

    @property
    def queue(self) -> _TextField:
        return self._text("queue")

    @property
    def last_outcome(self) -> _TextField:
        return self._text("last_outcome")

    @property
    def priority(self) -> _Field[int]:
        return _Field(Target(TargetKind.RECURRING, "priority"), ValueKind.INT, _int)

    @property
    def runs(self) -> _Field[int]:
        return _Field(Target(TargetKind.RECURRING, "runs"), ValueKind.INT, _int)

    @property
    def next_run(self) -> _Field[datetime]:
        return self._moment("next_run")

    @property
    def created_at(self) -> _Field[datetime]:
        return self._moment("created_at")

    @property
    def modified_at(self) -> _Field[datetime]:
        return self._moment("modified_at")

    def __repr__(self) -> str:
        return "recurring_job"


#: a recurring job, for recurring-job searches
recurring_job = _RecurringTargets()


def check_recurring_condition(condition: Condition | None) -> Condition | None:
    if condition is not None and target_kinds(condition) - _KINDS:
        raise QueryError(
            "a recurring-job search takes conditions on hm.recurring_job.*; job conditions go to jobs.search"
        )
    return condition


def recurring_matches(node: Condition, fields: Mapping[str, Any], properties: Mapping[str, Any]) -> bool:
    """Whether a recurring job (its ``fields`` and ``properties``) satisfies ``node``."""
    return evaluate(node, fields, properties, [])
