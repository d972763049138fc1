"""The recurring-job scheduler: every colony runs it; the database keeps each occurrence once."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from hivemind_jobs.daemons.periodic import PeriodicDaemon
from hivemind_jobs.daemons.runtime import DaemonContext
from hivemind_jobs.errors import HiveMindError

if TYPE_CHECKING:
    from hivemind_jobs.recurring.engine import PassReport

__all__ = ["Scheduler", "scheduler_daemon"]


class Scheduler(PeriodicDaemon):
    """Every ``scheduler_interval`` (with a little jitter, so colonies do not collide): record the
    finished occurrences of recurring jobs and enqueue the due ones."""

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        self.environment = ctx.colony.environment
        self.interval = ctx.colony.options.scheduler_interval.total_seconds()

    def next_delay(self) -> float:
        return self.interval * random.uniform(0.8, 1.0)

    async def run_once(self) -> PassReport | None:
        """One pass; returns its report (None: it could not run)."""
        from hivemind_jobs.recurring.engine import scheduler_pass  # recurring jobs load with their daemon

        ctx = self.ctx
        environment = self.environment
        try:
            report = await scheduler_pass(environment, environment.jobs, environment.calendars)
        except HiveMindError as error:
            ctx.log.warning("the recurring-job scheduler could not run: %s", error)
            return None
        if report.errors:
            ctx.log.warning("recurring-job scheduler: %r", report)
        elif report.enqueued or report.skipped or report.failed or report.paused:
            ctx.log.debug("recurring-job scheduler: %r", report)
        return report


async def scheduler_daemon(ctx: DaemonContext) -> None:
    await Scheduler(ctx).run()
