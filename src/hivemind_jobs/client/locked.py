"""A job held under its lock: change its state, properties, queue and priority, then save."""

from __future__ import annotations

import logging
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.core.job import BackgroundJob, PropertyValue
from hivemind_jobs.core.priority import Priority, coerce_priority
from hivemind_jobs.core.states import State
from hivemind_jobs.errors import JobLockStaleError
from hivemind_jobs.lifecycle.changes import has_unsaved_changes, move, remove_property, set_property
from hivemind_jobs.lifecycle.machine import elect, ensure_locked, release_lock, save_locked
from hivemind_jobs.storage.protocol import JobHeartbeat

if TYPE_CHECKING:
    from hivemind_jobs.client.jobs import BackgroundJobClient

__all__ = ["LockAttempt", "LockedJob"]

T = TypeVar("T")
_log = logging.getLogger("hivemind_jobs")


class LockedJob:
    """A background job locked by :attr:`holder`.

    Changes are made in memory and written by :meth:`save` (which releases the lock unless
    ``keep_lock=True``). Used as ``async with``, the lock is released at the end of the block;
    unsaved changes are discarded then.
    """

    def __init__(self, job: BackgroundJob, client: BackgroundJobClient, holder: str) -> None:
        self._job = job
        self._client = client
        self._holder = holder
        self._locked = True

    def __repr__(self) -> str:
        status = "locked" if self._locked else "released"
        return f"<LockedJob {self._job.id} {status} by {self._holder!r} state={self._job.state.name}>"

    # ------------------------------------------------------------------ reading
    @property
    def job(self) -> BackgroundJob:
        return self._job

    @property
    def id(self) -> int:
        return self._job.id

    @property
    def holder(self) -> str:
        return self._holder

    @property
    def is_locked(self) -> bool:
        return self._locked

    @property
    def state(self) -> State:
        return self._job.state

    @property
    def states(self) -> tuple[State, ...]:
        return self._job.states

    @property
    def queue(self) -> str:
        return self._job.queue

    @property
    def priority(self) -> Priority:
        return self._job.priority

    @property
    def invocation(self) -> Invocation:
        return self._job.invocation

    @property
    def properties(self) -> Any:
        return self._job.properties

    @overload
    def get_property(self, name: str) -> PropertyValue | None: ...
    @overload
    def get_property(self, name: str, default: T) -> PropertyValue | T: ...
    def get_property(self, name: str, default: Any = None) -> Any:
        return self._job.get_property(name, default)

    @property
    def has_unsaved_changes(self) -> bool:
        return has_unsaved_changes(self._job)

    # ------------------------------------------------------------------ changing (in memory)
    def set_property(self, name: str, value: PropertyValue | None) -> None:
        """Set a typed property (None removes it); written by :meth:`save`."""
        ensure_locked(self._locked, self.id)
        set_property(self._job, name, value)

    def remove_property(self, name: str) -> None:
        ensure_locked(self._locked, self.id)
        remove_property(self._job, name)

    def move(self, *, queue: str | None = None, priority: Priority | int | str | None = None) -> None:
        """Change the job's queue and/or priority (an Enqueued job's queue entry follows on save)."""
        ensure_locked(self._locked, self.id)
        move(self._job, queue, coerce_priority(priority) if priority is not None else None)

    async def change_state(self, state: State) -> bool:
        """Elect ``state``; True when it is still the job's state after election handlers ran."""
        ensure_locked(self._locked, self.id)
        return await elect(self._job, state, self._client._election_scope())

    # ------------------------------------------------------------------ writing
    async def save(self, *, keep_lock: bool = False) -> None:
        """Write the changes (fenced by this lock); release the lock unless ``keep_lock``."""
        ensure_locked(self._locked, self.id)
        async with self._client.unit_of_work() as scope:
            await save_locked(self._job, self._holder, scope, keep_lock=keep_lock)
        if not keep_lock:
            self._locked = False

    async def heartbeat(self) -> None:
        """Confirm the lock (database clock); raises JobLockStaleError when it expired or was lost."""
        ensure_locked(self._locked, self.id)
        env = self._client.environment
        async with self._client.unit_of_work() as scope:
            scope.last_operation()
            alive = await scope.tx.job_heartbeat(JobHeartbeat((self.id,), self._holder, env.options.lock_timeout))
        if self.id not in alive:
            self._locked = False
            raise JobLockStaleError(
                f"{self._holder!r} lost the lock on job {self.id} (expired after {env.options.lock_timeout} "
                "without heartbeat, or taken over)"
            )

    def _forget_lock(self) -> None:
        """The lock was released elsewhere (with others, in one transaction)."""
        self._locked = False

    async def release(self) -> None:
        """Release the lock without saving (unsaved changes are discarded)."""
        if not self._locked:
            return
        self._locked = False
        async with self._client.unit_of_work() as scope:
            await release_lock(self.id, self._holder, scope, last=True)

    # ------------------------------------------------------------------ data and logs
    async def get_data(self, name: str, type_hint: Any = Any) -> Any:
        return await self._client.get_data(self.id, name, type_hint)

    async def try_get_data(self, name: str, type_hint: Any = Any, *, default: Any = None) -> Any:
        return await self._client.try_get_data(self.id, name, type_hint, default=default)

    async def set_data(self, name: str, value: object) -> None:
        await self._client.set_data(self.id, name, value)

    async def add_log(self, message: str, *, level: int = logging.INFO) -> None:
        await self._client.add_log(self.id, message, level=level)

    # ------------------------------------------------------------------ context manager
    async def __aenter__(self) -> LockedJob:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._locked:
            return
        if exc is None and has_unsaved_changes(self._job):
            _log.warning("job %s: unsaved changes were discarded when its lock was released; call save()", self.id)
        await self.release()


class LockAttempt:
    """``await`` it for a :class:`LockedJob`, or use it directly as ``async with``."""

    def __init__(self, acquire: Any) -> None:
        self._acquire = acquire
        self._locked: LockedJob | None = None

    def __await__(self) -> Generator[Any, None, LockedJob]:
        return self._acquire().__await__()  # type: ignore[no-any-return]

    async def __aenter__(self) -> LockedJob:
        self._locked = await self._acquire()
        return self._locked

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._locked is not None:
            await self._locked.__aexit__(exc_type, exc, tb)
