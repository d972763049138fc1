"""The watcher: what a colony keeps an eye on besides fetching and completing.

- its running jobs: the stop requests clients left for them, and their buffered log records
  (:meth:`Watcher.run`; their locks are renewed, and given up when they cannot be confirmed in
  time, by the heartbeat threads of :mod:`.heartbeat`, not here: a job that blocks the event loop
  must not let its own lock, or any other, expire);
- its own record in the storage (:meth:`Watcher.sync_state`, every ``state_sync_interval`` by the
  built-in ``hm.colony-state`` daemon, :class:`StateSync`), with the daemons' log records;
- when a burst run is over (:meth:`Watcher.wait_until_drained`).
"""

from __future__ import annotations

import asyncio
import json
import logging

from hivemind_jobs.colony.runtime import ColonyRuntime, Run
from hivemind_jobs.daemons.periodic import PeriodicDaemon
from hivemind_jobs.daemons.runtime import DaemonContext
from hivemind_jobs.errors import HiveMindError
from hivemind_jobs.lifecycle.records import state_from_row
from hivemind_jobs.storage.protocol import ColonyUpsert, JobActionList, StateRow

__all__ = ["StateSync", "Watcher"]

_log = logging.getLogger("hivemind_jobs.colony")


class Watcher:
    """Stop requests and logs of running jobs, the colony's record, the end of a burst run."""

    def __init__(self, runtime: ColonyRuntime) -> None:
        self.runtime = runtime

    # ------------------------------------------------------------------ running jobs
    async def run(self) -> None:
        """Look at the running jobs every ``watch_interval`` until cancelled."""
        interval = self.runtime.options.watch_interval.total_seconds()
        while True:
            await asyncio.sleep(interval)
            await self.run_once()

    async def run_once(self) -> None:
        """One look: deliver the stop requests for running jobs and write their buffered logs. A
        database that does not answer delays this by at most the lock's safety margin, and a
        failure is logged (the next look tries again)."""
        runtime = self.runtime
        runs = [run for run in runtime.running if not run.lost]
        if not runs:
            return
        bound = runtime.environment.options.lock_timeout.total_seconds() * (1 - runtime.options.lock_safety)
        try:
            await asyncio.wait_for(self._look(runs), timeout=bound)
        except Exception as error:
            _log.warning(
                "colony %s could not look for cancel requests or write job logs: %s",
                runtime.name,
                error if str(error) else f"no answer within {bound:.1f} s",
                exc_info=not isinstance(error, HiveMindError | TimeoutError),
            )

    async def _look(self, runs: list[Run]) -> None:
        env = self.runtime.environment
        ids = tuple(run.job.id for run in runs)
        logs = [row for run in runs for row in run.context.buffer.take()]
        try:
            async with env.jobs.unit_of_work() as scope:
                actions = await scope.tx.job_action_list(JobActionList(ids))
                if actions:
                    await scope.tx.job_action_delete([action.id for action in actions])
                if logs:
                    await scope.tx.job_log_insert(logs)
        except BaseException:
            for run in runs:
                run.context.buffer.put_back([row for row in logs if row.job_id == run.job.id])
            raise
        for action in actions:
            target = next((run for run in runs if run.job.id == action.job_id and not run.lost), None)
            if target is None or action.kind != "stop":
                continue
            try:
                payload = json.loads(action.payload)
                row = StateRow(
                    0, payload["state"], env.clock.now(), payload.get("reason"), json.dumps(payload["fields"])
                )
                state = state_from_row(row, env.codec)
            except (ValueError, KeyError, TypeError):
                continue
            state.sequence = 0
            state.elected_at = None
            target.stop_state = state
            target.context.buffer.add(logging.WARNING, f"stop requested by {action.requested_by}: {state.name}")
            target.cancel(hard=False)

    # ------------------------------------------------------------------ the colony's record
    async def sync_state(self) -> None:
        """Write the colony's record (its state as :meth:`ColonyRuntime.describe` tells it) and the
        daemons' pending log records, and check the clock against the database's."""
        runtime = self.runtime
        supervisor = runtime.supervisor
        logs = list(supervisor.pending_logs) if supervisor is not None else []
        async with runtime.environment.jobs.unit_of_work() as scope:
            await scope.tx.colony_upsert(
                ColonyUpsert(
                    runtime.id,
                    runtime.name,
                    runtime.host,
                    runtime.pid,
                    runtime.status,
                    json.dumps(runtime.describe(), separators=(",", ":")),
                    runtime.last_progress_at,
                )
            )
            if logs:
                await scope.tx.daemon_log_insert(logs)
            await runtime.environment.check_clock(scope.tx)  # after the writes: the transaction is under way
        if supervisor is not None:
            del supervisor.pending_logs[: len(logs)]

    async def state_daemon(self, ctx: DaemonContext) -> None:
        """The ``hm.colony-state`` daemon."""
        await StateSync(ctx, self).run()

    # ------------------------------------------------------------------ burst runs
    async def wait_until_drained(self) -> None:
        """Return once no job runs, no outcome waits and every swarm's last claim found nothing
        since the last completed batch (or the colony stops)."""
        runtime = self.runtime
        while not runtime.stopping.is_set():
            await asyncio.sleep(0.02)
            if runtime.running or runtime.outcomes or runtime.writing:
                continue
            generation = runtime.completion_generation
            if all(runner.idle_since == generation for runner in runtime.runners):
                return


class StateSync(PeriodicDaemon):
    """Every ``state_sync_interval``: write the colony's record (a failure is logged, the next pass
    tries again)."""

    def __init__(self, ctx: DaemonContext, watcher: Watcher) -> None:
        super().__init__(ctx)
        self.watcher = watcher
        self.interval = watcher.runtime.options.state_sync_interval.total_seconds()

    def next_delay(self) -> float:
        return self.interval

    async def run_once(self) -> None:
        try:
            await self.watcher.sync_state()
        except HiveMindError as error:
            self.ctx.log.warning("could not write the colony state: %s", error)
