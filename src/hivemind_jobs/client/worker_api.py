"""Transitional adapter for the worker runtime (being replaced by direct use of lifecycle units)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.states import State
from hivemind_jobs.lifecycle import machine
from hivemind_jobs.lifecycle.records import job_from_record, state_from_row
from hivemind_jobs.lifecycle.unit import UnitOfWork
from hivemind_jobs.storage.protocol import UpdateOutcome

__all__ = ["Scope", "elect", "job_from_record", "save_locked_many", "state_from_row", "write_scope"]


class Scope:
    def __init__(self, unit: UnitOfWork) -> None:
        self.unit = unit
        self.tx = unit.tx
        self.env = unit.env
        self.enqueued = unit.enqueued
        self.jobs = unit

    def last_operation(self) -> None:
        self.unit.last_operation()


def write_scope(
    environment: Any, *, implicit: bool = True, transaction: Any = None
) -> AbstractAsyncContextManager[Scope]:
    jobs = environment.jobs if transaction is None else transaction.jobs

    @asynccontextmanager
    async def scope() -> AsyncIterator[Scope]:
        async with jobs.unit_of_work(implicit=implicit) as unit:
            yield Scope(unit)

    return scope()


async def elect(job: BackgroundJob, state: State, env: object, unit: UnitOfWork) -> bool:
    return await machine.elect(job, state, unit)


async def save_locked_many(
    jobs: Sequence[BackgroundJob],
    holder: str,
    scope: Scope,
    *,
    keep_lock: Callable[[BackgroundJob], bool],
    last: bool = True,
) -> list[UpdateOutcome]:
    return await machine.save_locked_many(jobs, holder, scope.unit, keep_lock=keep_lock, last=last)
