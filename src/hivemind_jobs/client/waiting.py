"""Waiting for jobs to finish: every wait of one environment (on one event loop) shares one loop.

The loop reads all the jobs waited for in one query per pass and answers each waiter whose job
reached a final state (or disappeared). Between passes it sleeps:

- PostgreSQL: until the storage's finished-jobs notification names a job waited for (one
  listening connection per storage, shared by every waiter), or :attr:`ResultWaiters.notified_poll`
  passes (a safety net; a reconnect of the listener also wakes it);
- elsewhere: bounded polling with backoff, from :attr:`ResultWaiters.min_poll` to
  :attr:`ResultWaiters.max_poll`; on SQLite the local change marker (the WAL file) is checked every
  ``min_poll`` and a change reads at once.

The loop stops when nobody waits, so an idle process holds no task and reads nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Sequence

from hivemind_jobs.core.states import is_final_state
from hivemind_jobs.errors import RetryableStorageError
from hivemind_jobs.lifecycle.services import EnvironmentServices
from hivemind_jobs.storage.protocol import StateRow, Storage

__all__ = ["ResultWaiters", "result_waiters"]

_log = logging.getLogger("hivemind_jobs.client")
#: jobs read per query
_READ_BATCH = 500

_by_environment: weakref.WeakKeyDictionary[
    EnvironmentServices, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, ResultWaiters]
] = weakref.WeakKeyDictionary()


def result_waiters(environment: EnvironmentServices) -> ResultWaiters:
    """The waiters of ``environment`` on the running event loop (created at the first wait)."""
    loop = asyncio.get_running_loop()
    per_loop = _by_environment.get(environment)
    if per_loop is None:
        per_loop = _by_environment[environment] = weakref.WeakKeyDictionary()
    waiters = per_loop.get(loop)
    if waiters is None:
        waiters = per_loop[loop] = ResultWaiters(environment)
    return waiters


class ResultWaiters:
    """The shared wait loop of one environment; see the module docstring."""

    #: first pause between two reads when nothing notifies (seconds); doubles up to ``max_poll``
    min_poll = 0.01
    #: longest pause between two reads when nothing notifies (seconds)
    max_poll = 0.5
    #: pause between two reads when finished jobs are notified (seconds): only a safety net
    notified_poll = 5.0

    def __init__(self, environment: EnvironmentServices) -> None:
        # weak: the registry maps the environment to this object, which must not keep it alive
        self._environment = weakref.ref(environment)
        self._name = environment.name
        self._waiting: dict[int, list[asyncio.Future[StateRow | None]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: reads done by the loop (for tests and diagnostics)
        self.reads = 0

    @property
    def waiting(self) -> frozenset[int]:
        """The ids of the jobs waited for now."""
        return frozenset(self._waiting)

    async def final_state(self, job_id: int) -> StateRow | None:
        """The job's state row once it is final; None when the job no longer exists. Cancel the
        call (``asyncio.timeout``) to stop waiting."""
        future: asyncio.Future[StateRow | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(job_id, []).append(future)
        self._wake.set()
        if self._task is None:
            environment = self._environment()
            if environment is None:  # pragma: no cover - a caller holds its environment
                raise RuntimeError("the environment of these waits is gone")
            self._task = asyncio.get_running_loop().create_task(
                self._run(environment), name=f"hivemind-wait-{self._name}"
            )
        try:
            return await future
        finally:
            futures = self._waiting.get(job_id)
            if futures is not None:
                with contextlib.suppress(ValueError):
                    futures.remove(future)
                if not futures:
                    del self._waiting[job_id]

    def _on_finished(self, job_ids: frozenset[int] | None) -> None:
        if job_ids is None or not job_ids.isdisjoint(self._waiting):
            self._wake.set()

    async def _run(self, environment: EnvironmentServices) -> None:
        storage = environment.storage
        unsubscribe = storage.subscribe_finished(self._on_finished)
        delay = self.notified_poll if unsubscribe is not None else self.min_poll
        try:
            while self._waiting:
                self._wake.clear()
                try:
                    finished = await self._read(storage, list(self._waiting))
                except RetryableStorageError as error:
                    _log.warning("reading the jobs waited for failed (%s); trying again", error)
                except Exception as error:  # closed storage, schema problem...: every waiter hears it
                    for futures in self._waiting.values():
                        for future in futures:
                            if not future.done():
                                future.set_exception(error)
                    self._waiting.clear()
                    break
                else:
                    for job_id, row in finished.items():
                        for future in self._waiting.pop(job_id, ()):
                            if not future.done():
                                future.set_result(row)
                if not self._waiting:
                    break
                woken = await self._pause(storage, delay, watch_marker=unsubscribe is None)
                if unsubscribe is None:
                    delay = self.min_poll if woken else min(delay * 2, self.max_poll)
        finally:
            self._task = None
            if unsubscribe is not None:
                unsubscribe()

    async def _pause(self, storage: Storage, seconds: float, *, watch_marker: bool) -> bool:
        """Sleep up to ``seconds``; True when woken early (a notification, a new waiter or, with
        ``watch_marker``, the storage's change marker moved)."""
        if not watch_marker or storage.change_marker() is None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._wake.wait()
                    return True
            return False
        marker = storage.change_marker()
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(self.min_poll, remaining)):
                    await self._wake.wait()
                    return True
            if storage.change_marker() != marker:
                return True
        return False

    async def _read(self, storage: Storage, job_ids: Sequence[int]) -> dict[int, StateRow | None]:
        """The jobs among ``job_ids`` that finished (their final state row) or are gone (None)."""
        self.reads += 1
        finished: dict[int, StateRow | None] = {}
        for start in range(0, len(job_ids), _READ_BATCH):
            chunk = job_ids[start : start + _READ_BATCH]
            async with storage.transaction(readonly=True) as tx:
                records = {record.id: record for record in await tx.job_get_many(chunk)}
            for job_id in chunk:
                record = records.get(job_id)
                if record is None:
                    finished[job_id] = None
                elif record.states and is_final_state(record.states[-1].name):
                    finished[job_id] = record.states[-1]
        return finished
