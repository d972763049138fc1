"""What job searches return: pages with a keyset cursor, locked results, bulk outcomes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hivemind_jobs.client.locked import LockedJob
    from hivemind_jobs.core.job import BackgroundJob

__all__ = ["BulkResult", "JobPage", "LockedJobs"]


@dataclass(frozen=True)
class JobPage:
    """One page of a search. ``next_cursor`` continues after its last job (``search(after=...)``);
    it is None when the page is the last one or the order has no keyset (``property:<name>``)."""

    jobs: list[BackgroundJob]
    next_cursor: str | None

    def __iter__(self) -> Iterator[BackgroundJob]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> BackgroundJob:
        return self.jobs[index]


class LockedJobs:
    """Jobs a search locked for one requester; ``async with`` releases the locks still held at the end."""

    def __init__(self, jobs: list[LockedJob], requester: str, release: Callable[[list[int]], Awaitable[None]]) -> None:
        self.jobs = jobs
        self.requester = requester
        self._release = release

    def __iter__(self) -> Iterator[LockedJob]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, index: int) -> LockedJob:
        return self.jobs[index]

    def __repr__(self) -> str:
        return f"<LockedJobs {len(self.jobs)} locked by {self.requester!r}>"

    async def release(self) -> None:
        """Release every lock still held, in one transaction (unsaved changes are discarded)."""
        held = [job for job in self.jobs if job.is_locked]
        if held:
            await self._release([job.id for job in held])
            for job in held:
                job._forget_lock()

    async def __aenter__(self) -> LockedJobs:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.release()


@dataclass(frozen=True)
class BulkResult:
    """What a bulk operation did: jobs ``changed``, matching jobs it left ``unchanged`` (already in
    the target state, or a transition the state machine refuses) and the ``batches`` it took.
    Jobs locked by others (running ones) are skipped and not counted."""

    changed: int
    unchanged: int
    batches: int
