"""The recurring-job scheduler: every colony runs it; the database keeps each occurrence once."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from hivemind_jobs.errors import HiveMindError

if TYPE_CHECKING:
    from hivemind_jobs.colony.daemons import DaemonContext

__all__ = ["scheduler_daemon"]


async def scheduler_daemon(ctx: DaemonContext) -> None:
    """Every ``scheduler_interval`` (with a little jitter, so colonies do not collide): record the
    finished occurrences of recurring jobs and enqueue the due ones."""
    from hivemind_jobs.recurring.engine import scheduler_pass  # recurring jobs load with their daemon

    colony = ctx.colony
    environment = colony.environment
    interval = colony.options.scheduler_interval.total_seconds()
    while not await ctx.sleep(interval * random.uniform(0.8, 1.0)):
        try:
            report = await scheduler_pass(environment, environment.jobs, environment.calendars)
        except HiveMindError as error:
            ctx.log.warning("the recurring-job scheduler could not run: %s", error)
            continue
        if report.errors:
            ctx.log.warning("recurring-job scheduler: %r", report)
        elif report.enqueued or report.skipped or report.failed or report.paused:
            ctx.log.debug("recurring-job scheduler: %r", report)
