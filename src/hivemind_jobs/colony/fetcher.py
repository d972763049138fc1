"""Fetching: each swarm's fetcher claims due jobs for its free drones, and wakes up when jobs of
its queues may have become due.

A claim takes at most as many jobs as the swarm has free drones (plus the prefetch), in its
queue-group order, and in the *same transaction* moves each one to Executing (the colony holds the
job lock; the new execution id is the fencing token). A fetcher wakes at once when a commit in this
process enqueued to one of its queues, when the storage notifies a change (PostgreSQL) or its change
marker moved (SQLite: a local check, no query; MySQL: a probe query while a fetcher is idle), and
otherwise polls with jitter.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from hivemind_jobs.colony.drone import Drones
from hivemind_jobs.colony.runtime import ColonyRuntime, Run, SwarmRunner
from hivemind_jobs.core.codec import Codec, datetime_text
from hivemind_jobs.core.ids import new_execution_key
from hivemind_jobs.core.job import BackgroundJob
from hivemind_jobs.core.joblog import log_job_event
from hivemind_jobs.core.states import Enqueued, Executing, Failed, check_state_text
from hivemind_jobs.errors import HiveMindError, SerializationError
from hivemind_jobs.lifecycle.machine import (
    elect,
    job_started_by_claim,
    save_locked_many,
    start_claimed,
    transitions_observed,
)
from hivemind_jobs.lifecycle.records import encode_state_fields, job_from_record
from hivemind_jobs.lifecycle.unit import UnitOfWork
from hivemind_jobs.storage.protocol import (
    ClaimedJob,
    ClaimStart,
    ClaimStarted,
    JobRecord,
    QueueClaim,
    QueueClaimStart,
    StartTemplates,
    UpdateOutcome,
)

__all__ = ["ChangeWatch", "Fetcher", "wait_either"]

_log = logging.getLogger("hivemind_jobs.colony")

#: the least time between two change probes: each is a query (at most 100 per second per colony)
PROBE_FLOOR = 0.01

#: how many jobs a busy drone may have claimed ahead for it (held or in claims in flight), and
#: how many claims a swarm's fetcher keeps in flight while it claims ahead
AHEAD_DEPTH = 2
AHEAD_LANES = 2

#: a due time no claim gives: where it appears in a drone's encoded Executing fields, the claim
#: statement writes its job's due time (see :meth:`Fetcher._fields`)
_DUE_MARK = datetime(1999, 12, 31, 23, 59, 58, 987654, tzinfo=UTC)


async def wait_either(first: asyncio.Event, second: asyncio.Event, timeout: float | None) -> None:
    """Wait until either event is set (or the timeout passes)."""
    await wait_any((first, second), timeout)


async def wait_any(events: tuple[asyncio.Event, ...], timeout: float | None) -> None:
    """Wait until one of ``events`` is set (or the timeout passes)."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def _undecodable_failure(problem: str) -> Failed:
    """The end of a job whose stored call this build cannot decode (not retried: it never will)."""
    return Failed(
        exception_type=f"{SerializationError.__module__}.{SerializationError.__qualname__}",
        message=problem,
        reason=f"not run: {problem}",
    )


