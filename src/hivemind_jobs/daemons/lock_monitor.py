"""The lock monitor: rescues jobs whose lock holder stopped heartbeating (a dead or stuck worker).

Every colony runs it; the takeover is one conditional UPDATE on the database clock, so two
monitors never rescue the same job twice. A rescued Executing job goes back to Enqueued with its
rescue counted in the ``hm.rescues`` property. It is enqueued due at the time it was first due
(``Executing.due_at``, the due time of the queue entry it was claimed from), with its queue and
priority unchanged: it was due long ago, so it runs before the jobs of its queue and priority that
became due after it, not behind every job enqueued since.

``max_rescues`` bounds how often a job whose lock keeps expiring runs: it is rescued at most
``max_rescues`` times, so it is started at most ``max_rescues + 1`` times (the first run and one run
after each rescue); when the lock of that last run expires too, the job fails as poison instead of
taking workers down forever (``max_rescues=3``: four runs, then Failed; ``0``: one run). Rescues are
counted apart from retries: a run that raises is retried by the retry policy, not counted here.

A job that was claimed but never started is enqueued again (keeping an absolute due time it had);
any other expired lock (a client that died holding it) is simply released.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.joblog import log_job_event
from hivemind_jobs.core.retry import RESCUES_PROPERTY
from hivemind_jobs.core.states import Enqueued, Executing, Failed
from hivemind_jobs.daemons.periodic import PeriodicDaemon
from hivemind_jobs.daemons.runtime import DaemonContext
from hivemind_jobs.errors import HiveMindError
from hivemind_jobs.lifecycle.changes import set_property
from hivemind_jobs.lifecycle.machine import elect, save_locked_many
from hivemind_jobs.lifecycle.records import job_from_record
from hivemind_jobs.storage.protocol import JobLockTakeover, UpdateOutcome

if TYPE_CHECKING:
    from hivemind_jobs.environment import Environment

_log = logging.getLogger("hivemind_jobs.colony")

__all__ = ["JobRescued", "LockMonitor", "lock_monitor_daemon", "rescue_expired_locks"]


@dataclass(frozen=True, slots=True)
class JobRescued:
    """The lock monitor took a job over from a holder that stopped heartbeating (published after
    its transaction committed): enqueued again, or failed as poison (``poison``). ``colony`` names
    the colony that held it ("" when unknown); ``job`` is the job in its new state."""

    job: BackgroundJob
    colony: str
    poison: bool


#: jobs rescued per transaction; a pass goes on while batches come back full
_BATCH = 100


async def rescue_expired_locks(environment: Environment, holder: str, *, max_rescues: int, limit: int = _BATCH) -> int:
    """Rescue up to ``limit`` jobs with expired locks; returns how many were re-enqueued or failed."""
    rescued: set[int] = set()
    events: list[tuple[int, BackgroundJob, str, str]] = []  # the lines to log once saved
    async with environment.jobs.unit_of_work() as scope:
        ids = await scope.tx.job_lock_takeover(JobLockTakeover(environment.options.lock_timeout, holder, limit))
        if not ids:
            return 0
        jobs = [
            job_from_record(record, environment.name, environment.codec) for record in await scope.tx.job_get_many(ids)
        ]
        for job in jobs:
            state = job.state
            if isinstance(state, Executing):
                count = job.get_property(RESCUES_PROPERTY, 0)
                count = (count if isinstance(count, int) else 0) + 1
                set_property(job, RESCUES_PROPERTY, count)
                if count > max_rescues:
                    poison = _poison(count, max_rescues)
                    await elect(job, poison, scope)
                    events.append((logging.ERROR, job, state.colony or "", f"failed as poison: {poison.reason}"))
                else:
                    reason = (
                        f"rescued: lock of {state.drone or 'a drone'} timed out "
                        f"(rescue {count} of at most {max_rescues}; expiry {max_rescues + 1} fails it as poison)"
                    )
                    # due_at None: claimed by a build that did not record it (or by hand), due at once
                    await elect(job, Enqueued(reason=reason, delay_until=state.due_at), scope)
                    events.append((logging.WARNING, job, state.colony or "", reason))
                rescued.add(job.id)
            elif isinstance(state, Enqueued):
                again = Enqueued(
                    reason="rescued: claimed by a worker that never started it", delay_until=state.delay_until
                )
                await elect(job, again, scope)
                rescued.add(job.id)
        outcomes = await save_locked_many(jobs, holder, scope, keep_lock=lambda job: False)
    saved = {job.id for job, outcome in zip(jobs, outcomes, strict=True) if outcome is UpdateOutcome.SAVED}
    for level, job, colony, message in events:
        if job.id in saved:
            log_job_event(level, job, colony, message)
    mediator = environment.mediator
    if mediator.has_handlers(JobRescued):
        for level, job, colony, _ in events:
            if job.id in saved:
                try:
                    await mediator.publish(JobRescued(job, colony, poison=level == logging.ERROR))
                except Exception:
                    _log.exception("a JobRescued handler failed for job %s", job.id)
    return len(rescued & saved)


def _poison(expired: int, max_rescues: int) -> Failed:
    """The failure of a job whose lock expired ``expired`` times (``max_rescues + 1`` unless lowered since)."""
    return Failed(
        exception_type="hivemind_jobs.PoisonJob",
        message=(
            f"the job's lock expired in {expired} of its runs (its worker died or hung each time); "
            f"max_rescues={max_rescues} rescues it at most {max_rescues} times, so it runs at most "
            f"{max_rescues + 1} times while its lock keeps expiring. Find what kills or stalls the worker "
            "(memory, a blocking call, a crash), then requeue the job"
        ),
        reason=f"poison: lock expired in {_runs(expired)}, max_rescues={max_rescues} allows {_runs(max_rescues + 1)}",
    )


def _runs(count: int) -> str:
    return "1 run" if count == 1 else f"{count} runs"


class LockMonitor(PeriodicDaemon):
    """Every ``ColonyOptions.monitor_every(lock_timeout)``: rescue the jobs whose lock expired."""

    def __init__(self, ctx: DaemonContext) -> None:
        super().__init__(ctx)
        colony = ctx.colony
        self.environment = colony.environment
        self.interval = colony.options.monitor_every(self.environment.options.lock_timeout)
        self.holder = f"hm.lock-monitor:{colony.id}"

    def next_delay(self) -> float:
        return self.interval

    async def run_once(self) -> int:
        """One pass, batch after batch until a short one; returns how many jobs it rescued."""
        ctx = self.ctx
        colony = ctx.colony
        total = 0
        try:
            while True:
                count = await rescue_expired_locks(
                    self.environment, self.holder, max_rescues=colony.options.max_rescues
                )
                if count:
                    total += count
                    colony.rescued += count
                    ctx.log.warning("rescued %d job(s) whose lock expired", count)
                if count < _BATCH:
                    break
        except HiveMindError as error:
            ctx.log.warning("lock monitor could not run: %s", error)
        return total


async def lock_monitor_daemon(ctx: DaemonContext) -> None:
    await LockMonitor(ctx).run()
