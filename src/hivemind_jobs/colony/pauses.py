"""Paused queues: a colony reads which queues are paused at most once per poll interval (at once
when this process paused or resumed one) and leaves them out of the queue groups its swarms claim
from, so the claim itself costs the same whether or not anything is paused."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from hivemind_jobs.colony.runtime import ColonyRuntime
from hivemind_jobs.errors import HiveMindError

__all__ = ["PauseWatch"]

_log = logging.getLogger("hivemind_jobs.colony")


class PauseWatch:
    """Keeps the colony's paused queues current: :meth:`run` until the colony stops, or step it
    with :meth:`run_once`."""

    def __init__(self, runtime: ColonyRuntime) -> None:
        self.runtime = runtime
        #: set when this process paused or resumed a queue
        self.changed = asyncio.Event()

    def on_change(self) -> None:
        self.changed.set()

    async def run_once(self) -> frozenset[str]:
        """Read the paused queues (one small query) and apply them to every swarm; returns them."""
        self.changed.clear()
        async with self.runtime.environment.storage.transaction(readonly=True) as tx:
            paused = frozenset(record.queue for record in await tx.queue_pause_list())
        if paused != self.runtime.paused_queues:
            self.runtime.paused_queues = paused
            self.runtime.apply_pauses()
        return paused

    async def run(self) -> None:
        interval = self.runtime.options.poll_interval.total_seconds()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), interval)
            try:
                await self.run_once()
            except Exception as error:  # never dies: the last paused set stays until the next read
                _log.warning(
                    "colony %s could not read the paused queues (%s); retrying",
                    self.runtime.name,
                    error,
                    exc_info=not isinstance(error, HiveMindError),
                )