class Fetcher:
    """The fetcher of one swarm: :meth:`run` until the colony stops, or step it with :meth:`run_once`."""

    def __init__(self, runtime: ColonyRuntime, runner: SwarmRunner, drones: Drones) -> None:
        self.runtime = runtime
        self.runner = runner
        self.drones = drones
        #: drone -> its Executing fields around the due time (see :meth:`_fields`)
        self._field_templates: dict[str, tuple[str, str]] = {}

    async def run(self) -> None:
        options = self.runtime.options
        if options.claim_ahead is None or self.runtime.ack_and_fetch:
            await self._run_lane()
            return
        # claiming ahead: more claims go out while the first is in flight, each for the drones
        # the others did not take (see SwarmRunner.ahead_candidates); only the first lane claims
        # for free drones, so two claims never count on the same ones. A swarm of one drone keeps
        # one lane: its claims return one after the other, so its jobs start in claim order.
        lanes = AHEAD_LANES if self.runner.swarm.drones > 1 else 1
        await asyncio.gather(self._run_lane(), *(self._run_lane(ahead_only=True) for _ in range(lanes - 1)))

    async def _run_lane(self, *, ahead_only: bool = False) -> None:
        runtime = self.runtime
        runner = self.runner
        options = runtime.options
        stopping = runtime.stopping
        failures = 0
        while not stopping.is_set():
            if (ahead_only or not runner.free_drones) and not self._ahead_candidates(1):
                runner.slot_free.clear()
                await wait_either(runner.slot_free, stopping, options.poll_interval.total_seconds())
                continue
            if runtime.completing and runtime.ack_and_fetch and not runner.wake.is_set():
                # drones freed by finished jobs are refilled by the completer, in the same transaction
                # that writes their outcomes; it wakes this fetcher when drones stay free. A wake-up
                # (an enqueue here, a notification) claims at once instead of waiting behind it.
                # Without ack and fetch this fetcher claims for them at once, in its own transaction.
                runner.slot_free.clear()
                await wait_any((runner.slot_free, runner.wake, stopping), options.poll_interval.total_seconds())
                continue
            generation = runtime.completion_generation
            try:
                started = await self.run_once(ahead_only=ahead_only)
                failures = 0
            except Exception as error:  # a fetcher never dies: it reports and retries with backoff
                failures += 1
                delay = min(10.0, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                _log.warning(
                    "swarm %s could not fetch jobs (%s); retrying in %.1f s",
                    runner.path,
                    error,
                    delay,
                    exc_info=not isinstance(error, HiveMindError),
                )
                await wait_either(stopping, stopping, delay)
                continue
            if started:
                runner.idle_since = None
                if not self._ahead_candidates(1):
                    # the launched drones start their jobs before this fetcher builds its next claim
                    await asyncio.sleep(0)
                # else the claim ahead for them goes out first, and they run while it is in flight
                continue
            if runner.ahead_dry and not runner.free_drones:
                # a claim ahead only, which found nothing it may take ahead (none due, or only
                # jobs with limits): the drones it was for get the next claim when they are free
                continue
            runner.idle_since = generation
            poll = options.poll_interval.total_seconds() * random.uniform(
                1 - options.poll_jitter, 1 + options.poll_jitter
            )
            await wait_either(runner.wake, stopping, poll)

    async def run_once(self, *, ahead_only: bool = False) -> int:
        """One claim for the swarm's free drones (plus the prefetch; not with ``ahead_only``) and
        ahead for its busy ones (see :meth:`_ahead_candidates`), in its own transaction, and the
        launch of what it claimed; returns how many jobs were launched or taken out of the queue as
        unrunnable (0: nothing was due, or no drone to claim for)."""
        runtime = self.runtime
        runner = self.runner
        runner.wake.clear()
        runner.marker = runtime.environment.storage.change_marker()
        if not runner.groups:  # every queue of the swarm is paused, or the swarm is
            return 0
        claimed: list[tuple[Run, UpdateOutcome]] = []
        limit = 0 if ahead_only else len(runner.free_drones) + runtime.options.prefetch
        ahead = self._ahead_candidates(len(runner.busy) + len(runner.parked))
        if not limit and not ahead:
            return 0  # no drone to claim for
        runner.reserve(ahead)
        try:
            async with runtime.environment.jobs.unit_of_work() as scope:
                removed = await self.claim_in(scope, limit, claimed, last=True, ahead=ahead)
        except BaseException:
            for run, _ in claimed:
                run.runner.give_back(run.drone)
            raise
        finally:
            if ahead:  # the drones taken ahead that got no job from this claim (or none at all)
                filled = {run.drone for run, _ in claimed}
                for drone in ahead:
                    if drone not in filled:
                        runner.give_back(drone)
        if ahead or limit:
            # what was claimed says whether a claim ahead may find something: not after one that
            # found nothing (until a claim for free drones finds jobs, or jobs are enqueued)
            runner.ahead_dry = not claimed and not removed and (bool(ahead) or runner.ahead_dry)
        # jobs failed as undecodable count as progress, so the fetcher claims again at once
        return self.drones.launch(claimed) + removed

    async def claim_in(
        self,
        scope: UnitOfWork,
        limit: int,
        claimed: list[tuple[Run, UpdateOutcome]],
        *,
        last: bool,
        ahead: list[str] | None = None,
    ) -> int:
        """Claim up to ``limit`` jobs for the swarm in ``scope`` and move them to Executing; and
        one more for each of the busy drones in ``ahead`` (reserved in ``runner.ahead``: see
        :meth:`_ahead_candidates`), which starts when the drone's current run ends.

        The runs (with their drones taken) are appended to ``claimed``; the caller launches them
        once the transaction committed, or gives the drones back if it failed, and gives back the
        drones of ``ahead`` that got no job. A claimed job whose
        stored call cannot be decoded fails here, in the same transaction (retrying cannot help, and
        left in the queue it would come first again and again); returns how many did.
        """
        runner = self.runner
        lean = limit <= len(runner.free_drones) and not transitions_observed(scope)
        if not lean:
            ahead = None  # claims ahead only take the lean path
        if not runner.groups or (not limit and not ahead):
            return 0
        if lean:
            return await self._claim_started(scope, limit, claimed, last=last, ahead=ahead or ())
        runtime = self.runtime
        runner = self.runner
        env = runtime.environment
        entries = await scope.tx.queue_claim(QueueClaim(runner.groups, limit, runtime.id, with_records=True))
        if not entries:
            return 0
        now_mono = time.monotonic()
        new_run = self.drones.new_run
        jobs: list[BackgroundJob] = []
        started: list[Run] = []
        undecodable: list[BackgroundJob] = []
        try:
            for entry in entries:
                record = entry.record
                if record is None:
                    continue
                job = job_from_record(record, env.name, env.codec)
                jobs.append(job)
                if not isinstance(job.state, Enqueued) or job.execution_key != entry.execution_id:
                    continue  # stale entry: saved unchanged, which releases the lock
                problem = job.invocation.problem
                if problem is not None:
                    await elect(job, _undecodable_failure(problem), scope)
                    undecodable.append(job)
                    continue
                if not runner.free_drones:
                    # more claimed than drones (prefetch): put it back at once, keeping its place in line
                    due = max(entry.execute_after, entry.enqueued_at)
                    await elect(job, Enqueued(delay_until=due, reason="returned: no free drone"), scope)
                    continue
                drone = runner.take_drone()
                executing = Executing(colony=runtime.name, swarm=runner.path, drone=drone, due_at=entry.execute_after)
                run = new_run(job, runner, drone, entry, now_mono)
                started.append(run)
                if not await elect(job, executing, scope):
                    started.pop()
                    runner.return_drone(drone)  # a handler elected something else: saved and released, not run
            outcomes = await save_locked_many(
                jobs, runtime.id, scope, keep_lock=lambda job: isinstance(job.state, Executing), last=last
            )
        except BaseException:
            for run in started:
                runner.return_drone(run.drone)
            raise
        by_id = {job.id: outcome for job, outcome in zip(jobs, outcomes, strict=True)}
        claimed.extend((run, by_id.get(run.job.id, UpdateOutcome.NOT_FOUND)) for run in started)
        for job in undecodable:
            log_job_event(logging.ERROR, job, runtime.name, f"cannot run and failed: {job.invocation.problem}")
        return sum(1 for job in undecodable if by_id.get(job.id) is UpdateOutcome.SAVED)

    async def _claim_started(
        self,
        scope: UnitOfWork,
        limit: int,
        claimed: list[tuple[Run, UpdateOutcome]],
        *,
        last: bool,
        ahead: Sequence[str] = (),
    ) -> int:
        """:meth:`claim_in` when no handler sees transitions: the claim writes each claimed job's
        Executing state itself (the same history row, a new execution id, the lock kept), in the
        same operation, so the batch needs no save of its own. Where the storage writes the starts
        in its claim statement (PostgreSQL), the drones' Executing fields are given as templates
        (:meth:`_fields`) and the jobs are built as that statement started them."""
        runtime = self.runtime
        runner = self.runner
        env = runtime.environment
        codec = env.codec
        colony, swarm, holder = runtime.name, runner.path, runtime.id
        taken = [runner.take_drone() for _ in range(limit)]
        drones = taken + list(ahead)  # the free ones first: the first jobs claimed start at once
        limit = len(drones)
        elected_at = env.clock.now()
        started: list[tuple[BackgroundJob, ClaimedJob, str]] = []
        undecodable: list[BackgroundJob] = []
        following = [0]  # the index of the drone the next start takes (claim order)

        templated = type(codec) is Codec  # a codec of its own may write the due time its own way

        def start(entry: ClaimedJob, record: JobRecord) -> ClaimStart | None:
            job = job_from_record(record, env.name, codec)
            if job.invocation.problem is not None:
                undecodable.append(job)  # fails below, in this transaction, without running
                return None
            drone = drones[following[0]]
            following[0] += 1
            started.append((job, entry, drone))
            due = entry.execute_after
            executing = Executing(colony=colony, swarm=swarm, drone=drone, due_at=due)
            if not templated:
                return start_claimed(job, executing, holder, elected_at, codec)
            before, after = self._fields(colony, swarm, drone)
            return start_claimed(job, executing, holder, elected_at, codec, fields=before + datetime_text(due) + after)

        def adopt(entry: ClaimedJob, record: JobRecord, begun: ClaimStarted) -> bool:
            following[0] = begun.index + 1
            drone = drones[begun.index]
            executing = Executing(colony=colony, swarm=swarm, drone=drone, due_at=entry.execute_after)
            job = job_started_by_claim(record, env.name, codec, executing, holder, begun)
            if job.invocation.problem is not None:
                undecodable.append(job_from_record(record, env.name, codec))  # put back as it was; fails below
                return False
            started.append((job, entry, drone))
            return True

        def templates(count: int) -> StartTemplates:
            fields = [self._fields(colony, swarm, drone) for drone in drones[:count]]
            return StartTemplates(
                [new_execution_key() for _ in fields], [before for before, _ in fields], [after for _, after in fields]
            )

        try:
            if last:  # nothing else to write when every claimed job starts: the claim may commit
                scope.last_operation()
            if templated:
                claim = QueueClaimStart(runner.groups, limit, holder, start, templates, adopt, ahead=len(ahead))
            else:
                claim = QueueClaimStart(runner.groups, limit, holder, start, ahead=len(ahead))
            await scope.tx.queue_claim_start(claim)
            outcomes: list[UpdateOutcome] = []
            for job in undecodable:
                assert job.invocation.problem is not None
                await elect(job, _undecodable_failure(job.invocation.problem), scope)
            if undecodable:
                outcomes = await save_locked_many(undecodable, holder, scope, keep_lock=lambda job: False, last=last)
        except BaseException:
            for drone in taken:  # (the caller gives back those taken ahead)
                runner.return_drone(drone)
            raise
        busy = {drone for _, _, drone in started}
        for drone in taken:
            if drone not in busy:
                runner.return_drone(drone)
        now_mono = time.monotonic()
        new_run = self.drones.new_run
        for job, entry, drone in started:
            claimed.append((new_run(job, runner, drone, entry, now_mono), UpdateOutcome.SAVED))
        for job in undecodable:
            log_job_event(logging.ERROR, job, runtime.name, f"cannot run and failed: {job.invocation.problem}")
        return sum(1 for outcome in outcomes if outcome is UpdateOutcome.SAVED)

    def _ahead_candidates(self, limit: int) -> list[str]:
        """Busy drones to claim a job ahead for (at most ``limit``): only where this fetcher claims
        for freed drones itself (no ack and fetch), while the swarm's runs have been short
        (``ColonyOptions.claim_ahead``) and the colony is not stopping. The claim then goes out
        while the current runs end, and the claimed jobs wait at most about that long."""
        runtime = self.runtime
        runner = self.runner
        within = runtime.options.claim_ahead
        run_time = runner.run_time
        if within is None or run_time is None or runtime.stopping.is_set() or runtime.ack_and_fetch:
            return []
        if runner.ahead_dry:
            if not runner.wake.is_set():
                return []
            runner.ahead_dry = False  # jobs were enqueued since
        seconds = within.total_seconds()
        if run_time >= seconds:
            return []
        return runner.ahead_candidates(limit, seconds, time.monotonic(), AHEAD_DEPTH)

    def _fields(self, colony: str, swarm: str, drone: str) -> tuple[str, str]:
        """A drone's Executing fields as JSON text, split where its due time goes (one encoding
        and one check of their text per drone, kept)."""
        fields = self._field_templates.get(drone)
        if fields is None:
            state = Executing(colony=colony, swarm=swarm, drone=drone, due_at=_DUE_MARK)
            check_state_text(state)  # so each start of the drone's jobs need not check it again
            text = encode_state_fields(state, self.runtime.environment.codec)
            before, _, after = text.partition(datetime_text(_DUE_MARK))  # as each start joins it
            fields = self._field_templates[drone] = (before, after)
        return fields


class ChangeWatch:
    """Wakes the fetchers when jobs of their queues may have become due: an enqueue committed in this
    process (:meth:`on_wake`), a storage notification (:meth:`on_storage_change`) or, for idle ones,
    a moved change marker (:meth:`run`)."""

    def __init__(self, runtime: ColonyRuntime) -> None:
        self.runtime = runtime

    async def run(self) -> None:
        """Wake idle fetchers when the storage changed since their last claim (another process may
        have enqueued): a local check every few milliseconds instead of a query, or where the
        storage needs a query for it (MySQL) one probe at most every :data:`PROBE_FLOOR`, and only
        while a fetcher is idle."""
        runtime = self.runtime
        assert runtime.options.change_check_interval is not None
        interval = runtime.options.change_check_interval.total_seconds()
        storage = runtime.environment.storage
        unsubscribe = storage.subscribe_changes(self.on_storage_change)
        if unsubscribe is not None:  # the storage calls back (PostgreSQL NOTIFY): nothing to check
            try:
                await asyncio.Event().wait()
            finally:
                unsubscribe()
        probing = storage.change_marker() is None
        if probing:
            if not await storage.probe_changes():
                return
            interval = max(interval, PROBE_FLOOR)
        while True:
            await asyncio.sleep(interval)
            if probing:
                await self.probe_once()
            else:
                self.run_once()

    async def probe_once(self) -> int:
        """Where the change marker needs a query: refresh it if a fetcher is idle, then
        :meth:`run_once`."""
        if not self._idle():
            return 0
        await self.runtime.environment.storage.probe_changes()
        return self.run_once()

    def _idle(self) -> list[SwarmRunner]:
        return [runner for runner in self.runtime.runners if runner.idle_since is not None and runner.free_drones]

    def run_once(self) -> int:
        """One look at the change marker; returns how many idle fetchers it woke."""
        idle = self._idle()
        if not idle:
            return 0
        marker = self.runtime.environment.storage.change_marker()
        woken = 0
        for runner in idle:
            if runner.marker != marker:
                runner.wake.set()
                woken += 1
        return woken

    def on_storage_change(self) -> None:
        # every fetcher, idle or claiming: one whose claim is in flight claims once more at once,
        # so an enqueue committed after its claim's snapshot is not left to the poll
        for runner in self.runtime.runners:
            runner.wake.set()

    def on_wake(self, queues: frozenset[str]) -> None:
        for runner in self.runtime.runners:
            if runner.queues & queues:
                runner.wake.set()
