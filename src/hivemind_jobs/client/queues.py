"""Pausing and resuming queues: a paused queue keeps its jobs Enqueued, in their order, and no
colony claims from it until it is resumed.

The pause is stored in the database, so every colony of the environment honours it: each reads the
paused queues at most once per poll interval and leaves them out of the queue groups it claims from
(colonies in this process at once). A job already running when its queue is paused finishes
normally.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from hivemind_jobs.core.names import validate_queue_name
from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.storage.protocol import QueuePause

if TYPE_CHECKING:
    from hivemind_jobs.lifecycle.services import EnvironmentServices

__all__ = ["PausedQueue", "QueueClient"]

#: the longest reason a pause stores (characters)
MAX_REASON = 1000


@dataclass(frozen=True, slots=True)
class PausedQueue:
    """A paused queue: since when (the database clock) and why."""

    queue: str
    paused_at: datetime
    reason: str | None


class QueueClient:
    """The queues of one environment: pause, resume, and which are paused."""

    def __init__(self, environment: EnvironmentServices) -> None:
        self._env = environment

    async def pause(self, name: str, *, reason: str | None = None) -> bool:
        """Pause the queue ``name``: colonies claim none of its jobs until :meth:`resume`.

        Idempotent: returns False when the queue was paused already (its first pause, with its time
        and reason, is kept).
        """
        queue = validate_queue_name(name)
        if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise ConfigurationError(
                f"a pause reason is a string of at most {MAX_REASON} characters or None, got {reason!r:.80}"
            )
        async with self._env.storage.transaction() as tx:
            paused = await tx.queue_pause(QueuePause(queue, reason or None))
        self._env.queue_pauses_changed()
        return paused

    async def resume(self, name: str) -> bool:
        """Resume the queue ``name``: its jobs can be claimed again at once, in their order.

        Idempotent: returns False when the queue was not paused.
        """
        queue = validate_queue_name(name)
        async with self._env.storage.transaction() as tx:
            resumed = await tx.queue_resume(queue)
        self._env.queue_pauses_changed()
        if resumed:
            self._env.wake((queue,))
        return resumed

    async def paused(self) -> builtins.list[PausedQueue]:
        """The paused queues, by name, with when and why each was paused."""
        async with self._env.storage.transaction(readonly=True) as tx:
            records = await tx.queue_pause_list()
        return [PausedQueue(record.queue, record.paused_at, record.reason) for record in records]

    async def is_paused(self, name: str) -> bool:
        """Whether the queue ``name`` is paused."""
        queue = validate_queue_name(name)
        return any(item.queue == queue for item in await self.paused())
