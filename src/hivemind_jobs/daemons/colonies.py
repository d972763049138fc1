"""Removes colonies that stopped heartbeating (crashed or long stopped) and their daemon logs."""

from __future__ import annotations

from hivemind_jobs.daemons.periodic import PeriodicDaemon
from hivemind_jobs.daemons.runtime import DaemonContext
from hivemind_jobs.errors import HiveMindError

__all__ = ["ColonyCleanup", "colony_cleanup_daemon"]


class ColonyCleanup(PeriodicDaemon):
    """Every ``colony_cleanup_interval``: remove the colonies whose state is older than
    ``stale_colony_after``."""

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.options = ctx.colony.options

    def next_delay(self) -> float:
        return self.options.colony_cleanup_interval.total_seconds()

    async def run_once(self) -> list[str]:
        """One pass; returns the ids of the colonies removed."""
        ctx = self.ctx
        try:
            async with ctx.colony.environment.jobs.unit_of_work() as scope:
                removed = await scope.tx.colony_delete_stale(self.options.stale_colony_after)
        except HiveMindError as error:
            ctx.log.warning("colony cleanup could not run: %s", error)
            return []
        if removed:
            ctx.log.warning("removed %d stale colonies: %s", len(removed), ", ".join(removed))
        return removed


async def colony_cleanup_daemon(ctx: DaemonContext) -> None:
    await ColonyCleanup(ctx).run()
