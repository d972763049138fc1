"""Removes colonies that stopped heartbeating (crashed or long stopped) and their daemon logs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivemind_jobs.client.worker_api import write_scope
from hivemind_jobs.errors import HiveMindError

if TYPE_CHECKING:
    from hivemind_jobs.colony.daemons import DaemonContext

__all__ = ["colony_cleanup_daemon"]


async def colony_cleanup_daemon(ctx: DaemonContext) -> None:
    colony = ctx.colony
    options = colony.options
    while not await ctx.sleep(options.colony_cleanup_interval.total_seconds()):
        try:
            async with write_scope(colony.environment) as scope:
                removed = await scope.tx.colony_delete_stale(options.stale_colony_after)
        except HiveMindError as error:
            ctx.log.warning("colony cleanup could not run: %s", error)
            continue
        if removed:
            ctx.log.warning("removed %d stale colonies: %s", len(removed), ", ".join(removed))
