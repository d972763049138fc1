"""The lock monitor: rescues jobs whose lock holder stopped heartbeating (a dead or stuck worker).

Every colony runs it; the takeover is one conditional UPDATE on the database clock, so two
monitors never rescue the same job twice. A rescued Executing job goes back to Enqueued with its
rescue counted in the ``hm.rescues`` property; a job rescued more than ``max_rescues`` times fails
as poison instead of taking workers down forever. A job that was claimed but never started is
enqueued again; any other expired lock (a client that died holding it) is simply released.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hivemind_jobs.client.worker_api import elect, job_from_record, save_locked_many, write_scope
from hivemind_jobs.core.retry import RESCUES_PROPERTY
from hivemind_jobs.core.states import Enqueued, Executing, Failed
from hivemind_jobs.errors import HiveMindError
from hivemind_jobs.storage.protocol import JobLockTakeover, UpdateOutcome

if TYPE_CHECKING:
    from hivemind_jobs.client.environment import Environment
    from hivemind_jobs.colony.daemons import DaemonContext

__all__ = ["lock_monitor_daemon", "rescue_expired_locks"]


async def rescue_expired_locks(environment: Environment, holder: str, *, max_rescues: int, limit: int = 100) -> int:
    """Rescue up to ``limit`` jobs with expired locks; returns how many were re-enqueued or failed."""
    rescued: set[int] = set()
    async with write_scope(environment) as scope:
        ids = await scope.tx.job_lock_takeover(JobLockTakeover(environment.options.lock_timeout, holder, limit))
        if not ids:
            return 0
        jobs = [
            job_from_record(record, environment.name, environment.codec) for record in await scope.tx.job_get_many(ids)
        ]
        for job in jobs:
            state = job.state
            previous = state.drone if isinstance(state, Executing) else None
            if isinstance(state, Executing):
                count = job.get_property(RESCUES_PROPERTY, 0)
                count = (count if isinstance(count, int) else 0) + 1
                job._set_property(RESCUES_PROPERTY, count)
                if count > max_rescues:
                    poison = Failed(
                        exception_type="hivemind_jobs.PoisonJob",
                        message=f"the job's lock expired {count} times while it ran (its worker died or hung)",
                        reason=f"poison: lock expired {count} times",
                    )
                    await elect(job, poison, environment, scope.jobs)
                else:
                    reason = f"rescued: lock of {previous or 'a drone'} timed out (rescue {count} of {max_rescues})"
                    await elect(job, Enqueued(reason=reason), environment, scope.jobs)
                rescued.add(job.id)
            elif isinstance(state, Enqueued):
                await elect(
                    job, Enqueued(reason="rescued: claimed by a worker that never started it"), environment, scope.jobs
                )
                rescued.add(job.id)
        outcomes = await save_locked_many(jobs, holder, scope, keep_lock=lambda job: False)
    saved = {job.id for job, outcome in zip(jobs, outcomes, strict=True) if outcome is UpdateOutcome.SAVED}
    return len(rescued & saved)


async def lock_monitor_daemon(ctx: DaemonContext) -> None:
    colony = ctx.colony
    environment = colony.environment
    interval = colony.options.monitor_every(environment.options.lock_timeout)
    holder = f"hm.lock-monitor:{colony.id}"
    while not await ctx.sleep(interval):
        try:
            while True:
                count = await rescue_expired_locks(environment, holder, max_rescues=colony.options.max_rescues)
                if count:
                    colony.rescued += count
                    ctx.log.warning("rescued %d job(s) whose lock expired", count)
                if count < 100:
                    break
        except HiveMindError as error:
            ctx.log.warning("lock monitor could not run: %s", error)
