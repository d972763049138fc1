"""The loop every periodic built-in daemon shares: a pass, then a wait, until the colony stops."""

from __future__ import annotations

import abc

from hivemind_jobs.daemons.runtime import DaemonContext

__all__ = ["PeriodicDaemon"]


class PeriodicDaemon(abc.ABC):
    """A daemon that does one pass (:meth:`run_once`) after every wait of :meth:`next_delay` seconds.

    :meth:`run` is the daemon's whole life: the wait ends early when the colony stops, a pass in
    progress is not interrupted. A pass reports its own expected failures (the database is
    unreachable, say) and returns; what it raises ends the daemon and its restart policy decides.
    Tests step a daemon with :meth:`run_once`.
    """

    def __init__(self, ctx: DaemonContext) -> None:
        self.ctx = ctx

    @abc.abstractmethod
    def next_delay(self) -> float:
        """Seconds to wait before the next pass."""

    @abc.abstractmethod
    async def run_once(self) -> object:
        """One pass."""

    async def run(self) -> None:
        ctx = self.ctx
        while not await ctx.sleep(self.next_delay()):
            await self.run_once()
